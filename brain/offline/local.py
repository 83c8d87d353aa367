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


def loaded(url: str, model: str, timeout: float = 0.5) -> bool | None:
    """Is `model` loaded in Ollama's memory (/api/ps)? None when the server is not Ollama."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + "/api/ps", timeout=timeout, trust_env=False)
        if response.status_code != 200:
            return None
        names = [m.get("name") or m.get("model") or "" for m in response.json().get("models", [])]
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return any(_same_model(n, model) for n in names)


def keep_warm(url: str, model: str, keep_alive: str, timeout: float = 1.0) -> None:
    """Ask Ollama to keep `model` loaded for `keep_alive` (the /v1 API has no such field, and
    each /v1 request resets the timer to the server default). Best effort, after an answer."""
    import httpx

    try:
        httpx.post(
            url.rstrip("/") + "/api/generate",
            json={"model": model, "keep_alive": _keep_alive_value(keep_alive)},
            timeout=timeout,
            trust_env=False,
        )
    except httpx.HTTPError:
        pass


def _keep_alive_value(value: str) -> str | int:
    # Ollama takes a duration ("30m") or seconds; "-1" means forever and must be a number.
    try:
        return int(value)
    except ValueError:
        return value


# The usual ports of local OpenAI-compatible servers.
USUAL_PORTS = {11434: "Ollama", 8080: "llama.cpp llama-server", 1234: "LM Studio", 8000: "vLLM"}


@dataclass
class Found:
    url: str
    kind: str
    models: list[str]


def discover(ports: dict[int, str] | None = None, timeout: float = 0.3) -> list[Found]:
    """Local servers answering on the usual ports (refused ports cost nothing)."""
    import httpx

    found = []
    for port, label in (ports or USUAL_PORTS).items():
        base = f"http://127.0.0.1:{port}"
        try:
            tags = httpx.get(base + "/api/tags", timeout=timeout, trust_env=False)
        except httpx.HTTPError:
            continue
        if tags.status_code == 200:
            try:
                names = [m.get("name", "") for m in tags.json().get("models", [])]
            except (ValueError, AttributeError):
                names = []
            found.append(Found(base, "Ollama", [n for n in names if n]))
            continue
        try:
            models = httpx.get(base + "/v1/models", timeout=timeout, trust_env=False)
            ids = (
                [m.get("id", "") for m in models.json().get("data", [])]
                if models.status_code == 200
                else None
            )
        except (httpx.HTTPError, ValueError, AttributeError):
            ids = None
        if ids is not None:
            found.append(Found(base, f"OpenAI-compatible ({label}?)", [i for i in ids if i]))
    return found
