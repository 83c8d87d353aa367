"""What Apex can route to: providers, their deployments, and each built-in route's cascade.

Owns the data `brain apex render` writes into LiteLLM's config.yaml: for every provider the
environment variables that carry its key and its api_base (never a value), where to get the
key, the LiteLLM model prefix and the timeouts; for every deployment its model, its free-tier
limits (research/providers.md, with the date they were checked) and a short title; and the
order in which a built-in route tries them. Free tiers change often: the limits are data here,
each with `verified_on`, so they are updated in one place.

Rules that must stay true (tests check them): a paid deployment is only ever the first and
only step of the premium route; `code` never reaches a paid deployment; the premium route
has exactly one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from brain.tasks import PREMIUM_ROUTE, Task


@dataclass(frozen=True)
class Provider:
    name: str  # what --providers takes
    title: str
    key_env: str  # the environment variable holding its key (in Apex's .env)
    base_env: str  # the environment variable holding its api_base
    default_base: str  # the public base URL, written into .env.example
    key_help: str  # where to get the key, for .env.example
    prefix: str  # LiteLLM's provider prefix for `model:`
    timeout: int  # seconds for a whole non-streamed call
    stream_timeout: int  # seconds to wait on a stream before Apex moves to the next step
    paid: bool = False
    local: bool = False
    placeholder_key: str = ""  # a server on Apex that needs no key: the value .env.example gives


@dataclass(frozen=True)
class Deployment:
    key: str  # model group name of this step, and its model_info.id
    provider: str
    model: str  # the upstream's model name (an Ollama tag for local models)
    title: str
    rpm: int | None = None  # requests per minute LiteLLM allows itself (free tier)
    tpm: int | None = None  # tokens per minute
    limits: str = ""  # the free tier as documented, for the comment in config.yaml
    verified_on: str = ""
    short: str = ""  # the name --local-models takes (local deployments only)
    mode: str = ""  # LiteLLM's model_info mode when not chat: audio_transcription
    # Local models: the context Ollama is told to use (num_ctx). Ollama's own default is 4,096
    # tokens under 24 GiB of VRAM and it silently drops what does not fit. Chosen so the KV
    # cache fits beside the weights on a 24 GB GPU (an estimate from the model's shape; not
    # measured on a GPU): gemma's sliding-window layers keep its cache small.
    context: int | None = None


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider(
            "ollama",
            "Ollama on Apex (local GPU)",
            "OLLAMA_API_KEY",
            "OLLAMA_API_BASE",
            "http://host.docker.internal:11434",
            "No key: Ollama ignores it; keep `ollama`.",
            # Ollama's native /api/chat: the only way to set its context (num_ctx) per request.
            "ollama_chat",
            timeout=300,
            stream_timeout=15,
            local=True,
            placeholder_key="ollama",
        ),
        Provider(
            "whisper",
            "A Whisper server on Apex (local GPU; OpenAI-compatible, e.g. speaches)",
            "WHISPER_API_KEY",
            "WHISPER_API_BASE",
            "http://host.docker.internal:8000/v1",
            "No key: the Whisper server ignores it, but LiteLLM's OpenAI client needs one; keep "
            "`whisper`.",
            "openai",
            timeout=600,
            stream_timeout=20,
            local=True,
            placeholder_key="whisper",
        ),
        Provider(
            "cerebras",
            "Cerebras (free tier)",
            "CEREBRAS_API_KEY",
            "CEREBRAS_API_BASE",
            "https://api.cerebras.ai/v1",
            "https://cloud.cerebras.ai → API Keys (free tier).",
            "cerebras",
            timeout=60,
            stream_timeout=5,
        ),
        Provider(
            "groq",
            "Groq (free tier)",
            "GROQ_API_KEY",
            "GROQ_API_BASE",
            "https://api.groq.com/openai/v1",
            "https://console.groq.com/keys (free tier; keys start with gsk_).",
            "groq",
            timeout=60,
            stream_timeout=5,
        ),
        Provider(
            "gemini",
            "Google Gemini (AI Studio free tier, OpenAI-compatible endpoint)",
            "GEMINI_API_KEY",
            "GEMINI_API_BASE",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "https://aistudio.google.com/apikey (free tier; limits are per Google Cloud project).",
            "openai",
            timeout=120,
            stream_timeout=20,
        ),
        Provider(
            "cloudflare",
            "Cloudflare Workers AI (free allocation, OpenAI-compatible endpoint)",
            "CLOUDFLARE_API_KEY",
            "CLOUDFLARE_API_BASE",
            "https://api.cloudflare.com/client/v4/accounts/YOUR_ACCOUNT_ID/ai/v1",
            "https://dash.cloudflare.com → My Profile → API Tokens → Create Token, template "
            "'Workers AI'; put your account ID (dashboard → Workers AI) into the base URL.",
            "openai",
            timeout=60,
            stream_timeout=10,
        ),
        Provider(
            "anthropic",
            "Anthropic Claude (paid, the premium lane only)",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_API_BASE",
            "https://api.anthropic.com",
            "https://console.anthropic.com → API Keys (paid; set a spend limit there too).",
            "anthropic",
            timeout=600,
            stream_timeout=120,
            paid=True,
        ),
    ]
}

DEPLOYMENTS: dict[str, Deployment] = {
    d.key: d
    for d in [
        Deployment(
            "apex-gemma3-27b",
            "ollama",
            "gemma3:27b-it-qat",
            "Gemma 3 27B QAT on Apex",
            short="gemma3-27b",
            context=32768,
        ),
        Deployment(
            "apex-gemma4-26b",
            "ollama",
            "gemma4:26b",
            "Gemma 4 26B MoE (A4B) on Apex",
            short="gemma4-26b",
            context=32768,
        ),
        Deployment(
            "apex-gemma4-31b",
            "ollama",
            "gemma4:31b",
            "Gemma 4 31B on Apex",
            short="gemma4-31b",
            context=16384,
        ),
        Deployment(
            "apex-qwen-32b",
            "ollama",
            "qwen2.5-coder:32b",
            "Qwen 2.5 Coder 32B on Apex",
            short="qwen-32b",
            context=16384,
        ),
        Deployment(
            "cerebras-llama-3.3-70b",
            "cerebras",
            "llama-3.3-70b",
            "Llama 3.3 70B on Cerebras",
            rpm=5,
            tpm=30000,
            limits="free trial: 5 RPM, 30K TPM, 1M TPH, 1M TPD per model (older table: 30 RPM, "
            "60K TPM, 14.4K RPD); token bucket, refills continuously",
            verified_on="2026-07-18",
        ),
        Deployment(
            "groq-llama-3.3-70b",
            "groq",
            "llama-3.3-70b-versatile",
            "Llama 3.3 70B on Groq",
            rpm=30,
            tpm=12000,
            limits="free: 30 RPM, 1K RPD, 12K TPM, 100K TPD",
            verified_on="2026-08-08",
        ),
        Deployment(
            "gemini-flash-lite",
            "gemini",
            "gemini-3.1-flash-lite",
            "Gemini 3.1 Flash-Lite (1M context)",
            rpm=15,
            limits="free (reported): 15 RPM, 500 RPD, per project; RPD resets at midnight Pacific",
            verified_on="2026-07-18",
        ),
        Deployment(
            "gemini-2.5-flash",
            "gemini",
            "gemini-2.5-flash",
            "Gemini 2.5 Flash (1M context)",
            rpm=5,
            tpm=250000,
            limits="free (reported): 5 RPM, 20 RPD, 250K TPM, per project; RPD resets at "
            "midnight Pacific",
            verified_on="2026-07-18",
        ),
        Deployment(
            "cloudflare-llama-3.3-70b",
            "cloudflare",
            "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
            "Llama 3.3 70B on Cloudflare Workers AI",
            rpm=300,
            limits="free: 10,000 Neurons/day per account, 300 RPM for text generation; resets "
            "00:00 UTC",
            verified_on="2026-09-17",
        ),
        Deployment(
            "apex-whisper",
            "whisper",
            "Systran/faster-distil-whisper-large-v3",
            "Whisper (distil-large-v3) on Apex's GPU",
            short="whisper",
            mode="audio_transcription",
        ),
        Deployment(
            "groq-whisper-large-v3-turbo",
            "groq",
            "whisper-large-v3-turbo",
            "Whisper large-v3-turbo on Groq",
            rpm=20,
            limits="free: 20 RPM, 2K RPD, 7.2K audio seconds/hour, 28.8K audio seconds/day; "
            "files up to 25 MB",
            verified_on="2026-12-06",
            mode="audio_transcription",
        ),
        Deployment(
            "claude-sonnet-4-5",
            "anthropic",
            "claude-sonnet-4-5",
            "Claude Sonnet 4.5 (paid)",
            limits="paid usage tiers; no free tier",
        ),
    ]
}

# The cascade of every built-in route, first step first (DESIGN.md's table; Groq follows
# Cerebras because it serves the same Llama 3.3 70B on another free tier). `code` stays on
# Apex's own GPU: no cloud step, and never the paid lane. The premium route has its one
# paid step and no fallback.
CHAINS: dict[str, list[str]] = {
    "brain_dump": ["apex-gemma3-27b", "cerebras-llama-3.3-70b", "groq-llama-3.3-70b"],
    "daily_digest": ["apex-gemma4-26b", "cerebras-llama-3.3-70b", "groq-llama-3.3-70b"],
    "long_context_summary": ["gemini-flash-lite", "gemini-2.5-flash", "apex-gemma3-27b"],
    "draft": [
        "apex-gemma4-31b",
        "apex-gemma3-27b",
        "cerebras-llama-3.3-70b",
        "groq-llama-3.3-70b",
    ],
    "code": ["apex-qwen-32b"],
    PREMIUM_ROUTE: ["claude-sonnet-4-5"],
    "default": [
        "apex-gemma3-27b",
        "cerebras-llama-3.3-70b",
        "groq-llama-3.3-70b",
        "gemini-flash-lite",
        "cloudflare-llama-3.3-70b",
    ],
}

# A route the catalog does not know (a user task's own route) gets this route's cascade.
DEFAULT_CHAIN_ROUTE = "default"

# Speech (brain.voice: `brain dump memo.m4a`): the `[voice] route` group, Whisper on Apex's GPU
# first, then Groq's free Whisper. Never a chat model: a route left with no Whisper is left out.
SPEECH_CHAIN = ["apex-whisper", "groq-whisper-large-v3-turbo"]
SPEECH_ROUTE = "transcribe"


def local_short_names() -> list[str]:
    return [d.short for d in DEPLOYMENTS.values() if PROVIDERS[d.provider].local]


def cloud_provider_names() -> list[str]:
    return [p.name for p in PROVIDERS.values() if not p.local]


def routes_of(tasks: Mapping[str, Task]) -> dict[str, list[str]]:
    """Every route the task table uses (long-input routes too), with the tasks using it."""
    users: dict[str, list[str]] = {}
    for task in tasks.values():
        users.setdefault(task.route, []).append(task.name)
        if task.long_route:
            users.setdefault(task.long_route, []).append(f"{task.name} (long input)")
    order = [r for r in CHAINS if r in users] + sorted(r for r in users if r not in CHAINS)
    return {r: users[r] for r in order}
