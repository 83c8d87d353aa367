"""Gathering a digest's material from `[[digest.sources]]`, since the last digest.

A source is a `glob` (files changed since the last digest), a `command` (its stdout is the
material) or a `url` (GET, text). What must stay true:
- Every read is bounded: a source gives at most its `max_bytes`; a command or a URL at most
  its `timeout` (a command that overruns is killed with its children). Past either bound the
  source fails; it is never cut short silently.
- A failing source is named with its reason and never stops the others.
- "Since the last digest" is per source (the store's `state` table, `digest.last.NAME`): the
  first digest looks back 24 h; `--since` overrides. A mark moves only when a digest of its
  material was made (`commit`), and only for sources that did not fail, so nothing gathered is
  skipped by the next digest. A `url` counts as new when its text differs from what the last
  digest read (`digest.seen.NAME`).
- A command learns the window from its environment: BRAIN_DIGEST_SINCE (local time, ISO 8601
  with offset), BRAIN_DIGEST_SINCE_UTC and BRAIN_DIGEST_SINCE_EPOCH; `{since}`, `{since_utc}`
  and `{since_epoch}` in a command or a URL are replaced by the same values.
Prints nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain import install
from brain.errors import BadInput, UsageError

if TYPE_CHECKING:
    from brain.app import App
    from brain.store import Store

LAST = "digest.last."  # + source name: the start of the last digest that read it (epoch s)
SEEN = "digest.seen."  # + source name: sha256 of the text a url gave the last digest
FIRST_LOOKBACK = 24 * 3600.0
STDERR_KEPT = 4096  # bytes of a failing command's stderr kept for its message

_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Source:
    name: str
    kind: str  # glob | command | url
    spec: Any  # the pattern, the command (text or a list), the URL
    timeout: float
    max_bytes: int

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> Source:
        kind = next(k for k in ("glob", "command", "url") if k in table)
        return cls(table["name"], kind, table[kind], table["timeout"], table["max_bytes"])

    def describe(self) -> str:
        """What the source is, in a few words (never a URL's query, which may hold a token)."""
        if self.kind == "url":
            from urllib.parse import urlsplit

            parts = urlsplit(self.spec)
            return f"url {parts.scheme}://{parts.netloc}{parts.path}"
        if self.kind == "command":
            text = self.spec if isinstance(self.spec, str) else " ".join(self.spec)
            text = " ".join(text.split())
            return f"command `{text if len(text) <= 60 else text[:59] + '…'}`"
        return f"glob {self.spec}"


@dataclass
class Unit:
    """One labelled piece of material: a file, a command's output, a URL's text."""

    source: str
    label: str  # "notes: ~/notes/monday.md", "tp3"
    text: str

    def labelled(self) -> str:
        if not self.label:  # a lone stdin, sent as it came (as `brain digest` always did)
            return self.text.rstrip()
        return f"--- {self.label} ---\n{self.text.rstrip()}"


@dataclass
class Gathered:
    """What one source gave (or why it gave nothing)."""

    source: Source
    since: float
    since_why: str  # "the last digest", "first digest: 24 h back", "--since 7d"
    started: float  # when reading began: the next digest's "since" for this source
    units: list[Unit] = field(default_factory=list)
    files: int = 0
    size: int = 0  # bytes of material
    error: str = ""  # the source failed: nothing of it is used, its mark stays
    warnings: list[str] = field(default_factory=list)  # files skipped (binary, unreadable)
    seen: str = ""  # a url's text hash
    unchanged: bool = False  # a url whose text is what the last digest read

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def window(self) -> str:
        return f"since {when(self.since)} ({self.since_why})"

    def summary(self, with_since: bool = True) -> str:
        """One line for stderr: what it gave (and since when, unless said once for all)."""
        head = f"{self.source.name} ({self.source.describe()})"
        if self.error:
            return f"{head}: failed: {self.error}"
        since = f" {self.window}" if with_since else ""
        if self.unchanged:
            return f"{head}: nothing new (the same text as the last digest read)"
        if not self.units:
            return f"{head}: nothing new{since}"
        what = f"{self.files} file{'s' if self.files != 1 else ''}, " if self.files else ""
        return f"{head}: {what}{size(self.size)}{since}"


def when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1 << 20):.1f} MB"


def parse_since(text: str, now: float) -> float:
    """`24h`, `90m`, `7d`, `2w`, `YYYY-MM-DD` or `YYYY-MM-DD[T ]HH:MM` (local time) as a time."""
    value = text.strip()
    found = re.fullmatch(r"(\d+)\s*(m|min|h|d|w)", value)
    if found and int(found.group(1)) > 0:
        return now - int(found.group(1)) * _UNITS[found.group(2)]
    for form in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            stamp = datetime.strptime(value, form).timestamp()
        except (ValueError, OverflowError, OSError):
            continue
        if stamp > now:
            raise UsageError(
                f"--since {text} is in the future.", "Give a time before now, e.g. 24h or 7d."
            )
        return stamp
    raise UsageError(
        f"--since {text!r} is not a time brain knows.",
        "Use 24h, 90m, 7d, 2w, YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time).",
    )


def configured(app: App) -> list[Source]:
    return [Source.from_config(t) for t in app.settings.digest_sources]


def select(sources: list[Source], names: list[str]) -> list[Source]:
    """The sources named (--source), in config order; UsageError for a name not configured."""
    if not names:
        return sources
    known = {s.name for s in sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        have = ", ".join(sorted(known)) or "none yet"
        raise UsageError(
            f"no digest source named {', '.join(unknown)}.",
            f"Sources in config.toml: {have} ([[digest.sources]], {install.doc('digest.md')}).",
        )
    return [s for s in sources if s.name in names]


def since_for(store: Store, source: Source, override: tuple[float, str] | None, now: float):
    """(since, why) for one source."""
    if override is not None:
        return override
    mark = store.get_state(LAST + source.name)
    try:
        return float(mark), "the last digest"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return now - FIRST_LOOKBACK, "first digest: 24 h back"


def gather(
    app: App,
    sources: list[Source],
    override: tuple[float, str] | None = None,
    now: float | None = None,
) -> list[Gathered]:
    """Read every source (at once, each within its own bounds); one Gathered each, in order."""
    from concurrent.futures import ThreadPoolExecutor

    now = time.time() if now is None else now
    store = app.store()
    base = app.settings.path.parent
    jobs: list[tuple[Gathered, str]] = []
    for source in sources:
        since, why = since_for(store, source, override, now)
        jobs.append((Gathered(source, since, why, now), store.get_state(SEEN + source.name) or ""))

    def read(job: tuple[Gathered, str]) -> Gathered:
        got, seen_before = job
        try:
            READERS[got.source.kind](got, base)
        except Exception as exc:  # a source's failure never stops the others
            got.error = got.error or f"{type(exc).__name__}: {exc}"
        if got.error:
            got.units, got.size, got.files = [], 0, 0
        elif got.source.kind == "url" and override is None and got.seen == seen_before:
            got.units, got.size, got.unchanged = [], 0, True
        return got

    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as pool:
        return list(pool.map(read, jobs))


def commit(store: Store, gathered: list[Gathered]) -> None:
    """The digest of this material is made: the next one starts where these reads began."""
    for got in gathered:
        if got.failed:
            continue
        store.set_state(LAST + got.source.name, repr(got.started))
        if got.seen:
            store.set_state(SEEN + got.source.name, got.seen)


# ----- the readers ------------------------------------------------------------------------------


def _read_glob(got: Gathered, base: Path) -> None:
    import glob as globbing

    source = got.source
    pattern = Path(os.path.expanduser(source.spec))
    if not pattern.is_absolute():
        pattern = base / pattern
    root = _fixed_root(pattern)
    if not root.is_dir():
        got.error = f"no such folder: {_show(root)}"
        return
    budget = source.max_bytes
    for name in sorted(globbing.glob(str(pattern), recursive=True)):
        path = Path(name)
        try:
            stat = path.stat()
        except OSError:
            continue
        if not path.is_file() or stat.st_mtime < got.since:
            continue
        if got.size + stat.st_size > budget:
            got.error = (
                f"the files changed since {when(got.since)} come to more than "
                f"{size(budget)} (its max_bytes); narrow the glob or raise max_bytes"
            )
            return
        try:
            with path.open("rb") as fh:
                data = fh.read(budget - got.size + 1)
        except OSError as exc:
            got.warnings.append(f"{_show(path)} skipped: {exc.strerror}")
            continue
        if got.size + len(data) > budget:
            got.error = f"{_show(path)} grew past its max_bytes ({size(budget)}) while being read"
            return
        try:
            text = as_text(data, _show(path))
        except BadInput as exc:
            got.warnings.append(f"{_show(path)} skipped: {exc.message}")
            continue
        got.files += 1
        got.size += len(data)
        if text.strip():
            got.units.append(Unit(source.name, f"{source.name}: {_show(path)}", text))


def as_text(data: bytes, name: str) -> str:
    """Text from bytes, or BadInput (brain.material's rules, without its one-question cap)."""
    from brain.material import decode

    return decode(data, name, limit=None)


def _fixed_root(pattern: Path) -> Path:
    """The folder a pattern starts from: its leading parts without wildcards."""
    parts = pattern.parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _show(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home)).replace(os.sep, "/")
    except ValueError:
        return str(path)


def window(since: float) -> dict[str, str]:
    """The since values a command or URL may use."""
    local = datetime.fromtimestamp(since).astimezone().replace(microsecond=0)
    utc = datetime.fromtimestamp(since, UTC).replace(microsecond=0)
    return {
        "since": local.isoformat(),
        "since_utc": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "since_epoch": str(int(since)),
    }


def _fill(text: str, values: dict[str, str], quote: Callable[[str], str] = str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", quote(value))
    return text


def _read_command(got: Gathered, base: Path) -> None:
    source = got.source
    values = window(got.since)
    env = dict(os.environ)
    env.update({f"BRAIN_DIGEST_{k.upper()}": v for k, v in values.items()})
    spec = source.spec
    argv: Any = _fill(spec, values) if isinstance(spec, str) else [_fill(a, values) for a in spec]
    cwd = base if base.is_dir() else Path.home()
    data, error = run_bounded(argv, env, cwd, source.timeout, source.max_bytes)
    if error:
        got.error = error
        return
    try:
        text = as_text(data, "its output")
    except BadInput as exc:
        got.error = exc.message
        return
    got.size = len(data)
    if text.strip():
        got.units.append(Unit(source.name, source.name, text))


def run_bounded(
    argv: str | list[str], env: dict[str, str], cwd: Path, timeout: float, limit: int
) -> tuple[bytes, str]:
    """Run a command (a text: through the shell); (stdout, "") or (b"", why it failed).
    At most `limit` bytes of stdout and `timeout` seconds; past either, it is killed with the
    processes it started."""
    # long: one process's whole life: start, two bounded readers, the wait, why it failed.
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True  # its own process group, killed as one
    try:
        proc = subprocess.Popen(
            argv,
            shell=isinstance(argv, str),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            **kwargs,
        )
    except OSError as exc:
        program = argv if isinstance(argv, str) else argv[0]
        return b"", f"could not start {program}: {exc.strerror or exc}"
    out: list[bytes] = []
    err = bytearray()
    over = threading.Event()

    def read_out() -> None:
        total = 0
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(1 << 16):  # type: ignore[attr-defined]
            total += len(chunk)
            if total > limit:
                over.set()
                _kill(proc)
                return
            out.append(chunk)

    def read_err() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(1 << 16):  # type: ignore[attr-defined]
            err.extend(chunk)
            del err[:-STDERR_KEPT]

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        return b"", f"did not finish within {timeout:g} s (its timeout); it was stopped"
    for reader in readers:
        reader.join(2.0)  # a child that keeps the pipe open is not waited for
    if over.is_set():
        return b"", f"printed more than {size(limit)} (its max_bytes); it was stopped"
    if code != 0:
        said = _last_line(bytes(err))
        how = f"exited with {code}" if code > 0 else f"was killed by signal {-code}"
        return b"", f"{how}" + (f": {said}" if said else " (nothing on stderr)")
    return b"".join(out), ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(
            ["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True, check=False
        )
        return
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _last_line(data: bytes) -> str:
    from brain.client import one_line
    from brain.secrets import redact

    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return redact(one_line(lines[-1], 240)) if lines else ""


_NOT_TEXT = ("image/", "audio/", "video/", "application/octet-stream", "application/pdf")
_NOT_TEXT += ("application/zip", "application/gzip")


def _read_url(got: Gathered, base: Path) -> None:
    from urllib.parse import quote

    from brain.client import NetError, TooBig, describe, error_message, one_line, request

    source = got.source
    url = _fill(source.spec, window(got.since), lambda v: quote(v, safe=""))
    try:
        reply = request(
            "GET",
            url,
            timeout=source.timeout,
            connect=min(source.timeout, 5.0),
            limit=source.max_bytes,
            internet=_on_the_internet(url),
            headers={"Accept": "text/*, application/json, application/xml;q=0.9, */*;q=0.1"},
        )
    except TooBig:
        got.error = f"sent more than {size(source.max_bytes)} (its max_bytes)"
        return
    except NetError as exc:
        got.error = describe(exc)
        return
    if 300 <= reply.status < 400:
        where = reply.headers.get("location", "elsewhere")
        got.error = (
            f"answered HTTP {reply.status}, a redirect to {where}; brain follows no redirect: "
            "put that URL in config.toml"
        )
        return
    if reply.status // 100 != 2:
        said = one_line(error_message(reply.body), 160) if reply.text.strip() else ""
        got.error = f"answered HTTP {reply.status}" + (f": {said}" if said else "")
        return
    kind = reply.headers.get("content-type", "").lower()
    if kind.startswith(_NOT_TEXT):
        got.error = f"answered {kind.split(';')[0]}, not text"
        return
    charset = re.search(r"charset=([\w.-]+)", kind)
    data = reply.raw
    if b"\x00" in data[:8192]:
        got.error = "answered something binary (it contains NUL bytes), not text"
        return
    try:
        text = data.decode(charset.group(1) if charset else "utf-8-sig")
    except (UnicodeDecodeError, LookupError):
        got.error = f"answered text that is not {charset.group(1) if charset else 'UTF-8'}"
        return
    got.size = len(data)
    got.seen = hashlib.sha256(data).hexdigest()
    if text.strip():
        got.units.append(Unit(source.name, source.name, text))


def _on_the_internet(url: str) -> bool:
    """An internet host (the user's proxy settings apply) rather than this machine, the LAN or
    the tailnet (never through a proxy, as brain.client does for Apex and local servers)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or "." not in host or host.endswith((".ts.net", ".local")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    tailnet = ipaddress.ip_network("100.64.0.0/10")
    return not (address.is_private or address.is_loopback or address in tailnet)


READERS: dict[str, Callable[[Gathered, Path], None]] = {
    "glob": _read_glob,
    "command": _read_command,
    "url": _read_url,
}
