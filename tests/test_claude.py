"""`brain claude`: the hand-over to Claude Code, with a stand-in `claude` on PATH that records
what it was started with (argv and environment) and exits with its own code.

The real Claude Code behind a real LiteLLM proxy is in test_claude_code_real.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from fakes import FakeApex, refused_url

from brain.claude_code import MODEL_VARS

KEY = "sk-apex-test-0123456789"

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CLAUDE_RECORD"], "w") as fh:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, fh)
sys.exit(7)
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> dict[str, str]:
    """A `claude` on PATH that records its argv and environment, then exits 7."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "claude"
    program.write_text(STAND_IN.format(python=sys.executable))
    program.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLAUDE_RECORD": str(tmp_path / "record.json"),
    }


def record(env: dict[str, str]) -> dict | None:
    path = Path(env["FAKE_CLAUDE_RECORD"])
    return json.loads(path.read_text()) if path.exists() else None


def test_local_points_claude_code_at_apex(apex: FakeApex, brain_proc, stand_in) -> None:
    apex.key = KEY
    apex.answer("code", "unused")
    env = {**stand_in, "BRAIN_APEX_KEY": KEY, "ANTHROPIC_API_KEY": "sk-ant-real-account"}
    r = brain_proc("claude", "--local", "-p", "say hi", "--output-format", "json", env=env)
    assert r.code == 7, r.stderr  # Claude Code's own exit code
    seen = record(stand_in)
    assert seen is not None
    assert seen["argv"] == ["-p", "say hi", "--output-format", "json"]
    child = seen["env"]
    assert child["ANTHROPIC_BASE_URL"] == apex.url
    assert child["ANTHROPIC_AUTH_TOKEN"] == KEY
    assert child["ANTHROPIC_API_KEY"] == ""  # the real account key does not travel to Apex
    assert {var: child[var] for var in MODEL_VARS} == dict.fromkeys(MODEL_VARS, "code")
    assert "route `code`" in r.stderr
    assert KEY not in r.stderr and KEY not in r.stdout
    assert apex.requests == []  # brain itself asked nothing; only /health and /v1/models


def test_route_option_and_arguments_after_double_dash(apex: FakeApex, brain_proc, stand_in) -> None:
    apex.answer("draft", "unused")
    r = brain_proc("claude", "--local", "--route", "draft", "--", "--continue", "-v", env=stand_in)
    assert r.code == 7, r.stderr
    seen = record(stand_in)
    assert seen["argv"] == ["--continue", "-v"]
    assert seen["env"]["ANTHROPIC_MODEL"] == "draft"
    assert seen["env"]["ANTHROPIC_AUTH_TOKEN"] == "no-key"
    assert "no `apex` key is set" in r.stderr


def test_user_route_for_code_task_is_used(
    apex: FakeApex, brain_proc, stand_in, write_config
) -> None:
    write_config('[tasks.code]\nroute = "qwen_coder"\n')
    apex.answer("qwen_coder", "unused")
    assert brain_proc("claude", "--local", env=stand_in).code == 7
    assert record(stand_in)["env"]["CLAUDE_CODE_SUBAGENT_MODEL"] == "qwen_coder"


def test_without_local_claude_code_runs_unchanged(apex: FakeApex, brain_proc, stand_in) -> None:
    env = {**stand_in, "ANTHROPIC_API_KEY": "sk-ant-real-account"}
    r = brain_proc("claude", "-p", "hi", env=env)
    assert r.code == 7, r.stderr
    seen = record(stand_in)
    assert seen["argv"] == ["-p", "hi"]
    assert seen["env"]["ANTHROPIC_API_KEY"] == "sk-ant-real-account"
    assert "ANTHROPIC_BASE_URL" not in seen["env"]
    assert not any(var in seen["env"] for var in MODEL_VARS)


def test_without_local_a_config_mistake_does_not_block_claude_code(
    brain_proc, stand_in, write_config
) -> None:
    write_config("[apex]\nurl = 42\n")
    assert brain_proc("claude", "--version", env=stand_in).code == 7
    assert record(stand_in)["argv"] == ["--version"]
    r = brain_proc("claude", "--local", env=stand_in)
    assert r.code == 78 and "apex" in r.stderr


def test_claude_not_installed(brain_proc, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = brain_proc("claude", "--local", env={"PATH": str(empty)})
    assert r.code == 69, r.stderr
    assert "not installed" in r.stderr
    assert "npm install -g @anthropic-ai/claude-code" in r.stderr


def test_apex_unreachable(brain_proc, stand_in) -> None:
    r = brain_proc("claude", "--local", env={**stand_in, "BRAIN_APEX_URL": refused_url()})
    assert r.code == 69, r.stderr
    assert "connection refused" in r.stderr and "cannot be reached" in r.stderr
    assert "(no --local) uses your Anthropic account" in r.stderr
    assert record(stand_in) is None  # Claude Code was never started


def test_apex_not_configured(brain_proc, stand_in) -> None:
    r = brain_proc("claude", "--local", env=stand_in)
    assert r.code == 78, r.stderr
    assert "apex.url" in r.stderr
    assert record(stand_in) is None


def test_route_apex_does_not_have(apex: FakeApex, brain_proc, stand_in) -> None:
    apex.answer("brain_dump", "x")
    r = brain_proc("claude", "--local", "--route", "nope", env=stand_in)
    assert r.code == 78, r.stderr
    assert "no route `nope`" in r.stderr and "brain_dump" in r.stderr
    assert record(stand_in) is None


def test_key_rejected_before_claude_code_starts(apex: FakeApex, brain_proc, stand_in) -> None:
    apex.key = KEY
    apex.answer("code", "x")
    r = brain_proc("claude", "--local", env={**stand_in, "BRAIN_APEX_KEY": "sk-wrong-key-1234"})
    assert r.code == 77, r.stderr
    assert "brain keys set apex" in r.stderr
    assert record(stand_in) is None


def test_premium_route_is_refused(apex: FakeApex, brain_proc, stand_in) -> None:
    apex.answer("premium_reasoning", "x")
    r = brain_proc("claude", "--local", "--route", "premium_reasoning", env=stand_in)
    assert r.code == 2, r.stderr
    assert "premium" in r.stderr
    assert record(stand_in) is None
