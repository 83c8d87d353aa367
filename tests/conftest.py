"""Every test gets its own HOME, XDG dirs, config and keyring; nothing touches the user's.

Fixtures: `apex` (FakeApex), `ollama` (FakeOllama), `anthropic` (FakeAnthropic), `brain`
(runs the installed console script in a subprocess with this environment), `config` (writes
config.toml).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "support"))

from fakes import FakeAnthropic, FakeApex, FakeOllama

SUPPORT = Path(__file__).parent / "support"

# A shell starts a background job (`cmd &`) with SIGINT ignored, and children inherit that:
# the tests that press Ctrl-C on a brain they start would then see it ignored. Run that way,
# the test process takes Ctrl-C back, so its children do too.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
BRAIN_ENV_VARS = [
    "BRAIN_CONFIG",
    "BRAIN_APEX_URL",
    "BRAIN_LOCAL_URL",
    "BRAIN_LOCAL_MODEL",
    "BRAIN_WHISPER_MODEL",
    "BRAIN_OFFLINE",
    "BRAIN_APEX_KEY",
    "BRAIN_SLACK_WEBHOOK",
    "BRAIN_ANTHROPIC_KEY",
    "NO_COLOR",
    "FORCE_COLOR",
]


@dataclass
class Home:
    root: Path
    config: Path
    data: Path
    cache: Path
    keyring: Path

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in BRAIN_ENV_VARS}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    root = tmp_path / "home"
    h = Home(
        root=root,
        config=root / ".config",
        data=root / ".local" / "share",
        cache=root / ".cache",
        keyring=root / "keyring.json",
    )
    root.mkdir()
    for var in BRAIN_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(root))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(h.config))
    monkeypatch.setenv("XDG_DATA_HOME", str(h.data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(h.cache))
    monkeypatch.setenv("BRAIN_TEST_KEYRING", str(h.keyring))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "brain_test_keyring.FileKeyring")
    # The local tier defaults to 127.0.0.1:11434; a developer's real Ollama must not answer tests.
    from fakes import refused_url

    monkeypatch.setenv("BRAIN_LOCAL_URL", refused_url())
    import keyring.core

    import brain.secrets

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    # Keys seen by one test are not masked in the next one (brain runs in-process).
    monkeypatch.setattr(brain.secrets, "_seen", set())
    monkeypatch.setattr(brain.secrets, "_chosen", None)
    yield h


def _session_server() -> Iterator[HTTPServer]:
    # One server per session (stopping one costs ~0.5 s); each test gets it cleared.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    if server.is_running():
        server.stop()


def _cleared(server: HTTPServer) -> Iterator[HTTPServer]:
    server.clear()
    yield server
    server.clear()


@pytest.fixture(scope="session")
def _apex_session_server() -> Iterator[HTTPServer]:
    yield from _session_server()


@pytest.fixture(scope="session")
def _ollama_session_server() -> Iterator[HTTPServer]:
    yield from _session_server()


@pytest.fixture
def apex_server(_apex_session_server: HTTPServer) -> Iterator[HTTPServer]:
    """A bare server where Apex's liveness probe answers (the probe runs beside every request);
    `server.clear()` first for one where it does not."""
    for server in _cleared(_apex_session_server):
        server.expect_request("/health/liveliness", method="GET").respond_with_data(
            '"I\'m alive!"', content_type="application/json"
        )
        yield server


@pytest.fixture
def apex(apex_server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeApex:
    fake = FakeApex(apex_server)
    monkeypatch.setenv("BRAIN_APEX_URL", fake.url)
    return fake


@pytest.fixture
def ollama_server(_ollama_session_server: HTTPServer) -> Iterator[HTTPServer]:
    yield from _cleared(_ollama_session_server)


@pytest.fixture
def ollama(ollama_server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeOllama:
    fake = FakeOllama(ollama_server)
    monkeypatch.setenv("BRAIN_LOCAL_URL", fake.url)
    return fake


@pytest.fixture(scope="session")
def _anthropic_session_server() -> Iterator[HTTPServer]:
    yield from _session_server()


@pytest.fixture
def anthropic_server(_anthropic_session_server: HTTPServer) -> Iterator[HTTPServer]:
    yield from _cleared(_anthropic_session_server)


@pytest.fixture
def anthropic(anthropic_server: HTTPServer) -> FakeAnthropic:
    """Anthropic's Messages API; point `[premium] anthropic_url` at `.url`."""
    return FakeAnthropic(anthropic_server)


def brain_executable() -> str:
    exe = Path(sys.executable).parent / "brain"
    if exe.exists():
        return str(exe)
    found = shutil.which("brain")
    if not found:
        pytest.fail("the `brain` console script is not installed: pip install -e '.[dev]'")
    return found


def spawn_brain(*args: str) -> subprocess.Popen[bytes]:
    """The installed brain as a running process with piped stdout/stderr, for tests that
    act on it mid-answer (Ctrl-C, kill -9, closing the pipe). Uses the test's environment."""
    return subprocess.Popen(
        [brain_executable(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@pytest.fixture
def brain(home: Home, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run brain in this process, as `brain ARGS` would from the shell (brain.cli.run: the one
    place errors become exit codes), with stdin, stdout and stderr captured and not terminals:
    brain("dump", "x", input="...", env={...}). For what needs a real process (signals, a
    pty, closing a pipe, the installed script itself) use `brain_proc`."""
    from click.testing import CliRunner

    from brain.cli import run as run_brain

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Run:
        monkeypatch.chdir(home.root)
        runner = CliRunner()
        data = input.encode() if isinstance(input, str) else (input or b"")
        with runner.isolation(input=data, env=env) as (out, err, _mixed):
            try:
                code = run_brain(list(args))
            except SystemExit as exc:  # shell completion ends the process itself
                code = exc.code if isinstance(exc.code, int) else 0
            sys.stdout.flush()
            sys.stderr.flush()
        return Run(code, out.getvalue().decode(), err.getvalue().decode())

    return run


@pytest.fixture
def brain_proc(home: Home) -> Any:
    """Run the installed `brain` in a subprocess: brain_proc("dump", "x", input="...")."""

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Run:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(SUPPORT), full_env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        full_env.update(env or {})
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [brain_executable(), *args],
            input=data if data is not None else b"",
            capture_output=True,
            env=full_env,
            timeout=timeout,
            cwd=home.root,
        )
        return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    return run


@pytest.fixture
def write_config(home: Home) -> Any:
    def write(text: str) -> Path:
        path = home.config / "brain" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def make_app(home: Home) -> Iterator[Any]:
    """An App in this process, from this test's environment: make_app(mode="offline",
    apex_first_token_timeout=0.5) sets [apex] first_token_timeout (section_key=value)."""
    from brain.app import App

    made: list[App] = []

    def make(mode: str = "auto", **values: Any) -> App:
        app = App.load(offline=mode == "offline", online=mode == "online")
        for name, value in values.items():
            section, _, key = name.partition("_")
            app.settings.values[section][key] = value
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def slack() -> Iterator[HTTPServer]:
    """A Slack webhook at `/hook` that answers "ok" (test_patio, test_digest)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    server.start()
    yield server
    server.clear()
    server.stop()
