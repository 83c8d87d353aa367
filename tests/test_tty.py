"""brain on a real pseudo-terminal: live Markdown, hidden key prompts, `config init`."""

from __future__ import annotations

import json
import os

import pexpect
from conftest import SUPPORT, brain_executable
from fakes import FakeApex, FakeOllama


def spawn(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    full = dict(os.environ)
    full["PYTHONPATH"] = str(SUPPORT)
    full["TERM"] = "xterm-256color"
    full.update(env or {})
    return pexpect.spawn(
        brain_executable(), list(args), env=full, dimensions=(40, 100), encoding="utf-8", timeout=20
    )


def test_answer_renders_as_markdown_on_a_terminal(apex: FakeApex) -> None:
    apex.answer("brain_dump", ["## To do\n", "- [ ] **call** Sam\n"])
    child = spawn("dump", "x")
    child.expect(pexpect.EOF)
    screen = child.before
    assert "call" in screen and "Sam" in screen
    assert "**call**" not in screen and "## To do" not in screen  # rendered, not raw Markdown
    assert "\x1b[" in screen
    child.close()
    assert child.exitstatus == 0


def test_keys_set_prompts_without_echo(home) -> None:
    child = spawn("keys", "set", "apex")
    child.expect("apex key")
    child.sendline("sk-typed-secret-999")
    child.expect(pexpect.EOF)
    assert "sk-typed-secret-999" not in child.before  # hidden input is not echoed
    child.close()
    assert child.exitstatus == 0
    stored = json.loads(home.keyring.read_text())
    assert stored["brain/apex"] == "sk-typed-secret-999"


def test_config_init_asks_checks_and_stores_the_key(
    apex: FakeApex, ollama: FakeOllama, home
) -> None:
    env = {"BRAIN_APEX_URL": "", "BRAIN_LOCAL_URL": ""}
    child = spawn("config", "init", env=env)
    child.expect("Apex URL")
    child.sendline(apex.url)
    child.expect("Local server URL")
    child.sendline(ollama.url)
    child.expect("Local model")
    child.sendline("")  # keep the default, gemma4:e4b
    child.expect("Apex answers at")
    child.expect("Apex key")
    child.sendline("sk-from-init-123")
    # With the `voice` extra installed, it offers the laptop's Whisper model (brain.voice).
    if child.expect(["Fetch the Whisper model base.en", "brain status"]) == 0:
        child.sendline("n")
        child.expect("brain voice fetch")
        child.expect("brain status")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = (home.config / "brain" / "config.toml").read_text()
    assert apex.url in text and ollama.url in text and "sk-from-init" not in text
    assert json.loads(home.keyring.read_text())["brain/apex"] == "sk-from-init-123"
