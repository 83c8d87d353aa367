"""Ollama on the laptop, spoken natively (`/api/chat`, streamed NDJSON).

Why natively: Ollama's default context on a GPU under 24 GB is 4,096 tokens, it silently drops
what does not fit, and its OpenAI-compatible API cannot change that. `/api/chat` takes
`options.num_ctx` per request, sized here to what the request needs (within the model's own
context from `/api/show`), so nothing is cut. Also owns: a cold model (`/api/ps`), keeping it
warm (`keep_alive` in the request), "not running" versus "not pulled" with the exact fix.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from brain.backends.base import Answer, ChatRequest, Check, LocalServer, Sink
from brain.backends.wire import post_stream, read_ollama
from brain.client import Deadline, ask_small, error_message, http_error, one_line
from brain.errors import BackendError, BrainError

if TYPE_CHECKING:
    from brain.app import App

KIND = "Ollama"
DEFAULT_CONTEXT = 4096  # Ollama's own default on a GPU under 24 GB
SHOW_TTL = 600.0


def detect(url: str, timeout: float = 0.5) -> bool:
    """Ollama answers `GET /api/version` with {"version": "…"}."""
    reply = ask_small(url + "/api/version", timeout)
    return (
        reply is not None
        and reply.status == 200
        and isinstance(reply.body, dict)
        and ("version" in reply.body)
    )


def same_model(a: str, b: str) -> bool:
    norm = lambda s: s if ":" in s else s + ":latest"  # noqa: E731 - Ollama's implicit tag
    return norm(a) == norm(b)


class OllamaBackend(LocalServer):
    kind = KIND

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.keep_alive = _keep_alive_value(str(app.settings.get("local", "keep_alive")))

    def label(self) -> str:
        return f"Ollama ({self.url})"

    # ----- asking -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, sink: Sink) -> Answer:
        loaded, loaded_ctx = self.loaded(request.model)
        if loaded is False:
            sink.notice(
                f"loading {request.model} on this laptop; the first answer after a pause takes "
                "longer."
            )
            sink.waiting(f"loading {request.model} on this laptop…")
        else:
            sink.waiting(f"{request.model} is thinking on this laptop…")
        num_ctx = self.num_ctx(request, loaded_ctx)
        options: dict[str, Any] = {"num_ctx": num_ctx}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        body = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "keep_alive": self.keep_alive,
            "options": options,
        }
        answer = post_stream(
            self,
            self.url + "/api/chat",
            body,
            {},
            sink,
            Deadline(self.first_token, connect=1.0),
            read=read_ollama("local"),
            on_error=lambda s, b, h: self.http_error(request.model, s, b, h),
        )
        answer.model = request.model
        prompt = answer.usage.get("prompt_tokens")
        if prompt is not None and prompt >= num_ctx - 8:
            answer.notes.append(
                f"Ollama read {prompt} tokens of input, its whole context ({num_ctx}): it may "
                "have dropped the start of the input."
            )
        return answer

    def num_ctx(self, request: ChatRequest, loaded_ctx: int | None) -> int:
        """The context to ask for: what the request needs, rounded up to a power of two so
        the model is not reloaded for every size, and the loaded context when it is enough
        (changing num_ctx reloads the model)."""
        need = request.tokens + (request.max_tokens or 2048) + 64
        if loaded_ctx and loaded_ctx >= need:
            return loaded_ctx
        size = DEFAULT_CONTEXT
        while size < need:
            size *= 2
        limit = self.max_context(request.model) if size > DEFAULT_CONTEXT else None
        return min(size, limit) if limit else size

    def http_error(self, model: str, status: int, body: Any, headers: dict[str, str]) -> BrainError:
        message = error_message(body)
        if status == 404 and "not found" in message.lower():
            return BackendError(
                f"the local model {model} is not pulled.",
                f"Pull it with `ollama pull {model}`, or choose another with --model / "
                "`brain config set local.model NAME`.",
                reason=f"{self.url} is running, but model {model} is not pulled",
                fallback_ok=False,
            )
        return http_error("Ollama", status, body, headers)

    # ----- what it has ------------------------------------------------------------------------
    def loaded(self, model: str) -> tuple[bool | None, int | None]:
        """Is `model` in memory (/api/ps), and with which context? (None, None): unknown."""
        reply = ask_small(self.url + "/api/ps", 0.5)
        if reply is None or reply.status != 200 or not isinstance(reply.body, dict):
            return None, None
        for m in reply.body.get("models") or []:
            if isinstance(m, dict) and same_model(
                str(m.get("name") or m.get("model") or ""), model
            ):
                ctx = m.get("context_length")
                return True, ctx if isinstance(ctx, int) and ctx > 0 else None
        return False, None

    def max_context(self, model: str) -> int | None:
        """The model's own context (`/api/show` model_info["<arch>.context_length"]), capped by
        `local.context_tokens` when that is set; remembered for ten minutes."""
        found = self._show_context(model)
        if self.cap > 0:
            return min(found, self.cap) if found else self.cap
        return found

    def _show_context(self, model: str) -> int | None:
        from brain.files import load_cache, save_cache
        from brain.secrets import without_password

        path = self.app.cache_dir / "ollama-show.json"
        key = f"{without_password(self.url)} {model}"
        saved = load_cache(path) or {}
        try:
            hit = saved.get(key)
            if hit and 0 <= time.time() - hit[1] < SHOW_TTL:
                return int(hit[0]) or None
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError):
            pass  # a damaged entry is no entry
        reply = ask_small(self.url + "/api/show", 2.0, body={"model": model})
        if reply is None or reply.status != 200 or not isinstance(reply.body, dict):
            return None
        info = (
            reply.body.get("model_info") if isinstance(reply.body.get("model_info"), dict) else {}
        )
        found = next(
            (v for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int)),
            None,
        )
        saved[key] = [found or 0, time.time()]
        save_cache(path, saved)
        return found

    def context_tokens(self, model: str, tokens: int) -> int | None:
        if self.cap <= 0 and tokens + 2048 <= DEFAULT_CONTEXT:
            return None  # fits any model Ollama runs: ask nothing
        return self.max_context(model)

    def pulled(self) -> tuple[bool, list[str], str]:
        """(running, models pulled, why not running) from /api/tags."""
        from brain.client import NetError, TooBig, describe, request

        try:
            reply = request("GET", self.url + "/api/tags", timeout=1.0, connect=1.0)
        except (NetError, TooBig) as exc:
            return False, [], describe(exc)
        names: list[str] = []
        if reply.status == 200 and isinstance(reply.body, dict):
            models = reply.body.get("models") or []
            names = [
                str(m.get("name") or m.get("model"))
                for m in models
                if isinstance(m, dict) and (m.get("name") or m.get("model"))
            ]
        return True, names, ""

    def explain(self, error: BackendError) -> tuple[str, str]:
        running, names, why = self.pulled()
        model = self.app.local_model
        if not running:
            return (
                f"nothing answers at {self.url} ({why})",
                f"Start Ollama on this laptop (`ollama serve`, or the Ollama app) so {self.url} "
                f"answers, then `ollama pull {model}` once.",
            )
        if not any(same_model(n, model) for n in names):
            return (
                f"{self.url} is running, but model {model} is not pulled",
                f"Pull the model once: `ollama pull {model}`.",
            )
        return error.reason, error.fix or ""

    def checks(self, model: str) -> list[Check]:
        running, names, why = self.pulled()
        if not running:
            fix = (
                f"Start Ollama on this laptop (`ollama serve`, or the Ollama app), then "
                f"`ollama pull {model}`."
            )
            return [Check("local", False, f"nothing answers at {self.url} ({why})", fix)]
        if not any(same_model(n, model) for n in names):
            return [
                Check(
                    "local",
                    False,
                    f"Ollama at {self.url} is running, but {model} is not pulled",
                    f"`ollama pull {model}`",
                )
            ]
        ctx = self.max_context(model)
        size = f"; context {ctx:,} tokens" if ctx else ""
        return [Check("local", True, f"Ollama at {self.url} with {model}{size}")]


def _keep_alive_value(value: str) -> str | int:
    # Ollama takes a duration ("30m") or seconds; "-1" means forever and must be a number.
    try:
        return int(value)
    except ValueError:
        return value


def describe_models(names: list[str]) -> str:
    return one_line(", ".join(names[:5]) + (" …" if len(names) > 5 else ""), 200)


BACKEND = OllamaBackend
