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


def detect(url: str, timeout: float = 0.5) -> bool:
    """An OpenAI-compatible server answers `GET /v1/models` with {"data": [...]}."""
    return _served(url, timeout) is not None


def _served(url: str, timeout: float) -> list[dict[str, Any]] | None:
    reply = ask_small(url + "/v1/models", timeout)
    if reply is None or reply.status != 200 or not isinstance(reply.body, dict):
        return None
    data = reply.body.get("data")
    if not isinstance(data, list):
        return None
    return [m for m in data if isinstance(m, dict) and m.get("id")]


class OpenAILocalBackend(LocalServer):
    kind = KIND

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self._models: list[dict[str, Any]] | None = None

    def label(self) -> str:
        return f"the local server ({self.url})"

    def taking_over(self, model: str) -> str:
        return f"answering on this laptop with {model} ({self.url})"

    def served(self) -> list[str] | None:
        if self._models is None:
            self._models = _served(self.url, 1.0)
        return None if self._models is None else [str(m["id"]) for m in self._models]

    def model_for(self, route: str, local_model: str) -> str:
        """local.model when the server lists it (or lists nothing); the one model it serves
        otherwise (llama-server serves one, under its alias)."""
        names = self.served()
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
            return (
                f"nothing answers at {self.url} ({error.detail})",
                f"Start the local server (llama-server, LM Studio, vLLM, …) so {self.url} "
                "answers, or point brain at another: `brain config set local.url URL`.",
            )
        return error.reason, error.fix or ""

    def checks(self, model: str) -> list[Check]:
        names = self.served()
        if names is None:
            return [
                Check(
                    "local",
                    False,
                    f"nothing answers /v1/models at {self.url}",
                    f"Start the local server so {self.url} answers.",
                )
            ]
        asked = self.model_for("", model)
        listing = ", ".join(names[:3]) or "no models listed"
        if names and asked not in names:
            return [
                Check(
                    "local",
                    False,
                    f"{KIND} at {self.url} serves {listing}, not {model}",
                    f"`brain config set local.model {names[0]}`",
                )
            ]
        return [Check("local", True, f"{KIND} at {self.url} serving {listing}")]


BACKEND = OpenAILocalBackend
