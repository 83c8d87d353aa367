"""Apex: the LiteLLM proxy on the GPU box, over Tailscale (research/litellm.md).

Owns: the request LiteLLM expects (`model` = the route, `include_fallback_errors`), who
answered (its x-litellm-* headers and the stream's fallback-metadata chunk), what it costs,
its errors (the key, a missing route), how much a route can read (`/model/info`), and the
liveness probe beside every request (brain.offline.probe).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from brain.backends.base import Answer, Backend, ChatRequest, Check, Sink, money
from brain.backends.wire import openai_body, post_stream, read_openai
from brain.client import Deadline, error_message, error_type, http_error, one_line
from brain.errors import BackendError, BrainError, ConfigError, KeyProblem
from brain.offline import probe

if TYPE_CHECKING:
    from brain.app import App
    from brain.client import HTTPResponse

# Below this many input tokens every route can read the input: no need to ask /model/info.
SAFE_TOKENS = 8192
MODEL_INFO_TTL = 3600.0


class ApexBackend(Backend):
    name = "apex"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        conf = app.settings
        self.url = conf.apex_url
        self.connect = float(conf.get("apex", "connect_timeout"))
        self.first_token = float(conf.get("apex", "first_token_timeout"))
        self.fail_ttl = float(conf.get("apex", "probe_ttl"))

    def label(self) -> str:
        return f"Apex ({self.url})"

    def model_for(self, route: str, local_model: str) -> str:
        return route

    def key(self) -> str | None:
        return self.app.key("apex")

    def headers(self) -> dict[str, str]:
        key = self.key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    # ----- asking -----------------------------------------------------------------------------
    def chat(self, request: ChatRequest, sink: Sink) -> Answer:
        cache = self.app.cache_dir
        seen = probe.away(cache, self.url, self.fail_ttl)
        if seen is not None:
            reason = f"Apex ({self.url}): {seen.reason} (seen in the last few seconds)"
            error = BackendError(reason, reason=reason, transport=True)
            error.timeout = True
            raise error
        deadline = Deadline(self.first_token, connect=self.connect)
        beside = probe.Beside(self.url, deadline, self.connect)
        try:
            answer = post_stream(
                self,
                self.url + "/v1/chat/completions",
                openai_body(request, {"include_fallback_errors": True}),
                self.headers(),
                sink,
                deadline,
                read=read_openai("apex", on_chunk=_fallback_chunk),
                on_error=lambda s, b, h: self.http_error(request.model, s, b, h),
                on_response=_read_headers,
            )
        except BackendError as exc:
            self._remember_failure(exc, beside)
            if exc.transport:  # the host itself: say what Tailscale knows (1 s, CLI only)
                exc.reason = exc.message = probe.with_tailscale(exc.reason)
            raise
        probe.remember(cache, probe.Verdict(self.url, True, "", time.time(), answer.first_token_ms))
        return answer

    def _remember_failure(self, exc: BackendError, beside: probe.Beside) -> None:
        """Only a timeout is remembered (by kind, never by duration); the probe's own verdict
        is the better witness when it has one."""
        verdict = beside.result()
        if verdict is None or verdict.ok:
            if not (exc.transport and exc.timeout):
                return
            verdict = probe.Verdict(self.url, False, exc.detail, time.time(), kind=probe.TIMEOUT)
        if verdict.kind == probe.TIMEOUT:
            probe.remember(self.app.cache_dir, verdict)

    def http_error(self, route: str, status: int, body: Any, headers: dict[str, str]) -> BrainError:
        """LiteLLM's errors that no fallback may hide: the key, a route Apex does not have."""
        if key_refused(status, body) or self._keyless_500(status, body):
            return key_problem(status, bool(self.key()))
        message = error_message(body)
        if status == 400 and "invalid model name" in message.lower():
            return ConfigError(
                f"Apex has no route named `{route}`.",
                f"Add `{route}` to Apex's LiteLLM config, or point the task at a route Apex has "
                "(`brain routes` lists what brain asks for; `brain status` what Apex offers).",
            )
        return http_error("Apex", status, body, headers)

    def _keyless_500(self, status: int, body: Any) -> bool:
        """No key sent, and a bare `500 Internal Server Error` (text, not LiteLLM's JSON):
        what a LiteLLM proxy installed without `prisma` (pip, not Docker; 1.106.12) answers
        a request without a key. Its own errors are JSON."""
        return status == 500 and not self.key() and not isinstance(body, dict)

    def taking_over(self, model: str) -> str:
        return f"asking Apex ({model})"

    def explain(self, error: BackendError) -> tuple[str, str]:
        fix = error.fix or ""
        if error.transport or "liveliness" in error.reason:
            fix = (
                "Check that Apex is on and Tailscale is connected (`tailscale status`); "
                "`brain status` shows what brain sees."
            )
        reason = error.reason
        if error.transport and "Tailscale" not in reason:
            reason = probe.with_tailscale(reason)
        return reason, fix or "`brain status` shows what brain sees of Apex."

    def state(self) -> tuple[str, str]:
        verdict = probe.last(self.app.cache_dir, self.url)
        if verdict is None:
            return "unknown", "checking whether Apex is reachable"
        if verdict.ok:
            return "ok", f"Apex at {self.url} is reachable"
        return "away", f"Apex at {self.url}: {verdict.reason}"

    # ----- what Apex offers ---------------------------------------------------------------------
    def models(self, timeout: float = 5.0) -> tuple[str, list[str] | None, str]:
        """Ask /v1/models with the key: ("ok", routes, ""), ("rejected"|"missing", None, why),
        or ("error", None, why). The one place that tells whether Apex takes the key."""
        from brain.client import NetError, TooBig, describe, request

        try:
            reply = request(
                "GET",
                self.url + "/v1/models",
                timeout=timeout,
                connect=self.connect,
                headers=self.headers(),
            )
        except (NetError, TooBig) as exc:
            return "error", None, f"could not ask /v1/models: {describe(exc)}"
        if key_refused(reply.status, reply.body) or self._keyless_500(reply.status, reply.body):
            return ("rejected" if self.key() else "missing"), None, f"HTTP {reply.status}"
        if reply.status != 200:
            return "error", None, f"/v1/models answered HTTP {reply.status}"
        try:
            names = sorted(str(m["id"]) for m in reply.body["data"] if isinstance(m, dict))
        except (KeyError, TypeError):
            return "error", None, "/v1/models answered something unexpected"
        return "ok", names, ""

    def context_tokens(self, model: str, tokens: int) -> int | None:
        """`max_input_tokens` of the route's deployments (the largest), from /model/info,
        asked only for inputs past SAFE_TOKENS and remembered for an hour."""
        if tokens <= SAFE_TOKENS or not self.url:
            return None
        table = self._model_info()
        return table.get(model)

    def _model_info(self) -> dict[str, int]:
        from brain.client import NetError, TooBig, request
        from brain.files import load_cache, save_cache
        from brain.secrets import without_password

        path = self.app.cache_dir / "apex-model-info.json"
        saved = load_cache(path)
        url = without_password(self.url)
        try:
            if saved and saved["url"] == url and 0 <= time.time() - saved["at"] < MODEL_INFO_TTL:
                return {str(k): int(v) for k, v in saved["routes"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            pass  # a damaged cache is no cache
        try:
            reply = request(
                "GET",
                self.url + "/model/info",
                timeout=3.0,
                connect=self.connect,
                headers=self.headers(),
            )
        except (NetError, TooBig):
            return {}
        routes = _max_inputs(reply.body) if reply.status == 200 else {}
        save_cache(path, {"url": url, "at": time.time(), "routes": routes})
        return routes

    def probe(self) -> probe.Verdict:
        """A liveness probe now (remembered for the toolbar and the next command)."""
        verdict = probe.probe(self.url, self.connect)
        probe.remember(self.app.cache_dir, verdict)
        return verdict

    def checks(self, model: str) -> list[Check]:
        verdict = self.probe()
        if not verdict.ok:
            return [
                Check(
                    "apex",
                    False,
                    f"{self.url}: {probe.with_tailscale(verdict.reason)}",
                    "Is Apex on, and Tailscale connected (`tailscale status`)?",
                )
            ]
        return [Check("apex", True, f"{self.url} answers ({verdict.latency_ms} ms)")]


def key_refused(status: int, body: Any) -> bool:
    """LiteLLM refusing the key: 401/403, or 400 `no_db_connection` without a database."""
    if status in (401, 403):
        return True
    if status != 400:
        return False
    etype = error_type(body)
    message = error_message(body).lower()
    return etype == "no_db_connection" or "api key" in message or "authentication error" in message


def key_problem(status: int, key_set: bool) -> KeyProblem:
    if not key_set:
        return KeyProblem(
            f"Apex needs a key, and none is set (HTTP {status}).",
            "Set the LiteLLM key with `brain keys set apex`, or export BRAIN_APEX_KEY "
            "(for scripts, or where no keyring works); then `brain queue run`.",
        )
    return KeyProblem(
        f"Apex rejected the key (HTTP {status}).",
        "Set the LiteLLM key with `brain keys set apex` (or BRAIN_APEX_KEY), then "
        "`brain queue run`.",
    )


def _max_inputs(body: Any) -> dict[str, int]:
    routes: dict[str, int] = {}
    for entry in (body or {}).get("data", []) if isinstance(body, dict) else []:
        if not isinstance(entry, dict):
            continue
        info = entry.get("model_info") if isinstance(entry.get("model_info"), dict) else {}
        if info.get("long_input_falls_back"):
            # `brain apex render`: past this step's limit the route's next step takes the
            # input on Apex's side (LiteLLM's pre-call check); the route's limit is not this.
            continue
        limit = info.get("max_input_tokens")
        name = entry.get("model_name")
        if isinstance(name, str) and isinstance(limit, int) and limit > 0:
            routes[name] = max(routes.get(name, 0), limit)
    return routes


def _read_headers(response: HTTPResponse, answer: Answer) -> None:
    h = response.headers
    answer.model = h.get("x-litellm-model-id") or ""
    # LiteLLM leaves out x-litellm-response-cost when it is zero; -original still says 0.0.
    answer.cost = money(h.get("x-litellm-response-cost"))
    if answer.cost is None:
        answer.cost = money(h.get("x-litellm-response-cost-original"))
    try:
        fallbacks = int(h.get("x-litellm-attempted-fallbacks") or 0)
    except ValueError:
        fallbacks = 0
    if fallbacks >= 1:
        group = h.get("x-litellm-model-group") or "another model group"
        reason = fallback_reason(h.get("x-litellm-fallback-errors")) or f"Apex fell back to {group}"
        answer.apex_fallbacks.append({"backend": "apex", "reason": reason, "answered_by": group})


def _fallback_chunk(chunk: dict[str, Any], answer: Answer) -> None:
    """LiteLLM's `litellm-fallback-metadata` chunk: why each hop failed (streams only)."""
    meta = chunk.get("litellm_fallback")
    if not isinstance(meta, dict):
        return
    reason = fallback_reason(meta.get("errors"))
    group = meta.get("fallback_model")
    if not answer.apex_fallbacks:
        answer.apex_fallbacks.append({"backend": "apex", "reason": "", "answered_by": ""})
    fb = answer.apex_fallbacks[0]
    fb["reason"] = reason or fb["reason"] or f"Apex fell back to {group or 'another group'}"
    fb["answered_by"] = str(group or fb["answered_by"] or "another model group")


def fallback_reason(errors: Any) -> str:
    """LiteLLM's fallback errors (a JSON list of {message, type, …}, as a header string or a
    list from the stream's metadata chunk) as one short line."""
    if isinstance(errors, str):
        try:
            errors = json.loads(errors)
        except ValueError:
            return one_line(errors, 300)
    if not isinstance(errors, list):
        return ""
    messages = [
        one_line(str(e.get("message") or e.get("type") or ""), 200)
        for e in errors
        if isinstance(e, dict)
    ]
    return "; ".join(m for m in messages if m)[:500]


BACKEND = ApexBackend
