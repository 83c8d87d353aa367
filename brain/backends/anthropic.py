"""Anthropic's Messages API, for `[premium] direct = true` only: the premium lane by another
road when Apex cannot be reached (brain.premium decides when; nothing else ever asks it).

Owns the request (system prompt apart, temperature within 0–1), its SSE events, its error
envelope (research/providers.md §4), and the cost of a direct answer from list prices.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from brain.backends.base import MAX_TOKENS_REASON, Answer, Backend, ChatRequest, Collector, Sink
from brain.backends.base import usage_from as _usage
from brain.backends.wire import post_stream
from brain.client import Deadline, error_message, http_error, one_line, sse_events
from brain.errors import (
    BackendError,
    BadInput,
    BrainError,
    ConfigError,
    KeyProblem,
    TemporaryFailure,
)

if TYPE_CHECKING:
    from brain.app import App
    from brain.client import HTTPResponse

ANTHROPIC_VERSION = "2023-06-01"

# USD per million tokens (input, output), Anthropic's list prices, by model-name prefix; the
# first match wins, so more specific prefixes come first. Used only for direct answers (Apex
# reports its own figure). A model not listed has no known price: its answers are not counted,
# and with a daily cap set brain refuses to call it directly (the cap could not hold).
PRICES: list[tuple[str, float, float]] = [
    ("claude-opus-4-0", 15.0, 75.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4-2025", 15.0, 75.0),
    ("claude-opus-4", 5.0, 25.0),  # 4.5 and later
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
]


def price(model: str) -> tuple[float, float] | None:
    for prefix, usd_in, usd_out in PRICES:
        if model.startswith(prefix):
            return usd_in, usd_out
    return None


class AnthropicBackend(Backend):
    name = "anthropic"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        conf = app.settings
        self.model = str(conf.get("premium", "model"))
        self.url = str(conf.get("premium", "anthropic_url")).rstrip("/")
        self.capped = bool(conf.get("premium", "daily_usd"))

    def label(self) -> str:
        return f"Anthropic ({self.url})"

    def model_for(self, route: str, local_model: str) -> str:
        return self.model

    def taking_over(self, model: str) -> str:
        return "asking Anthropic directly ([premium] direct = true)"

    def chat(self, request: ChatRequest, sink: Sink) -> Answer:
        if self.capped and price(request.model) is None:
            raise ConfigError(
                f"brain does not know what `{request.model}` costs, so with a daily cap set it "
                "will not call it directly (the cap could not hold).",
                "Set [premium] model to a Claude model brain knows (e.g. claude-sonnet-4-5), or "
                "set premium.daily_usd to 0.",
            )
        key = self.app.key("anthropic")
        if not key:
            raise KeyProblem(
                "[premium] direct is on, but no `anthropic` key is set.",
                "Set it with `brain keys set anthropic` (or export BRAIN_ANTHROPIC_KEY), or turn "
                "direct off: `brain config set premium.direct false`.",
            )
        headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        answer = post_stream(
            self,
            self.url + "/v1/messages",
            _body(request),
            headers,
            sink,
            Deadline(120.0, connect=5.0),
            read=_read_events,
            on_error=lambda s, b, h: anthropic_error(s, b, h, request.model),
            internet=True,
        )
        answer.model = answer.model or request.model
        rates = price(answer.model) or price(request.model)
        if rates is not None and answer.usage:
            answer.cost = (
                answer.usage.get("prompt_tokens", 0) * rates[0]
                + answer.usage.get("completion_tokens", 0) * rates[1]
            ) / 1_000_000
        return answer

    def explain(self, error: BackendError) -> tuple[str, str]:
        return error.reason, "Check the network (and `brain status` for Apex)."


def _body(request: ChatRequest) -> dict[str, Any]:
    system = "\n\n".join(m["content"] for m in request.messages if m.get("role") == "system")
    turns = [
        {"role": m["role"], "content": m["content"]}
        for m in request.messages
        if m.get("role") in ("user", "assistant")
    ]
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or 4096,
        "temperature": min(request.temperature if request.temperature is not None else 1.0, 1.0),
        "messages": turns,
        "stream": True,
    }
    if system:
        body["system"] = system
    return body


def _read_events(response: HTTPResponse, collector: Collector) -> None:
    answer = collector.answer
    stopped = False
    for data in sse_events(response):
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") if isinstance(event.get("message"), dict) else {}
            answer.model = str(message.get("model") or answer.model)
            _usage(answer, message.get("usage"), ("input_tokens", "output_tokens"))
        elif kind == "content_block_delta":
            delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
            text = delta.get("text") if delta.get("type") == "text_delta" else None
            if isinstance(text, str) and not collector.add(text):
                return
        elif kind == "message_delta":
            _usage(answer, event.get("usage"), ("input_tokens", "output_tokens"))
            delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
            if delta.get("stop_reason") == "max_tokens":
                answer.partial = True
                answer.partial_reason = MAX_TOKENS_REASON
        elif kind == "message_stop":
            stopped = True
        elif kind == "error":
            err = event.get("error") if isinstance(event.get("error"), dict) else {}
            reason = f"Anthropic reported {err.get('type', 'an error')}: {err.get('message', '')}"
            collector.stop(one_line(reason))
            return
    if not stopped and not answer.partial:
        collector.stop("the stream from Anthropic ended before the answer was complete")


def anthropic_error(status: int, body: Any, headers: dict[str, str], model: str) -> BrainError:
    """Anthropic's errors ({"type":"error","error":{type,message}})."""
    err = (
        body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    )
    etype = str(err.get("type") or "")
    message = one_line(error_message(body) or str(body)[:200])
    if status in (401, 403):
        return KeyProblem(
            f"Anthropic rejected the `anthropic` key (HTTP {status}: {message}).",
            "Set a valid key with `brain keys set anthropic` (or BRAIN_ANTHROPIC_KEY).",
        )
    if status == 429 and etype == "enforced_spend_limit_reached":
        return TemporaryFailure(
            f"Anthropic refused: your account's spend limit is reached ({message}).",
            "Raise the limit in the Anthropic console, or wait for it to reset.",
        )
    if status in (429, 529):
        retry = headers.get("retry-after")
        when = f" in {retry} s" if retry else " in a minute"
        what = "is overloaded" if status == 529 else "is rate limiting this key"
        return TemporaryFailure(
            f"Anthropic {what} (HTTP {status}: {message}).",
            f"Try again{when}; your input is kept (`brain queue run` replays it).",
        )
    if status == 404 or (status == 400 and "model" in message.lower()):
        return ConfigError(
            f"Anthropic does not accept the model `{model}` (HTTP {status}: {message}).",
            "Set [premium] model to a current Claude model, e.g. "
            "`brain config set premium.model claude-sonnet-4-5`.",
        )
    if status in (400, 413):
        return BadInput(f"Anthropic refused the request (HTTP {status}: {message}).")
    return http_error("Anthropic", status, body, headers)


BACKEND = AnthropicBackend
