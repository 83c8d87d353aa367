"""Keys: the OS keyring (service `brain`), environment overrides, and redaction.

Lookup order: environment variable, then keyring. A key is never written to a file, a log
line or an error: `redact` masks every known key in any text shown to the user. With no
usable keyring backend this says so before anyone types a key, and names the fixes (the
environment first); it never falls back to plaintext by itself, and a plaintext keyring the
user installed (keyrings.alt) is called plaintext wherever it is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from brain.errors import ConfigError, UsageError

SERVICE = "brain"
# name -> (environment variable, what it is)
KEYS: dict[str, tuple[str, str]] = {
    "apex": ("BRAIN_APEX_KEY", "the LiteLLM proxy key on Apex"),
    "slack": ("BRAIN_SLACK_WEBHOOK", "a Slack incoming-webhook URL for fallback notices"),
    "anthropic": ("BRAIN_ANTHROPIC_KEY", "an Anthropic API key (only for [premium] direct)"),
}

_seen: set[str] = set()  # every key value this process has handled, for redaction


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


def _backend():
    import keyring
    from keyring.backends import fail, null

    backend = keyring.get_keyring()
    # The chainer with nothing behind it, the fail backend, or the null one (which silently
    # forgets what it is given): no usable store.
    inner = getattr(backend, "backends", None)
    if isinstance(backend, (fail.Keyring, null.Keyring)) or (inner is not None and not inner):
        raise no_keyring()
    return backend


def require_keyring() -> None:
    """Before asking anyone for a key: a usable keyring is there (else no_keyring())."""
    _backend()


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
        backend = _backend()
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
    if value:
        _seen.add(value)
    elif required:
        from brain.errors import KeyProblem

        raise KeyProblem(
            f"No `{name}` key is set.",
            f"Set it with `brain keys set {name}`, or export {env_var}.",
        )
    return value


def set_key(name: str, value: str) -> None:
    check_name(name)
    if not value.strip():
        raise UsageError("an empty key was given; nothing was stored")
    _seen.add(value.strip())
    try:
        _backend().set_password(SERVICE, name, value.strip())
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"The keyring refused to store `{name}`: {redact(str(exc))}") from None


def delete(name: str) -> bool:
    check_name(name)
    import keyring.errors

    try:
        _backend().delete_password(SERVICE, name)
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


def redact(text: str) -> str:
    """Mask every key this process has seen (and the env ones) in `text`."""
    values = set(_seen)
    for env_var, _ in KEYS.values():
        if os.environ.get(env_var):
            values.add(os.environ[env_var])
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "****")
    return text
