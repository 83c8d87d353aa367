"""Shell completion: the committed scripts, the completion helpers, and real bash, zsh and fish.

The shell tests source the committed file from completions/ and let the shell call the
installed `brain` back, as it does for a user. A shell that is not installed is skipped with
the command that installs it (.ci/run installs zsh and fish from Debian's packages).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pexpect
import pytest
from conftest import SUPPORT, brain_executable

from brain.commands import complete

ROOT = Path(__file__).resolve().parent.parent
FILES = {"bash": "brain.bash", "zsh": "_brain", "fish": "brain.fish"}
CONFIG = '[tasks.daily]\nroute = "daily_route"\n'
D_WORDS = ["daily", "digest", "draft", "dump"]


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_scripts_match_brain_completion(brain, shell):
    r = brain("completion", shell)
    assert r.code == 0, r.stderr
    committed = (ROOT / "completions" / FILES[shell]).read_text()
    assert r.stdout == committed, (
        f"completions/{FILES[shell]} differs from `brain completion {shell}`; regenerate it: "
        f"brain completion {shell} > completions/{FILES[shell]}"
    )
    assert r.stdout.count("_BRAIN_COMPLETE") >= 1


def test_completion_refuses_an_unknown_shell(brain):
    r = brain("completion", "tcsh")
    assert r.code == 2
    assert "tcsh" in r.stderr and "bash" in r.stderr


# ----- the helpers, as click calls them ---------------------------------------------------
def _values(items: list[Any]) -> list[str]:
    return [i.value for i in items]


def _ctx(**params: Any) -> click.Context:
    from brain.cli import cli

    ctx = click.Context(cli, resilient_parsing=True)
    ctx.params.update(params)
    return ctx


def test_task_names_include_user_tasks(write_config):
    write_config(CONFIG)
    items = complete.task_names(_ctx(), None, "d")
    assert _values(items) == ["dump", "digest", "draft", "daily"]
    assert dict(zip(_values(items), [i.help for i in items], strict=True))["daily"] == (
        "Your task from config.toml."
    )


def test_task_names_survive_a_broken_config(write_config):
    write_config("this is [not toml")
    assert _values(complete.task_names(_ctx(), None, "p")) == ["premium"]


def test_key_names():
    assert _values(complete.key_names(_ctx(), None, "")) == ["apex", "slack", "anthropic"]
    assert _values(complete.key_names(_ctx(), None, "s")) == ["slack"]


def test_config_keys_are_section_dot_key():
    keys = _values(complete.config_keys(_ctx(), None, ""))
    assert "apex.url" in keys and "local.model" in keys and "notify.slack" in keys
    assert _values(complete.config_keys(_ctx(), None, "apex.p")) == ["apex.probe_ttl"]


def test_config_values_for_switches_only():
    assert _values(complete.config_values(_ctx(key="notify.slack"), None, "")) == [
        "true",
        "false",
    ]
    assert _values(complete.config_values(_ctx(key="premium.direct"), None, "f")) == ["false"]
    assert complete.config_values(_ctx(key="apex.url"), None, "") == []
    assert complete.config_values(_ctx(), None, "") == []


def test_files_hands_over_to_the_shell():
    [item] = complete.files(_ctx(), None, "no")
    assert (item.type, item.value) == ("file", "no")


# ----- click's protocol, through the installed brain ---------------------------------------
def _complete(brain: Any, words: str, cword: int) -> list[str]:
    r = brain(
        env={"_BRAIN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    )
    assert r.code == 0, r.stderr
    assert r.stderr == ""
    return r.stdout.split()


def test_protocol_subcommands_and_user_tasks(brain, write_config):
    write_config(CONFIG)
    assert _complete(brain, "brain d", 1) == [
        f"plain,{w}" for w in ["dump", "digest", "draft", "daily"]
    ]
    assert _complete(brain, "brain repl da", 2) == ["plain,daily"]
    assert _complete(brain, "brain completion ", 2) == ["plain,bash", "plain,zsh", "plain,fish"]


def test_protocol_every_command_resolves(brain):
    # Listing all subcommands imports each command module: a broken entry would show here.
    from brain.cli import COMMANDS

    got = _complete(brain, "brain ", 1)
    assert {f"plain,{name}" for name in [*COMMANDS, "dump", "ask"]} <= set(got)


def test_protocol_files_for_task_commands_and_config(brain):
    assert _complete(brain, "brain digest no", 2) == ["file,no"]
    assert _complete(brain, "brain --config ", 2) == ["file,"]


def test_protocol_key_names_and_config_keys(brain):
    assert _complete(brain, "brain keys set a", 3) == ["plain,apex", "plain,anthropic"]
    assert _complete(brain, "brain keys delete s", 3) == ["plain,slack"]
    got = _complete(brain, "brain config set local.", 3)
    assert "plain,local.model" in got and "plain,local.url" in got
    assert all(g.startswith("plain,local.") for g in got)


# ----- real shells -------------------------------------------------------------------------
def _need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed; to run this test: apt-get install -y {shell}")
    return path


@pytest.fixture
def shell_env(home: Any, write_config: Any) -> dict[str, str]:
    write_config(CONFIG)
    (home.root / "notes.md").write_text("monday: soil lab\n")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(brain_executable()).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    env["TERM"] = "dumb"
    env.pop("BASH_ENV", None)
    env.pop("ENV", None)
    return env


def _interactive(argv: list[str], env: dict[str, str], cwd: Path) -> pexpect.spawn:
    return pexpect.spawn(
        argv[0], argv[1:], env=env, cwd=str(cwd), encoding="utf-8", dimensions=(40, 200)
    )


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")


@pytest.mark.shells
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_bash_completes_brain_d(shell_env, home):
    bash = _need("bash")
    child = _interactive([bash, "--norc", "--noprofile", "-i"], shell_env, home.root)
    try:
        child.sendline("PS1='READY> '; bind 'set show-all-if-ambiguous on'")
        child.sendline(f"source {ROOT / 'completions' / 'brain.bash'}; echo SOURCED")
        child.expect("SOURCED", timeout=10)
        child.expect("READY> ", timeout=10)
        child.send("brain d\t")
        child.expect("READY> brain d", timeout=20)
        listing = ANSI.sub("", child.before)
        assert sorted(re.findall(r"\b(daily|digest|draft|dump)\b", listing)) == D_WORDS, listing
        child.send("\x15")  # clear the line
        child.send("brain digest no\t")
        child.expect("notes.md", timeout=20)
        child.send("\x15")
        child.sendline("exit")
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)


@pytest.mark.shells
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_zsh_completes_brain_d(shell_env, home, tmp_path):
    zsh = _need("zsh")
    fdir = tmp_path / "zfunc"
    fdir.mkdir()
    shutil.copy(ROOT / "completions" / "_brain", fdir / "_brain")  # the documented install
    child = _interactive([zsh, "-f", "-i"], shell_env, home.root)
    try:
        child.sendline(
            f"PROMPT='READY> '; fpath=({fdir} $fpath); autoload -U compinit; "
            "compinit -u -D; echo SOURCED"
        )
        child.expect("SOURCED", timeout=20)
        child.send("brain d\t")
        # zsh lists the matches under the line, then draws the prompt and the line again.
        child.expect(r"\nREADY> brain d", timeout=20)
        listing = ANSI.sub("", child.before)
        assert sorted(re.findall(r"^(\w+) +-- ", listing, re.M)) == D_WORDS, listing
        assert re.search(r"^daily +-- Your task `daily`", listing, re.M), listing  # its help
        child.send("\x03")
        child.sendline("exit")
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)


@pytest.mark.shells
def test_fish_completes_brain_d(shell_env, home):
    fish = _need("fish")
    script = ROOT / "completions" / "brain.fish"
    out = subprocess.run(
        [
            fish,
            "--no-config",
            "-c",
            f"source {script}; complete -C 'brain d'; echo ---; complete -C 'brain digest no'",
        ],
        env=shell_env,
        cwd=home.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    words, files = out.stdout.split("---\n")
    lines = words.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == D_WORDS, out.stdout
    # The whole description, past its first comma (click's own fish script cuts it there).
    assert "dump\tSort a brain dump into to-dos, ideas and..." in lines
    assert files.split() == ["notes.md"]
