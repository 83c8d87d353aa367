"""Start a real LiteLLM proxy for integration tests, and stop it again.

The proxy is the one Apex runs (`litellm[proxy]==1.106.12`, installed into its own virtual
environment by `scripts/install-litellm.sh`; never 1.107.0, a compromised release). Tests find
it through the environment variable BRAIN_TEST_LITELLM, the path of that venv's `litellm`
executable; without it they are skipped with a message saying how to install it.

API (kept stable: other tests build on it):

    from litellm_proxy import start_proxy, require_litellm

    with start_proxy(config_path, env={"OLLAMA_API_BASE": fake.url + "/v1"}) as url:
        httpx.get(url + "/health/liveliness")      # url: "http://127.0.0.1:PORT"
        url.log_text()                              # the proxy's stdout+stderr so far

- `start_proxy(config_path, env=None, *, master_key=None, startup_timeout=None)` is a context
  manager. It starts `litellm --config CONFIG --host 127.0.0.1 --port PORT` on a free port with
  os.environ plus `env` (env wins), waits until `GET /health/liveliness` answers 200, and
  yields the base URL as a `ProxyURL` (a `str` with `.log_text()`, `.log_path`, `.process`).
  On exit the proxy is terminated (then killed after 10 s). If it exits or does not become
  live in time, the test fails with the tail of the proxy's log.
- `master_key`, when given, is exported as LITELLM_MASTER_KEY (the rendered config reads
  `general_settings.master_key` from it).
- `require_litellm()` returns the executable's path, or skips the test (pytest.skip) with the
  install command when BRAIN_TEST_LITELLM is unset or not executable.
- Start-up takes ~15 s on 2 cores (Python imports), so use a module- or session-scoped
  fixture and start as few proxies as possible.

The environment the proxy gets also keeps it offline and quiet: it uses the model price map
bundled with LiteLLM (no fetch from GitHub), does not try to download Hugging Face tokenizers,
and sends no telemetry; requests to 127.0.0.1 never go through an HTTP proxy.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ENV_VAR = "BRAIN_TEST_LITELLM"
VERSION = "1.106.12"
INSTALL_HINT = (
    f"set {ENV_VAR} to the path of a `litellm` executable (litellm[proxy]=={VERSION}); "
    f'e.g. export {ENV_VAR}="$(scripts/install-litellm.sh /tmp/litellm-venv | tail -n 1)"'
)
# Generous: two cores shared with other jobs; a normal start takes ~15 s.
DEFAULT_STARTUP_TIMEOUT = float(os.environ.get("BRAIN_TEST_LITELLM_STARTUP", "120"))

QUIET_OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price map from GitHub
    "HF_HUB_OFFLINE": "1",  # no tokenizer downloads (with disable_hf_tokenizer_download)
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "INFO",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1",
}


class ProxyURL(str):
    """The proxy's base URL ("http://127.0.0.1:PORT"), carrying its process and log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def litellm_executable() -> str | None:
    """The path in BRAIN_TEST_LITELLM when it names an executable file, else None."""
    path = os.environ.get(ENV_VAR, "").strip()
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return None


def require_litellm() -> str:
    """The litellm executable, or skip the calling test saying how to install it."""
    exe = litellm_executable()
    if exe is None:
        given = os.environ.get(ENV_VAR)
        why = f"{ENV_VAR}={given!r} is not an executable file" if given else f"{ENV_VAR} is unset"
        pytest.skip(f"no LiteLLM proxy to test against: {why}; {INSTALL_HINT}")
    return exe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _live(url: str) -> bool:
    import httpx

    try:
        response = httpx.get(url + "/health/liveliness", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@contextlib.contextmanager
def start_proxy(
    config_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    master_key: str | None = None,
    startup_timeout: float | None = None,
) -> Iterator[ProxyURL]:
    """Run a LiteLLM proxy with `config_path` until the block ends; yield its base URL."""
    exe = require_litellm()
    port = free_port()
    full_env = dict(os.environ)
    full_env.update(QUIET_OFFLINE_ENV)
    if master_key is not None:
        full_env["LITELLM_MASTER_KEY"] = master_key
    full_env.update(env or {})
    log_dir = Path(tempfile.mkdtemp(prefix="litellm-proxy-"))
    log_path = log_dir / "proxy.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [
            exe,
            "--config",
            str(Path(config_path).resolve()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=log_dir,
        start_new_session=True,
    )
    url = ProxyURL(f"http://127.0.0.1:{port}")
    url.process = process
    url.log_path = log_path
    try:
        deadline = time.monotonic() + (startup_timeout or DEFAULT_STARTUP_TIMEOUT)
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the LiteLLM proxy exited with code {process.returncode} before it was "
                    f"live; its log ({log_path}):\n{_tail(url.log_text())}"
                )
            if _live(url):
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the LiteLLM proxy was not live after {startup_timeout or DEFAULT_STARTUP_TIMEOUT:.0f} s; "
                    f"its log ({log_path}):\n{_tail(url.log_text())}"
                )
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()
