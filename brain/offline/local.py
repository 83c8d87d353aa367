"""The local tier: Ollama (or any OpenAI-compatible server) on this laptop.

Owns the diagnosis of why the local model cannot answer: server not running versus model not
pulled (Ollama's /api/tags), with the exact command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LocalState:
    url: str
    running: bool
    model: str
    pulled: bool | None  # None: the server is not Ollama, so we cannot tell
    models: list[str]
    detail: str = ""

    def fix(self) -> str:
        if not self.running:
            return (
                f"Start Ollama on this laptop (`ollama serve`, or the Ollama app) so {self.url} "
                f"answers, then `ollama pull {self.model}` once."
            )
        if self.pulled is False:
            return f"Pull the model once: `ollama pull {self.model}`."
        return ""

    def summary(self) -> str:
        if not self.running:
            return f"nothing answers at {self.url} ({self.detail})"
        if self.pulled is False:
            return f"{self.url} is running, but model {self.model} is not pulled"
        return f"{self.url} is running with {self.model}"


def _same_model(a: str, b: str) -> bool:
    norm = lambda s: s if ":" in s else s + ":latest"  # noqa: E731 - Ollama's implicit tag
    return norm(a) == norm(b)


def inspect(url: str, model: str, timeout: float = 1.0) -> LocalState:
    """Ask the local server what it has. Ollama: /api/tags; others: /v1/models."""
    import httpx

    from brain.client import describe_transport

    base = url.rstrip("/")
    try:
        response = httpx.get(base + "/api/tags", timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return LocalState(url, False, model, None, [], describe_transport(exc))
    if response.status_code == 200:
        try:
            names = [m.get("name") or m.get("model") for m in response.json().get("models", [])]
        except (ValueError, AttributeError):
            names = []
        names = [n for n in names if n]
        return LocalState(url, True, model, any(_same_model(n, model) for n in names), names)
    # Not Ollama: llama-server, LM Studio, vLLM answer /v1/models.
    try:
        response = httpx.get(base + "/v1/models", timeout=timeout, trust_env=False)
        names = (
            [m.get("id") for m in response.json().get("data", [])]
            if response.status_code == 200
            else []
        )
    except (httpx.HTTPError, ValueError, AttributeError):
        names = []
    return LocalState(url, True, model, None, [n for n in names if n])
