"""Keys: the OS keyring (service `brain`), environment overrides, and redaction.

Lookup order: environment variable, then keyring. A key is never written to a file, a log
line or an error: `redact` masks every known key in any text shown to the user. With no
usable keyring backend this says so before anyone types a key, and names the fixes (the
environment first); it never falls back to plaintext by itself, and a plaintext keyring the
user installed (keyrings.alt) is called plaintext wherever it is named.

What must stay true (issue 31, item 4):
- A key is stripped of surrounding whitespace when read (a key file saved with CRLF ends in
  `\r`); a key that still holds a character no HTTP header can carry is refused (77) before
  anything is sent, never sent mangled and never echoed.
- `redact` masks every key this process has read, the env ones, the password of a URL
  (`scheme://user:PASSWORD@host`) and what a cut may leave of a key: any run of 8 or more of
  its first or last characters. So masking holds whether it happens before or after a cut.
- `Masker` masks an answer while it streams: a key split over several pieces is held back
  until it can be told apart, so it never reaches the terminal, a pipe or the history.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from typing import Any

from brain.errors import BadInput, ConfigError, KeyProblem, UsageError

SERVICE = "brain"
# name -> (environment variable, what it is)
KEYS: dict[str, tuple[str, str]] = {
    "apex": ("BRAIN_APEX_KEY", "the LiteLLM proxy key on Apex"),
    "slack": ("BRAIN_SLACK_WEBHOOK", "a Slack incoming-webhook URL for fallback notices"),
    "anthropic": ("BRAIN_ANTHROPIC_KEY", "an Anthropic API key (only for [premium] direct)"),
}

_seen: set[str] = set()  # every key value this process has handled, for redaction
HEADER_KEYS = ("apex", "anthropic")  # sent in an HTTP header: printable ASCII, no spaces
PIECE = 8  # a run this long of a key's start or end is masked (what a cut leaves)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*):([^\s/@]+)@")


@dataclass
class KeyInfo:
    name: str
    source: str  # "env BRAIN_APEX_KEY", "keyring", or "" when not set
    description: str


def check_name(name: str) -> None:
    if name not in KEYS:
        raise UsageError(f"unknown key name `{name}`", f"Key names: {', '.join(KEYS)}.")


# The keyring backends people meet, by what they are called (module.Class -> name).
_NAMES = {
    "keyring.backends.SecretService.Keyring": "Secret Service",
    "keyring.backends.libsecret.Keyring": "Secret Service (libsecret)",
    "keyring.backends.kwallet.DBusKeyring": "KWallet",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Manager",
    "keyrings.alt.file.EncryptedKeyring": "keyrings.alt EncryptedKeyring (a file; asks its password)",
}


def no_keyring() -> ConfigError:
    """No usable keyring (headless Linux: no Secret Service, the usual case over SSH and in
    WSL). Nothing is stored; the fixes in the order that suits such a machine."""
    from brain import install

    return ConfigError(
        "No usable keyring on this machine (no Secret Service, Keychain or Windows Credential "
        "Manager; the usual case over SSH and in WSL). Nothing was stored.",
        "Use the environment: put `export BRAIN_APEX_KEY=...` in ~/.profile (a plaintext file "
        "only you should read; `chmod 600 ~/.profile`) and open a new shell.\n"
        f"Or keep keys in a plaintext file keyring (keyrings.alt; base64, not encrypted): "
        f"install it with {install.add('keyrings.alt')}, then run this again.\n"
        "Or start a Secret Service in your desktop session (e.g. gnome-keyring).",
    )


_chosen: Any = None  # the backend this process settled on


def _backend(search: bool = False):
    """The keyring backend: the one kept from last time (reads, which every answer may do),
    or with `search` the one keyring finds now (writes, `brain status`): a keyring set up
    since is then seen, and kept for the reads after."""
    global _chosen
    if _chosen is not None and not search:
        return _chosen
    import keyring
    import keyring.core
    from keyring.backends import fail, null

    backend = None if search else _remembered()
    searched = backend is None
    if searched:
        keyring.core._keyring_backend = None  # keyring's own search, whatever was kept
        backend = keyring.get_keyring()
    # The chainer with nothing behind it, the fail backend, or the null one (which silently
    # forgets what it is given): no usable store.
    inner = getattr(backend, "backends", None)
    usable = not (
        isinstance(backend, (fail.Keyring, null.Keyring)) or (inner is not None and not inner)
    )
    if searched:  # what keyring found now replaces what was kept (or forgets it)
        _remember_backend(backend if usable else None)
    if not usable:
        raise no_keyring()
    _chosen = backend
    return backend


# keyring finds its backend by importing and trying every one it knows (~60 ms here, on every
# command that needs a key). The one it found last time is kept in the cache dir (a class
# name, never a key) and tried alone first; if it no longer works, keyring looks again.
_BACKEND_FILE = "keyring-backend"


def _remembered() -> Any:
    import keyring.core

    if os.environ.get("PYTHON_KEYRING_BACKEND") or keyring.core.load_config() is not None:
        return None  # the user chose one: keyring reads that choice quickly itself
    try:
        from brain.paths import cache_dir

        name = (cache_dir() / _BACKEND_FILE).read_text(encoding="utf-8").strip()
        backend = keyring.core.load_keyring(name) if name else None  # checks it is viable
    except Exception:  # any doubt: keyring's own search
        return None
    if backend is not None:
        keyring.core.set_keyring(backend)
    return backend


def _remember_backend(backend: Any) -> None:
    """Keep the class of the backend keyring found, for the next reads; or forget the kept one
    when keyring's choice is not a single backend brain may pick alone: several behind a
    chainer (their order matters), or the user's own choice (the env var or keyringrc, which
    keyring reads quickly itself and which they may change)."""
    import keyring.core

    inner = getattr(backend, "backends", None)
    if inner is not None:  # a chainer: worth keeping only when one backend is behind it
        backend = inner[0] if len(inner) == 1 else None
    try:
        from brain import files
        from brain.paths import cache_dir

        path = cache_dir() / _BACKEND_FILE
        chosen = os.environ.get("PYTHON_KEYRING_BACKEND") or keyring.core.load_config()
        if backend is None or chosen:
            path.unlink(missing_ok=True)
            return
        cls = type(backend)
        files.write_private(path, f"{cls.__module__}.{cls.__name__}\n")
    except Exception:
        pass  # only costs keyring's search next time


def require_keyring() -> None:
    """Before asking anyone for a key: a usable keyring is there (else no_keyring())."""
    _backend(search=True)


def _name(backend: object) -> str:
    cls = type(backend)
    full = f"{cls.__module__}.{cls.__name__}"
    if full == "keyrings.alt.file.PlaintextKeyring":
        where = getattr(backend, "file_path", "a file")
        return f"keyrings.alt PlaintextKeyring, a plaintext file (base64, not encrypted): {where}"
    inner = getattr(backend, "backends", None)
    if inner:
        return " + ".join(_name(b) for b in inner)
    return _NAMES.get(full, full)


def backend_name() -> str:
    """Which keyring holds the keys, as a person calls it (a plaintext one says so)."""
    try:
        backend = _backend(search=True)
    except ConfigError:
        return "none (no usable keyring)"
    return _name(backend)


def plaintext() -> bool:
    """The keyring in use keeps keys in a plaintext file (keyrings.alt PlaintextKeyring)."""
    return "plaintext file" in backend_name()


def mask(value: str) -> None:
    """A key not stored (yet), masked like a stored one in anything shown or kept."""
    if value.strip():
        _seen.add(value.strip())


def get(name: str, *, required: bool = False) -> str | None:
    """The key `name` from its env var or the keyring; None when unset (and not required)."""
    check_name(name)
    env_var = KEYS[name][0]
    value = os.environ.get(env_var) or None
    if value is None:
        try:
            value = _backend().get_password(SERVICE, name)
        except ConfigError:
            if required:
                raise
            value = None
        except Exception:
            value = None
    value = _clean(name, value, env_var)
    if value:
        remember(value)
    elif required:
        from brain.errors import KeyProblem

        raise KeyProblem(
            f"No `{name}` key is set.",
            f"Set it with `brain keys set {name}`, or export {env_var}.",
        )
    return value


def _clean(name: str, value: str | None, env_var: str) -> str | None:
    """The key without surrounding whitespace; KeyProblem for one no header can carry."""
    if value is None:
        return None
    value = value.strip()
    if value and name in HEADER_KEYS and not header_safe(value):
        remember(value)  # masked, should any of it be shown
        where = f"${env_var}" if os.environ.get(env_var) else "the keyring"
        raise KeyProblem(
            f"The `{name}` key in {where} holds characters no key has (a space, a control "
            "character or a non-ASCII letter); it was not sent.",
            f"Set it again, exactly as issued: `brain keys set {name}` (or export {env_var}).",
        )
    return value or None


def header_safe(value: str) -> bool:
    """Printable ASCII without spaces: what an API key is, and what a header can carry."""
    return all("!" <= ch <= "~" for ch in value)


def remember(value: str) -> None:
    """Mask `value` (a key, a password) in everything this process shows or keeps."""
    if value:
        _seen.add(value)


def remember_url(url: str) -> None:
    """A URL's password, and the Basic credentials sent for it (brain.plainhttp and httpx
    make the same), are secrets."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        remember(password)
        remember(unquote(password))
        token = f"{unquote(user or '')}:{unquote(password)}".encode()
        remember(base64.b64encode(token).decode())


def set_key(name: str, value: str) -> None:
    check_name(name)
    value = value.strip()
    if not value:
        raise UsageError("an empty key was given; nothing was stored")
    remember(value)
    if name in HEADER_KEYS and not header_safe(value):
        raise BadInput(
            f"that `{name}` key holds characters no key has (a space, a control character or "
            "a non-ASCII letter); nothing was stored.",
            "Paste the key exactly as issued.",
        )
    try:
        _backend(search=True).set_password(SERVICE, name, value.strip())
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"The keyring refused to store `{name}`: {redact(str(exc))}") from None


def delete(name: str) -> bool:
    check_name(name)
    import keyring.errors

    try:
        _backend(search=True).delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        return False
    return True


def listing() -> list[KeyInfo]:
    out = []
    for name, (env_var, what) in KEYS.items():
        if os.environ.get(env_var):
            source = f"env {env_var}"
        else:
            try:
                source = "keyring" if _backend().get_password(SERVICE, name) else ""
            except ConfigError:
                source = ""
        out.append(KeyInfo(name, source, what))
    return out


def without_password(url: str) -> str:
    """`url` with its password masked: how a URL is written into a cache file or shown."""
    return _URL_PASSWORD.sub(r"\1:****@", url) if "@" in url else url


def known() -> list[str]:
    """Every secret to mask, longest first."""
    values = set(_seen)
    for env_var, _ in KEYS.values():
        raw = os.environ.get(env_var)
        if raw:
            values.add(raw)
            values.add(raw.strip())
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text: str, *, urls: bool = True) -> str:
    """Mask every key this process has seen (and the env ones), and what a cut may have left
    of a key, in `text`; with `urls`, also the password of any URL (brain's own messages).
    An answer is masked with urls=False: a connection string a model writes is content."""
    text = str(text)
    if urls and "@" in text:
        text = _URL_PASSWORD.sub(r"\1:****@", text)
    return _mask_known(text, known())


def redact_all(value: Any, *, urls: bool = True) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with every string redacted; the structure
    is kept, so a key holding a quote cannot break the JSON it is masked in."""
    if isinstance(value, str):
        return redact(value, urls=urls)
    if isinstance(value, dict):
        return {redact_all(k, urls=urls): redact_all(v, urls=urls) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v, urls=urls) for v in value]
    return value


def _core(value: str) -> str:
    """The part of a secret whose pieces are masked. A URL (the Slack webhook) begins with
    what every URL of its host begins with: only its last part, the token, is secret."""
    if "://" in value:
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _mask_pieces(text: str, value: str) -> str:
    """Mask runs of `value`'s first or last characters (PIECE or more): what is left of a key
    that was cut before it was masked."""
    out: list[str] = []
    i = 0
    head, tail = value[:PIECE], value[-PIECE:]
    while i < len(text):
        if text.startswith(head, i):
            n = PIECE
            while i + n < len(text) and n < len(value) and text[i + n] == value[n]:
                n += 1
            out.append("****")
            i += n
            continue
        if text.startswith(tail, i):
            # the end of the key: extend backwards over what is already in `out`
            start = len(value) - PIECE
            while start > 0 and out and out[-1] == value[start - 1]:
                out.pop()
                start -= 1
            out.append("****")
            i += PIECE
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


class Masker:
    """Masks keys in a text that arrives in pieces (a streamed answer): `feed` returns what
    is safe to show now, holding back an ending that could be the start of a key; `flush`
    returns the rest at the end. An answer is masked for the secrets brain knows (keys, a
    configured URL's password), never for URLs a model writes (see `redact(urls=False)`).
    The work per piece does not grow with the answer: at most the longest key is held."""

    def __init__(self) -> None:
        self.secrets: list[str] | None = None  # read at the first piece: the key is read by then
        self.pending = ""

    def feed(self, text: str) -> str:
        if self.secrets is None:
            self.secrets = known()
        if not self.secrets:
            return text
        buffer = self.pending + text if self.pending else text
        for value in self.secrets:
            if value in buffer:
                buffer = buffer.replace(value, "****")
        hold = self._held(buffer)
        self.pending = buffer[len(buffer) - hold :] if hold else ""
        return _mask_known(buffer[: len(buffer) - hold], self.secrets)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return _mask_known(rest, self.secrets or [])

    def _held(self, buffer: str) -> int:
        """The length of the longest ending of `buffer` that begins some key."""
        longest = 0
        for value in self.secrets or ():
            first = value[0]
            start = max(len(buffer) - len(value) + 1, 0)
            i = buffer.find(first, start)
            while i != -1:
                if len(buffer) - i > longest and value.startswith(buffer[i:]):
                    longest = len(buffer) - i
                    break  # the earliest match is the longest for this key
                i = buffer.find(first, i + 1)
        return longest


def _mask_known(text: str, secrets: list[str]) -> str:
    """Whole keys and what a cut left of them, without the URL rule (for answers)."""
    for value in secrets:
        if value in text:
            text = text.replace(value, "****")
        core = _core(value)
        if len(core) > PIECE and (core[:PIECE] in text or core[-PIECE:] in text):
            text = _mask_pieces(text, core)
    return text
