"""`brain apex render`: the files Apex runs, written from the task table and the catalog.

Owns the plan (which route tries which deployments, in which order, after the user's choice
of providers and local models), the text of every file (LiteLLM config.yaml, .env.example,
docker-compose.yml, the Windows scheduled-task script, the systemd unit) and writing them
without clobbering. The output depends only on the inputs: rendering twice gives the same
bytes. No file holds a secret: every key and every api_base is `os.environ/NAME`, filled from
Apex's `.env`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from brain import __version__
from brain.apex import catalog
from brain.apex.catalog import Deployment, Provider
from brain.errors import UsageError
from brain.tasks import PREMIUM_ROUTE, Task

LITELLM_VERSION = "1.106.12"  # never 1.107.0: a compromised release
DEFAULT_IMAGE = f"ghcr.io/berriai/litellm:main-v{LITELLM_VERSION}"
DEFAULT_LINUX_DIR = "/opt/brain-apex"
PORT = 4000
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
SLACK_ENV = "SLACK_WEBHOOK_URL"
TAILSCALE_ENV = "TAILSCALE_IP"
COOLDOWN_SECONDS = 30
# Room left for the answer in a local model's context: max_input_tokens = context - this.
ANSWER_ROOM = 4096

FILES = (
    "config.yaml",
    ".env.example",
    "docker-compose.yml",
    "apex-autostart.ps1",
    "brain-apex.service",
)


@dataclass(frozen=True)
class Options:
    """What to include. Defaults: every provider and every local model of the catalog."""

    providers: frozenset[str] = frozenset(catalog.cloud_provider_names())
    local_models: frozenset[str] = frozenset(catalog.local_short_names())
    upstream: Mapping[str, str] = field(default_factory=dict)  # deployment key -> model
    slack: bool = False
    speech_route: str = catalog.SPEECH_ROUTE  # `[voice] route`: the group that transcribes
    image: str = DEFAULT_IMAGE
    linux_dir: str = DEFAULT_LINUX_DIR


@dataclass
class RoutePlan:
    route: str
    tasks: list[str]
    steps: list[Deployment]
    note: str = ""  # why the cascade differs from the catalog's, if it does

    @property
    def fallbacks(self) -> list[str]:
        return [d.key for d in self.steps[1:]]

    @property
    def primary_id(self) -> str:
        # One deployment may head several routes; LiteLLM needs every model_info.id unique.
        return f"{self.steps[0].key}@{self.route}"


@dataclass
class Plan:
    routes: list[RoutePlan]
    omitted: list[tuple[str, str]]  # (route, why) for routes left out
    deployments: list[Deployment]  # every deployment used, catalog order
    long_routes: dict[str, str]  # route -> its long-input route (context-window fallback)
    options: Options

    @property
    def providers(self) -> list[Provider]:
        used = {d.provider for d in self.deployments}
        return [p for p in catalog.PROVIDERS.values() if p.name in used]

    @property
    def steps(self) -> list[Deployment]:
        """Deployments that some route falls back to: each gets its own model group."""
        targets = {key for r in self.routes for key in r.fallbacks}
        return [d for d in self.deployments if d.key in targets]


@dataclass
class Written:
    path: Path
    status: str  # "written", "unchanged", "replaced"


def parse_list(value: str | None, valid: Iterable[str], what: str) -> frozenset[str] | None:
    """A comma-separated choice ("all", "none" or names) checked against `valid`."""
    if value is None:
        return None
    valid = list(valid)
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    if words == ["all"]:
        return frozenset(valid)
    if words in (["none"], []):
        return frozenset()
    bad = [w for w in words if w not in valid]
    if bad:
        raise UsageError(
            f"unknown {what}: {', '.join(bad)}",
            f"Choose from: {', '.join(valid)} (comma-separated), or all, or none.",
        )
    return frozenset(words)


def parse_upstream(pairs: Iterable[str]) -> dict[str, str]:
    """`--upstream STEP=MODEL` pairs, e.g. apex-gemma3-27b=gemma3:27b."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, model = pair.partition("=")
        key, model = key.strip(), model.strip()
        if not sep or not model:
            raise UsageError(
                f"--upstream {pair!r} is not STEP=MODEL",
                "For example: --upstream apex-gemma3-27b=gemma3:27b",
            )
        if key not in catalog.DEPLOYMENTS:
            raise UsageError(
                f"--upstream: no step named {key!r}",
                f"Steps: {', '.join(catalog.DEPLOYMENTS)}.",
            )
        out[key] = model
    return out


def _included(d: Deployment, options: Options) -> bool:
    provider = catalog.PROVIDERS[d.provider]
    if provider.local:
        return d.short in options.local_models
    return provider.name in options.providers


def make_plan(tasks: Mapping[str, Task], options: Options) -> Plan:
    """Which route tries which deployments, for every route the task table uses."""
    deployments = {
        key: replace(d, model=options.upstream.get(key, d.model))
        for key, d in catalog.DEPLOYMENTS.items()
    }
    users = catalog.routes_of(tasks)
    long_routes = {t.route: t.long_route for t in tasks.values() if t.long_route}
    default_chain = [
        deployments[k]
        for k in catalog.CHAINS[catalog.DEFAULT_CHAIN_ROUTE]
        if _included(deployments[k], options) and not _paid(deployments[k])
    ]
    routes: list[RoutePlan] = []
    omitted: list[tuple[str, str]] = []
    for route in users:
        note = ""
        if route in catalog.CHAINS:
            steps = [deployments[k] for k in catalog.CHAINS[route]]
            steps = [d for d in steps if _included(d, options)]
        else:
            steps = list(default_chain)
            note = f"not a built-in route: it cascades like `{catalog.DEFAULT_CHAIN_ROUTE}`"
        if route == PREMIUM_ROUTE:
            if not steps:
                omitted.append((route, "the paid provider (anthropic) is not included"))
                continue
        elif not steps:
            steps = list(default_chain)
            note = (
                f"none of its own steps is included: it cascades like "
                f"`{catalog.DEFAULT_CHAIN_ROUTE}`"
            )
            if not steps:
                omitted.append((route, "no included provider or local model can answer it"))
                continue
        if route != PREMIUM_ROUTE and any(_paid(d) for d in steps):
            # The catalog guarantees this; a user route must not reach paid Claude either.
            steps = [d for d in steps if not _paid(d)]
        routes.append(RoutePlan(route, users[route], steps, note))
    speech = [deployments[k] for k in catalog.SPEECH_CHAIN if _included(deployments[k], options)]
    if speech:
        routes.append(RoutePlan(options.speech_route, ["voice memos"], speech))
    else:
        omitted.append((options.speech_route, "no Whisper is included (whisper, groq)"))
    used_keys = {d.key for r in routes for d in r.steps}
    return Plan(
        routes=routes,
        omitted=omitted,
        deployments=[d for k, d in deployments.items() if k in used_keys],
        long_routes={
            r: lr
            for r, lr in long_routes.items()
            if r in {p.route for p in routes} and lr in {p.route for p in routes}
        },
        options=options,
    )


def _paid(d: Deployment) -> bool:
    return catalog.PROVIDERS[d.provider].paid


# ----- a small YAML writer: the subset config.yaml needs, deterministic, no dependency ------

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _yaml(value: Any, indent: int = 0) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_scalar(key)}:")
                lines.extend(_yaml(item, indent + 2))
            elif isinstance(item, list):
                lines.append(f"{pad}{_scalar(key)}: []")
            else:
                lines.append(f"{pad}{_scalar(key)}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                lines.append(f"{pad}- [{', '.join(_scalar(x) for x in item)}]")
            elif isinstance(item, dict) and item:
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(value))
    return lines


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(_scalar(x) for x in items) + "]"


# ----- config.yaml ------------------------------------------------------------------------


def _litellm_params(d: Deployment) -> dict[str, Any]:
    p = catalog.PROVIDERS[d.provider]
    params: dict[str, Any] = {
        "model": f"{p.prefix}/{d.model}",
        "api_base": f"os.environ/{p.base_env}",
        "api_key": f"os.environ/{p.key_env}",
        "timeout": p.timeout,
        "stream_timeout": p.stream_timeout,
    }
    if not p.paid and d.mode == "audio_transcription":
        params["input_cost_per_second"] = 0  # speech is priced by the second of audio
    elif not p.paid:
        # Free tiers and the local GPU cost nothing: the cost header says 0, not a list price.
        params["input_cost_per_token"] = 0
        params["output_cost_per_token"] = 0
    if d.context:
        # LiteLLM's ollama_chat/ sends this as options.num_ctx on every request (1.106.12
        # sends none unless it is set here; then Ollama's default, often 4,096, applies).
        params["num_ctx"] = d.context
    if d.rpm is not None:
        params["rpm"] = d.rpm
    if d.tpm is not None:
        params["tpm"] = d.tpm
    return params


# In a route's model_info: an input past this step's max_input_tokens goes on to the route's
# next step (LiteLLM's pre-call check), so the figure is not the route's limit. brain reads it
# from /model/info (brain.backends.apex) and then lets Apex decide.
LONG_INPUT_FALLS_BACK = "long_input_falls_back"


def _entry(group: str, d: Deployment, model_id: str, more_steps: bool = False) -> list[str]:
    info: dict[str, Any] = {"id": model_id}
    if d.context:
        # What LiteLLM's pre-call check compares the input with (it then skips this step):
        # the context less room for the answer.
        info["max_input_tokens"] = d.context - ANSWER_ROOM
        if more_steps:
            info[LONG_INPUT_FALLS_BACK] = True
    if d.mode:
        info["mode"] = d.mode  # LiteLLM serves /v1/audio/transcriptions for these
    entry = {
        "model_name": group,
        "litellm_params": _litellm_params(d),
        "model_info": info,
    }
    return _yaml([entry], 2)


def _chain_text(r: RoutePlan) -> str:
    return " → ".join(d.key for d in r.steps)


def render_config(plan: Plan) -> str:
    # long: the file top to bottom, one block per section, so it reads like the YAML it writes.
    out: list[str] = [
        f"# LiteLLM proxy configuration for Apex, written by `brain apex render` (brain "
        f"{__version__})",
        f"# from brain's task table. For litellm[proxy]=={LITELLM_VERSION} (never 1.107.0).",
        "# Change the task table or the render options and render again (--force) rather than",
        "# editing this file: `brain apex check` compares brain's routes with what Apex serves.",
        "# No secret is written here: every key and api_base is os.environ/NAME, from Apex's .env.",
        "#",
        "# Routes (the model groups brain asks for) and what answers them, in order:",
    ]
    width = max(len(r.route) for r in plan.routes) if plan.routes else 0
    for r in plan.routes:
        tail = "   (paid; no fallback)" if r.route == PREMIUM_ROUTE else ""
        if len(r.steps) == 1 and r.route != PREMIUM_ROUTE:
            tail = "   (no fallback on Apex)"
        out.append(f"#   {r.route.ljust(width)}  {_chain_text(r)}{tail}")
    for route, why in plan.omitted:
        out.append(f"#   {route.ljust(width)}  left out: {why}")
    out.append("#")
    out.append(
        "# A step that fails (error, refused, rate limited, or no first token within its"
        " stream_timeout)"
    )
    out.append("# hands the request to the next one within seconds; answers name the step in the")
    out.append(
        "# x-litellm-model-id header, and x-litellm-attempted-fallbacks counts the hand-offs."
    )
    out.append("")
    out.append("model_list:")
    out.append("  # Routes: one model group per route, holding its first step.")
    for r in plan.routes:
        d = r.steps[0]
        out.append("")
        used_by = "voice memos" if d.mode else f"tasks {', '.join(r.tasks)}"
        out.append(f"  # {r.route}: {used_by}. First step: {d.title}.")
        if r.note:
            out.append(f"  # ({r.note})")
        out.extend(_entry(r.route, d, r.primary_id, more_steps=bool(r.fallbacks)))
    steps = plan.steps
    if steps:
        out.append("")
        out.append("  # Steps: one model group per deployment a route falls back to.")
        out.append(
            "  # Limits are counted per deployment; a model that also heads a route counts twice."
        )
        for d in steps:
            out.append("")
            note = f"  # {d.title}."
            if d.limits:
                note += f" {d.limits}"
                if d.verified_on:
                    note += f" (checked {d.verified_on})"
            out.append(note)
            out.extend(_entry(d.key, d, d.key))
    out.append("")
    out.append("litellm_settings:")
    out.extend(
        _yaml(
            {
                "drop_params": True,
                "num_retries": 0,
                "request_timeout": 600,
            },
            2,
        )
    )
    out.append("  # Claude Code sends /v1/messages: answer it through chat completions, which")
    out.append("  # Ollama and the free tiers speak (else LiteLLM calls /v1/responses and fails).")
    out.append("  use_chat_completions_url_for_anthropic_messages: true")
    out.append("  # No tokenizer downloads (an offline Apex would stall ~23 s on a 'llama' model).")
    out.append("  disable_hf_tokenizer_download: true")
    out.append("  # Keep the user's text out of error messages and alerts.")
    out.append("  redact_messages_in_exceptions: true")
    out.append("")
    out.append("router_settings:")
    out.append("  routing_strategy: simple-shuffle")
    out.append("  # No retries on the same step: the next step is the retry, and it is faster.")
    out.append("  num_retries: 0")
    out.append("  allowed_fails: 3")
    out.append(f"  cooldown_time: {COOLDOWN_SECONDS}")
    out.append("  # Keep within each free tier's requests/tokens per minute (rpm/tpm above).")
    out.append("  optional_pre_call_checks: [enforce_model_rate_limits]")
    out.append("  # An input longer than a step's max_input_tokens skips that step (the next one")
    out.append("  # takes it) instead of being cut by Ollama's context.")
    out.append("  enable_pre_call_checks: true")
    with_fallbacks = [r for r in plan.routes if r.fallbacks]
    if with_fallbacks:
        out.append(
            "  # The cascade. Routes not listed here (code, premium) never fall back on Apex."
        )
        out.append("  fallbacks:")
        for r in with_fallbacks:
            out.append(f"    - {_scalar(r.route)}: {_flow(r.fallbacks)}")
    else:
        out.append("  fallbacks: []")
    out.extend(_context_window_fallbacks(plan))
    out.append("")
    out.append("general_settings:")
    out.append("  # The key brain and Claude Code send (`brain keys set apex` on the laptop).")
    out.append(f"  master_key: os.environ/{MASTER_KEY_ENV}")
    out.append("  # Tell brain why a fallback happened (it asks with include_fallback_errors):")
    out.append("  # the x-litellm-fallback-errors header, and a metadata chunk on streams.")
    out.append("  expose_fallback_errors_to_caller: true")
    if plan.options.slack:
        out.append(f"  # Slack alerts: webhook in {SLACK_ENV} (.env). LiteLLM has no per-fallback")
        out.append("  # alert; brain posts those itself ([notify] slack = true on the laptop).")
        out.append("  alerting: [slack]")
        out.append("  alerting_threshold: 300")
        out.append(
            "  alert_types: [llm_exceptions, llm_too_slow, llm_requests_hanging, outage_alerts,"
            " cooldown_deployment]"
        )
    return "\n".join(out) + "\n"


def _context_window_fallbacks(plan: Plan) -> list[str]:
    """Where an input too long for a step goes: its task's long-input route when it has one,
    else the route's next steps. LiteLLM 1.106.12: once context_window_fallbacks is set, a
    context error on a route missing from it is returned as is (no plain fallback), so every
    cascading route is listed."""
    too_long = {r.route: r.fallbacks for r in plan.routes if r.fallbacks}
    too_long.update({r: [lr] for r, lr in plan.long_routes.items()})
    if not too_long:
        return []
    out = [
        "  # Input too long for a step: its task's long-input route takes it when it has",
        "  # one, else the route's next steps.",
        "  context_window_fallbacks:",
    ]
    out += [
        f"    - {_scalar(r.route)}: {_flow(too_long[r.route])}"
        for r in plan.routes
        if r.route in too_long
    ]
    return out


# ----- .env.example -----------------------------------------------------------------------


def render_env(plan: Plan) -> str:
    out = [
        "# Environment for the LiteLLM proxy on Apex, written by `brain apex render`.",
        "# Copy this file to .env next to docker-compose.yml and fill in the empty values.",
        "# .env holds your keys: keep it on Apex only, readable by you only; never commit it.",
        "",
        "# The address the proxy listens on: Apex's Tailscale IPv4 (run `tailscale ip -4`).",
        f"{TAILSCALE_ENV}=",
        "",
        "# The key brain and Claude Code must send; any long random string starting with sk-.",
        "# Make one with: python -c \"import secrets; print('sk-' + secrets.token_urlsafe(32))\"",
        "# then store the same value on the laptop: brain keys set apex",
        f"{MASTER_KEY_ENV}=",
    ]
    for p in plan.providers:
        out.append("")
        out.append(f"# {p.title}.")
        out.append(f"# Key: {p.key_help}")
        if p.local:
            if p.name == "ollama":
                out.append(
                    "# Base: Ollama on this machine, seen from inside the container (no /v1:"
                )
                out.append(
                    "# LiteLLM speaks Ollama's own API). Without Docker: http://127.0.0.1:11434"
                )
                out.append(f"{p.key_env}=ollama")
            else:
                out.append(
                    "# Base: the Whisper server (docs/voice.md) on this machine, seen from "
                    "inside the container."
                )
                out.append(f"{p.key_env}={p.placeholder_key}")
        else:
            out.append(f"{p.key_env}=")
        out.append(f"{p.base_env}={p.default_base}")
    if plan.options.slack:
        out.append("")
        out.append("# Slack incoming webhook for LiteLLM's alerts (outages, errors, slow answers):")
        out.append("# https://api.slack.com/apps → your app → Incoming Webhooks → Add New Webhook.")
        out.append(f"{SLACK_ENV}=")
    out.append("")
    out.append("# Keep the proxy quiet and offline-friendly: the model price list bundled with")
    out.append("# LiteLLM (else it is fetched from the internet at every start), no telemetry,")
    out.append("# no Hugging Face downloads.")
    out.append("LITELLM_LOCAL_MODEL_COST_MAP=True")
    out.append("LITELLM_TELEMETRY=False")
    out.append("HF_HUB_OFFLINE=1")
    return "\n".join(out) + "\n"


# ----- templates ----------------------------------------------------------------------------


def _template(name: str, values: Mapping[str, str]) -> str:
    text = resources.files("brain.apex").joinpath("templates", name).read_text("utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.findall(r"@@[A-Z_]+@@", text)
    if leftover:  # a template and this code disagree: a bug, not a user error
        raise RuntimeError(f"template {name} has unfilled placeholders: {leftover}")
    return text


def render_files(tasks: Mapping[str, Task], options: Options) -> tuple[Plan, dict[str, str]]:
    """The plan and every file's text, by file name."""
    plan = make_plan(tasks, options)
    if not plan.routes:
        raise UsageError(
            "nothing to render: no included provider or local model can answer any route.",
            "Include at least one local model (--local-models) or provider (--providers).",
        )
    values = {
        "VERSION": __version__,
        "LITELLM_VERSION": LITELLM_VERSION,
        "IMAGE": options.image,
        "PORT": str(PORT),
        "TAILSCALE_ENV": TAILSCALE_ENV,
        "LINUX_DIR": options.linux_dir,
    }
    files = {
        "config.yaml": render_config(plan),
        ".env.example": render_env(plan),
        "docker-compose.yml": _template("docker-compose.yml", values),
        "apex-autostart.ps1": _template("apex-autostart.ps1", values),
        "brain-apex.service": _template("brain-apex.service", values),
    }
    return plan, files


def _same(path: Path, data: bytes) -> bool:
    """The file at `path` holds exactly `data` (read only as far as its size allows)."""
    if path.stat().st_size != len(data):
        return False
    with path.open("rb") as fh:
        return fh.read(len(data) + 1) == data


def write_files(directory: Path, files: Mapping[str, str], *, force: bool) -> list[Written]:
    """Write `files` into `directory`; an existing file that differs needs `force`."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory", "Name a directory.")
    for name in files:
        path = directory / name
        if path.exists() and not path.is_file():  # a directory named config.yaml, a device
            raise UsageError(
                f"{path} exists and is not a file; nothing was written.",
                "Move it away, or render into another directory.",
            )
    clash = []
    for name, text in files.items():
        path = directory / name
        if path.exists() and not _same(path, text.encode("utf-8")) and not force:
            clash.append(name)
    if clash:
        raise UsageError(
            f"{directory} already has {', '.join(clash)} with other contents; nothing was written.",
            "Render into an empty directory, or add --force to replace them (a .env is never "
            "touched).",
        )
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Written] = []
    for name, text in files.items():
        path = directory / name
        data = text.encode("utf-8")
        if path.exists():
            if _same(path, data):
                written.append(Written(path, "unchanged"))
                continue
            status = "replaced"
        else:
            status = "written"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(Written(path, status))
    return written
