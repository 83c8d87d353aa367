"""Any OpenAI-compatible server on the laptop: llama.cpp's llama-server, LM Studio, vLLM.

Spoken through `/v1/chat/completions`. `/v1/models` says which models it really serves, and
nothing is claimed about a model it does not list: the answer names the model the server
says answered. Such servers refuse (HTTP 400) rather than cut an input past their context;
when they say how much they hold (llama-server `/props`, vLLM `max_model_len`, LM Studio
`/api/v0/models`), brain checks before asking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brain.backends.base import Answer, ChatRequest, Check, LocalServer, Sink
from brain.backends.wire import openai_body, post_stream, read_openai
from brain.client import Deadline, ask_small, http_error
from brain.errors import BackendError, BrainError

if TYPE_CHECKING:
    from brain.app import App

KIND = "OpenAI-compatible server"
SEEN_FILE = "local-seen.json"  # per URL: which server answered there last, serving what


def detect(url: str, timeout: float = 0.5) -> bool:
    """An OpenAI-compatible server answers `GET /v1/models` with {"data": [...]}."""
    return _served(url, timeout) is not None


def _ask(url: str, timeout: float) -> tuple[Any, str]:
    """(reply, "") or (None, why nothing answered: "connection refused", …)."""
    from brain.client import NetError, TooBig, describe, request

    try:
        return request("GET", url, timeout=timeout, connect=min(timeout, 1.0), limit=1 << 20), ""
    except (NetError, TooBig) as exc:
        return None, describe(exc)


def _served(url: str, timeout: float) -> list[dict[str, Any]] | None:
    found = served_by(url, timeout)
    return None if found is None else found[1]


def served_by(url: str, timeout: float) -> tuple[str, list[dict[str, Any]]] | None:
    """(what the server is, the models it lists), or None when nothing OpenAI-like answers."""
    reply = ask_small(url + "/v1/models", timeout)
    if reply is None or reply.status != 200 or not isinstance(reply.body, dict):
        return None
    data = reply.body.get("data")
    if not isinstance(data, list):
        return None
    models = [m for m in data if isinstance(m, dict) and m.get("id")]
    return product(reply.headers, models), models


def product(headers: dict[str, str], models: list[dict[str, Any]]) -> str:
    """The server's own name where it says it: llama.cpp's `Server: llama.cpp` header (and
    `owned_by: llamacpp`), vLLM's `owned_by: vllm`; else the generic kind."""
    server = {k.lower(): v for k, v in headers.items()}.get("server", "").lower()
    owners = {str(m.get("owned_by", "")).lower() for m in models}
    if server.startswith("llama.cpp") or "llamacpp" in owners:
        return "llama.cpp server"
    if "vllm" in owners:
        return "vLLM"
    return KIND


# How to start each server again, for "nothing answers at …".
START = {
    "llama.cpp server": "Start llama.cpp's server again (`llama-server -m MODEL.gguf --port {port}`)",
    "vLLM": "Start vLLM again (`vllm serve MODEL --port {port}`)",
}


class OpenAILocalBackend(LocalServer):
    kind = KIND

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self._models: list[dict[str, Any]] | None = None
        self._product = KIND

    def label(self) -> str:
        return f"the local server ({self.url})"

    def taking_over(self, model: str) -> str:
        return f"answering on this laptop with {model} ({self.url})"

    def served(self) -> list[str] | None:
        if self._models is None:
            found = served_by(self.url, 1.0)
            if found is not None:
                self._product, self._models = found
                self._remember()
        return None if self._models is None else [str(m["id"]) for m in self._models]

    def _remember(self) -> None:
        from brain.files import load_cache, save_cache

        path = self.app.cache_dir / SEEN_FILE
        seen = load_cache(path) or {}
        entry = {"server": self._product, "models": self.served() or []}
        if seen.get(self.url) != entry:
            seen[self.url] = entry
            save_cache(path, seen)  # private, written whole; a failure costs only the hint

    def last_seen(self) -> tuple[str, list[str]]:
        """What answered at local.url when it last did: (server, models); ("", []) if never."""
        from brain.files import load_cache

        try:
            entry = (load_cache(self.app.cache_dir / SEEN_FILE) or {}).get(self.url)
            return str(entry["server"]), [str(m) for m in entry["models"]][:3]
        except (AttributeError, KeyError, TypeError):
            return "", []

    def _down(self, why: str) -> tuple[str, str]:
        """(what is wrong, what to do) when nothing answers at local.url."""
        from urllib.parse import urlsplit

        server, models = self.last_seen()
        was = ""
        if server:
            was = f"; it was {'a' if server != KIND else 'an'} {server}"
            was += f" serving {', '.join(models)}" if models else ""
        port = urlsplit(self.url).port or 80
        start = START.get(server, "Start the local server (llama-server, LM Studio, vLLM, …)")
        fix = (
            f"{start.format(port=port)} so {self.url} answers, or point brain at another: "
            "`brain config set local.url URL`."
        )
        return f"nothing answers at {self.url} ({why or 'no answer'}){was}", fix

    def model_for(self, route: str, local_model: str) -> str:
        """local.model when the server lists it (or lists nothing); the one model it serves
        otherwise (llama-server serves one, under its alias)."""
        names = self.served()
        if names is None:  # not answering now: name what it served when it last did
            names = self.last_seen()[1]
        if names and local_model not in names and len(names) == 1:
            return names[0]
        return local_model

    def chat(self, request: ChatRequest, sink: Sink) -> Answer:
        sink.waiting(f"{request.model} is thinking on this laptop…")
        return post_stream(
            self,
            self.url + "/v1/chat/completions",
            openai_body(request),
            {},
            sink,
            Deadline(self.first_token, connect=1.0),
            read=read_openai("local", model_from_chunks=True),
            on_error=self.http_error,
        )

    def http_error(self, status: int, body: Any, headers: dict[str, str]) -> BrainError:
        return http_error("the local server", status, body, headers)

    def context_tokens(self, model: str, tokens: int) -> int | None:
        if self.cap > 0:
            return self.cap
        if tokens + 2048 <= 4096:
            return None
        props = ask_small(self.url + "/props", 1.0)  # llama-server: the context each slot holds
        if props is not None and props.status == 200 and isinstance(props.body, dict):
            settings = props.body.get("default_generation_settings")
            ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
            if isinstance(ctx, int) and ctx > 0:
                return ctx
        for m in self._models or []:  # vLLM says max_model_len
            if m.get("id") == model and isinstance(m.get("max_model_len"), int):
                return int(m["max_model_len"])
        return None

    def explain(self, error: BackendError) -> tuple[str, str]:
        if error.transport or "refused" in error.reason:
            return self._down(error.detail)
        return error.reason, error.fix or ""

    def checks(self, model: str) -> list[Check]:
        names = self.served()
        if names is None:
            why = _ask(self.url + "/v1/models", 1.0)[1]
            detail, fix = self._down(why or "it does not answer /v1/models")
            return [Check("local", False, detail, fix)]
        asked = self.model_for("", model)
        listing = ", ".join(names[:3]) or "no models listed"
        if names and asked not in names:
            return [
                Check(
                    "local",
                    False,
                    f"{self._product} at {self.url} serves {listing}, not {model}",
                    f"`brain config set local.model {names[0]}`",
                )
            ]
        return [Check("local", True, f"{self._product} at {self.url} serving {listing}")]


BACKEND = OpenAILocalBackend
