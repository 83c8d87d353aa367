"""The real Claude Code, started by `brain claude --local -p "say hi"`, answered by a fake
OpenAI-compatible upstream through a real LiteLLM proxy (research/litellm.md, "Anthropic
format"): Claude Code → /v1/messages on LiteLLM → /v1/chat/completions upstream. And Claude
Code's `claude mcp add` / `claude mcp list` with `brain mcp` (docs/mcp.md).

Needs two things this machine may lack, and says so when it skips:
- LiteLLM (BRAIN_TEST_LITELLM; scripts/install-litellm.sh),
- Claude Code: BRAIN_TEST_CLAUDE (a `claude` executable), else `claude` on PATH, else the one
  scripts/install-claude-code.sh put in .test-tools/ (npm; ~400 MB, once). Otherwise the
  tests skip and name the script; .ci/run installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes import FakeOllama
from litellm_proxy import require_litellm, start_proxy

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = "sk-brain-test-master-0123456789"

CONFIG = """
model_list:
  - model_name: code
    litellm_params:
      model: openai/fake-coder
      api_base: {upstream}/v1
      api_key: fake-upstream-key
      timeout: 60
      stream_timeout: 60
litellm_settings:
  # Without it LiteLLM sends Claude Code's request to the upstream's /v1/responses, which
  # Ollama-style servers lack (research/litellm.md).
  use_chat_completions_url_for_anthropic_messages: true
  disable_hf_tokenizer_download: true
  drop_params: true
  num_retries: 0
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@pytest.fixture(scope="session")
def claude_program() -> str:
    explicit = os.environ.get("BRAIN_TEST_CLAUDE")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            pytest.fail(f"BRAIN_TEST_CLAUDE={explicit!r} is not an executable file")
        return explicit
    found = shutil.which("claude")
    if found:
        return found
    local = ROOT / ".test-tools" / "claude-code" / "node_modules" / ".bin" / "claude"
    if local.is_file():
        return str(local)
    # A test does not install a 400 MB tool behind the user's back (.ci/run does it).
    pytest.skip(
        "Claude Code is not installed for this test: run scripts/install-claude-code.sh "
        "(npm; ~400 MB, once), or set BRAIN_TEST_CLAUDE to a `claude` executable"
    )


@pytest.fixture
def litellm() -> str:
    """Listed before claude_program: without LiteLLM, skip before installing Claude Code."""
    return require_litellm()


def test_real_claude_code_through_real_litellm(
    litellm: str, claude_program: str, ollama: FakeOllama, brain_proc, tmp_path: Path
) -> None:
    # The upstream: an OpenAI-compatible server that streams chat completions.
    ollama.models = ["fake-coder"]
    ollama.pieces = ["hi from ", "the fake upstream"]
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(upstream=ollama.url))

    with start_proxy(config, master_key=MASTER_KEY) as proxy:
        env = {
            "PATH": f"{Path(claude_program).parent}{os.pathsep}{os.environ['PATH']}",
            "BRAIN_APEX_URL": proxy,
            "BRAIN_APEX_KEY": MASTER_KEY,
        }
        r = brain_proc("claude", "--local", "-p", "say hi", env=env, timeout=240)
        log = proxy.log_text()

    assert r.code == 0, f"stderr:\n{r.stderr}\nproxy log:\n{log[-3000:]}"
    assert "hi from the fake upstream" in r.stdout
    assert "route `code`" in r.stderr
    assert MASTER_KEY not in r.stderr and MASTER_KEY not in r.stdout
    # Claude Code's request reached the upstream as a chat completion for the route's model,
    # carrying the prompt (and the tools Claude Code offers).
    assert ollama.requests, "the upstream was never asked"
    assert {body["model"] for body in ollama.requests} == {"fake-coder"}
    asked = [b for b in ollama.requests if "say hi" in json.dumps(b["messages"])]
    assert asked, "no request to the upstream carried the prompt"
    assert asked[0].get("stream") is True
    assert asked[0].get("tools"), "Claude Code's tools did not reach the upstream"
    assert "/v1/messages" in log


def test_claude_mcp_add_connects_to_brain_mcp(claude_program: str, home) -> None:
    """docs/mcp.md's `claude mcp add`: Claude Code starts `brain mcp` and finds it healthy."""
    pytest.importorskip("mcp", reason="brain mcp needs the extra: pip install -e '.[mcp]'")
    from conftest import SUPPORT, brain_executable

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(Path(brain_executable()).parent), str(Path(claude_program).parent), env["PATH"]]
    )
    env["PYTHONPATH"] = str(SUPPORT)  # the test keyring, for brain mcp's subprocess

    def claude(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [claude_program, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=home.root,
            timeout=120,
        )

    added = claude("mcp", "add", "--scope", "user", "brain", "--", "brain", "mcp")
    assert added.returncode == 0, added.stderr
    listed = claude("mcp", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("brain:"))
    assert "brain mcp" in line and "Connected" in line, listed.stdout
