"""The servers brain can ask, as objects of one shape (brain.backends.base.Backend).

- `apex` (brain.backends.apex): the LiteLLM proxy on Apex.
- `local`: the laptop's own server, one of LOCAL_KINDS below, chosen by `local.kind`
  ("auto": the first kind whose `detect(url)` says yes).
- `anthropic` (brain.backends.anthropic): the premium lane direct, only for `[premium] direct`.

Adding a kind of local server is one module (with `detect(url) -> bool` and `BACKEND`, a
Backend subclass) plus one line in LOCAL_KINDS (docs/development.md).

Which backends a question may use, and in which order, is the ladder's (brain.offline.ladder).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from brain.client import Message

if TYPE_CHECKING:
    from brain.app import App
    from brain.backends.base import Answer, Backend

# kind -> module in brain.backends. Auto-detection asks them in this order.
LOCAL_KINDS: dict[str, str] = {
    "ollama": "ollama",
    "openai": "openai_local",
}

# The usual ports of local servers, for "Ollama is not running, but LM Studio answers at …".
USUAL_PORTS = {11434: "Ollama", 8080: "llama.cpp llama-server", 1234: "LM Studio", 8000: "vLLM"}


def estimate_tokens(messages: list[Message]) -> int:
    """A deliberately high estimate of the tokens `messages` take: ~3.5 ASCII characters a
    token, one token for every other character (CJK text is about one a character), plus a
    few a message. Too high costs a larger context; too low would let a server cut input."""
    total = 0
    for m in messages:
        text = str(m.get("content", ""))
        # isascii() first, then a slice at a time: encoding a 4 MiB input whole only to count
        # it would copy it.
        ascii_count = len(text) if text.isascii() else _ascii_count(text)
        total += int(ascii_count / 3.5) + (len(text) - ascii_count) + 8
    return total


def _ascii_count(text: str, step: int = 1 << 16) -> int:
    return sum(
        len(text[at : at + step].encode("ascii", "ignore")) for at in range(0, len(text), step)
    )


def make(app: App, name: str) -> Backend:
    """The backend called `name` (apex, local, anthropic) for `app`."""
    if name == "local":
        return local(app)
    if name not in ("apex", "anthropic"):
        raise ValueError(f"no backend named {name!r}")
    return importlib.import_module(f"brain.backends.{name}").BACKEND(app)


def local(app: App) -> Backend:
    """The backend for `local.url`. What serves it is found out on first real use, so a
    question Apex answers never waits on the laptop's server."""
    from brain.backends.base import LazyLocal

    return LazyLocal(app, lambda: _local_now(app))


def _local_now(app: App) -> Backend:
    """The backend of the kind `local.kind` names, or of the kind that answers at local.url."""
    url = app.settings.local_url
    kind = str(app.settings.get("local", "kind"))
    if kind == "auto":
        found = detect(url)
        if found:
            remember_kind(app, url, found)
        kind = found or remembered_kind(app, url) or _guess(url, app.local_model)
    module = importlib.import_module(f"brain.backends.{LOCAL_KINDS[kind]}")
    return module.BACKEND(app)


def _guess(url: str, model: str) -> str:
    """Nothing answers at `url` and nothing was ever seen there. The port says it when it is
    a usual one (11434 Ollama; 8080, 1234, 8000 OpenAI-compatible servers: a llama.cpp
    server on :8080 is not told to `ollama serve`); else an Ollama tag ("gemma4:e4b", the
    default) says Ollama, anything else an OpenAI-compatible server."""
    from urllib.parse import urlsplit

    try:
        port = urlsplit(url).port
    except ValueError:
        port = None
    if port in USUAL_PORTS:
        return "ollama" if USUAL_PORTS[port] == "Ollama" else "openai"
    return "ollama" if ":" in model else "openai"


def detect(url: str, timeout: float = 0.5) -> str | None:
    """The kind of server answering at `url`, or None when nothing answers."""
    for kind, name in LOCAL_KINDS.items():
        module = importlib.import_module(f"brain.backends.{name}")
        if module.detect(url, timeout):
            return kind
    return None


def _kinds_file(app: App):
    return app.cache_dir / "local-kind.json"


def remembered_kind(app: App, url: str) -> str | None:
    """The kind last seen at `url`: a server that is down is still named for what it was."""
    from brain.files import load_cache
    from brain.secrets import without_password

    kind = (load_cache(_kinds_file(app)) or {}).get(without_password(url))
    return kind if isinstance(kind, str) and kind in LOCAL_KINDS else None


def remember_kind(app: App, url: str, kind: str) -> None:
    from brain.files import load_cache, save_cache
    from brain.secrets import without_password

    known = load_cache(_kinds_file(app)) or {}
    url = without_password(url)
    if known.get(url) != kind:
        known[url] = kind
        save_cache(_kinds_file(app), known)


@dataclass
class Found:
    url: str
    kind: str
    models: list[str]


def discover(ports: dict[int, str] | None = None, timeout: float = 0.3) -> list[Found]:
    """Local servers answering on the usual ports (a refused port costs nothing)."""
    from brain.backends import ollama, openai_local
    from brain.client import ask_small

    found = []
    for port, label in (ports or USUAL_PORTS).items():
        base = f"http://127.0.0.1:{port}"
        if ollama.detect(base, timeout):
            reply = ask_small(base + "/api/tags", timeout)
            models = reply.body.get("models", []) if reply and isinstance(reply.body, dict) else []
            names = [str(m.get("name")) for m in models if isinstance(m, dict) and m.get("name")]
            found.append(Found(base, "Ollama", names))
            continue
        served = openai_local.served_by(base, timeout)
        if served is not None:
            server, models = served
            name = server if server != openai_local.KIND else f"{label}?"
            found.append(Found(base, name, [str(m["id"]) for m in models]))
    return found


class _DeltaSink:
    def __init__(self, on_delta: Callable[[str], None] | None) -> None:
        self.on_delta = on_delta

    def delta(self, text: str) -> None:
        if self.on_delta:
            self.on_delta(text)

    def notice(self, text: str) -> None:
        pass

    def waiting(self, text: str) -> None:
        pass


def chat(
    backend: Backend,
    model: str,
    messages: list[Message],
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    on_delta: Callable[[str], None] | None = None,
) -> Answer:
    """One streamed question to one backend, outside the ladder (bench, `apex check`)."""
    from brain.backends.base import ChatRequest

    request = ChatRequest(model, messages, temperature, max_tokens, estimate_tokens(messages))
    return backend.chat(request, _DeltaSink(on_delta))
