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


def finish(child: pexpect.spawn) -> None:
    """The end of `config init`: with the `voice` extra installed it offers the laptop's
    Whisper model (brain.voice); declined, it names `brain voice fetch`."""
    if child.expect(["Fetch the Whisper model", "brain status"]) == 0:
        child.sendline("n")
        child.expect("brain voice fetch")
        child.expect("brain status")
    child.expect(pexpect.EOF)
    child.close()


def test_config_init_asks_checks_and_stores_the_key(
    apex: FakeApex, ollama: FakeOllama, home
) -> None:
    apex.key = "sk-from-init-123"
    env = {"BRAIN_APEX_URL": "", "BRAIN_LOCAL_URL": ""}
    child = spawn("config", "init", env=env)
    child.expect("Apex URL")
    child.sendline("apex:4000")  # not a URL: refused at once, asked again
    child.expect("Error: .*Apex URL")
    child.sendline(apex.url)
    child.expect("Apex answers at")  # checked at once, before the next question
    child.expect("Local server URL")
    child.sendline(ollama.url)
    child.expect("Local model")
    child.sendline("")  # keep the default, gemma4:e4b
    child.expect("Apex key")
    child.sendline("sk-wrong-999")  # Apex says no: not stored, asked again
    child.expect("rejected by Apex .*it was not stored")
    child.expect("Apex key")
    child.sendline("sk-from-init-123")
    child.expect("accepted by Apex; stored in the keyring")
    finish(child)
    assert child.exitstatus == 0
    text = (home.config / "brain" / "config.toml").read_text()
    assert apex.url in text and ollama.url in text and "sk-" not in text
    assert json.loads(home.keyring.read_text())["brain/apex"] == "sk-from-init-123"


def test_config_init_without_a_keyring_never_asks_for_a_key(
    apex: FakeApex, ollama: FakeOllama, home
) -> None:
    # A headless box (no Secret Service, as over SSH or in WSL): the key is not asked for,
    # then dropped; the way through the environment is named, and works.
    apex.key = "sk-env-4567"
    env = {
        "BRAIN_APEX_URL": "",
        "BRAIN_LOCAL_URL": "",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    child = spawn("config", "init", env=env)
    child.expect("Apex URL")
    child.sendline(apex.url)
    child.expect("Local server URL")
    child.sendline(ollama.url)
    child.expect("Local model")
    child.sendline("")
    child.expect("No usable keyring")
    child.expect("export BRAIN_APEX_KEY=")
    child.expect("keyrings.alt; base64, not encrypted")
    finish(child)
    assert "Apex key (" not in child.before
    assert child.exitstatus == 0
    # Followed as printed: with the key in the environment, init checks it and status agrees.
    child = spawn("config", "init", env={**env, "BRAIN_APEX_KEY": "sk-env-4567"})
    for answer in ("", "", ""):
        child.expect(r": $|\]: ")
        child.sendline(answer)
    child.expect("comes from BRAIN_APEX_KEY: accepted by Apex")
    finish(child)
    assert child.exitstatus == 0


def test_keys_set_checks_the_keyring_before_asking(home) -> None:
    child = spawn(
        "keys", "set", "apex", env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    )
    child.expect(pexpect.EOF)
    assert "apex key (" not in child.before  # never asked for a key it would then drop
    assert "No usable keyring" in child.before and "export BRAIN_APEX_KEY=" in child.before
    child.close()
    assert child.exitstatus == 78


def test_an_empty_pipe_at_a_terminal_is_a_usage_error(apex: FakeApex) -> None:
    apex.answer("code", ["looks fine"])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SUPPORT)
    child = pexpect.spawn(
        "bash",
        ["-c", f"true | {brain_executable()} code 'review this'"],
        env=env,
        encoding="utf-8",
        timeout=20,
    )
    child.expect(pexpect.EOF)
    assert "nothing came through the pipe" in child.before
    child.close()
    assert child.exitstatus == 2
    assert apex.requests == []  # nothing was sent


def test_status_is_in_colour_on_a_terminal(apex: FakeApex, ollama: FakeOllama) -> None:
    apex.answer("brain_dump", ["x"])
    child = spawn("status")
    child.expect(pexpect.EOF)
    assert "\x1b[1;32mok" in child.before  # the checks that pass are green
    child.close()
    no_colour = spawn("status", env={"NO_COLOR": "1"})
    no_colour.expect(pexpect.EOF)
    assert "\x1b[1;32m" not in no_colour.before and "ok" in no_colour.before
    no_colour.close()
