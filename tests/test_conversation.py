"""brain.conversation: parsing a typed line, who would answer, the context budget, Markdown."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from brain import settings
from brain.backends import estimate_tokens
from brain.conversation import (
    SLASH_COMMANDS,
    Conversation,
    Line,
    Turn,
    budget_for,
    parse,
)
from brain.offline import probe
from brain.offline.ladder import next_backend
from brain.offline.probe import Verdict
from brain.tasks import all_tasks, builtin_tasks

TASKS = ("dump", "digest", "draft", "code", "premium", "ask", "daily")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("what is soil pH?", Line("ask", arg="what is soil pH?")),
        ("   ", Line("empty")),
        ("//etc/hosts is what?", Line("ask", arg="/etc/hosts is what?")),
        ("/task dump", Line("command", "task", "dump")),
        ("/task", Line("command", "task", "")),
        ("/digest what did I do", Line("task", "digest", "what did I do")),
        ("/digest\nline one\nline two", Line("task", "digest", "line one\nline two")),
        ("/daily plan it", Line("task", "daily", "plan it")),
        ("/save -f talk.md", Line("command", "save", "-f talk.md")),
        ("/quit", Line("command", "exit", "")),
        ("/?", Line("command", "help", "")),
        ("/etc/hosts is what?", Line("unknown", "etc/hosts", "is what?")),
    ],
)
def test_parse(text, line):
    assert parse(text, TASKS) == line


def test_repl_commands_win_over_a_task_of_the_same_name():
    assert parse("/retry", (*TASKS, "retry")).kind == "command"


def _verdict(ok: bool) -> Verdict:
    reason = "" if ok else "connection refused"
    return Verdict("http://apex:4000", ok, reason, time.time(), kind="ok" if ok else "refused")


@pytest.mark.parametrize(
    ("mode", "task", "url", "verdict", "backend"),
    [
        ("auto", "dump", "http://apex:4000", _verdict(True), "apex"),
        ("auto", "dump", "http://apex:4000", _verdict(False), "local"),
        ("auto", "dump", "http://apex:4000", None, "apex?"),
        ("auto", "dump", "", None, "local"),
        ("auto", "premium", "http://apex:4000", _verdict(False), "none"),
        ("online", "dump", "http://apex:4000", _verdict(False), "none"),
        ("online", "dump", "", None, "none"),
        ("offline", "dump", "http://apex:4000", _verdict(True), "local"),
        ("offline", "premium", "http://apex:4000", _verdict(True), "none"),
    ],
)
def test_next_backend(make_app, monkeypatch, mode, task, url, verdict, backend):
    monkeypatch.setenv("BRAIN_APEX_URL", url) if url else None
    app = make_app(mode)
    if verdict is not None:
        probe.remember(app.cache_dir, verdict)
    got, why = next_backend(app, app.tasks[task], mode)
    assert got == backend
    assert why  # always says why


def test_next_backend_premium_direct(make_app, monkeypatch, write_config):
    write_config("[premium]\ndirect = true\n")
    monkeypatch.setenv("BRAIN_APEX_URL", "http://apex:4000")
    app = make_app()
    premium = app.tasks["premium"]
    probe.remember(app.cache_dir, _verdict(False))
    assert next_backend(app, premium, "auto")[0] == "anthropic"
    probe.remember(app.cache_dir, _verdict(True))
    assert next_backend(app, premium, "auto")[0] == "apex"


def test_next_backend_premium_direct_needs_apex_configured(make_app, write_config):
    # As the ladder: with no Apex configured at all, premium has nowhere to go.
    write_config("[premium]\ndirect = true\n")
    app = make_app()
    assert next_backend(app, app.tasks["premium"], "auto")[0] == "none"


def test_next_backend_names_the_reason_apex_is_away(make_app, monkeypatch):
    monkeypatch.setenv("BRAIN_APEX_URL", "http://apex:4000")
    app = make_app()
    probe.remember(app.cache_dir, _verdict(False))
    _, why = next_backend(app, app.tasks["dump"], "auto")
    assert "connection refused" in why and "http://apex:4000" in why


def test_budget_leaves_room_for_the_answer(write_config):
    write_config("[apex]\ncontext_tokens = 10000\n[local]\ncontext_tokens = 4096\n")
    conf = settings.load()
    dump = builtin_tasks()["dump"]  # max_tokens 1024
    assert budget_for(conf, "apex", dump) == 10000 - 1024
    assert budget_for(conf, "local", dump) == 4096 - 1024
    code = builtin_tasks()["code"]  # max_tokens 4096: a quarter of the window stays for input
    assert budget_for(conf, "local", code) == 1024


def test_apex_context_tokens_is_validated(write_config):
    write_config("[apex]\ncontext_tokens = 0\n")
    with pytest.raises(Exception, match="context_tokens"):
        settings.load()


def _turn(i: int, size: int = 400) -> Turn:
    return Turn("ask", f"q{i}", f"q{i} " + "x" * size, f"a{i} " + "y" * size)


def test_context_keeps_the_newest_turns_that_fit():
    task = builtin_tasks()["ask"]
    talk = Conversation()
    for i in range(5):
        talk.add(_turn(i))
    whole = talk.context(task, "new", 100_000)
    assert whole.dropped == 0
    assert [m["role"] for m in whole.messages] == ["system"] + ["user", "assistant"] * 5 + ["user"]

    per_turn = estimate_tokens(whole.messages[1:3])
    two = talk.context(task, "new", whole.tokens - 3 * per_turn)  # room for two turns
    assert two.dropped == 3
    assert [m["content"][:2] for m in two.messages[1:-1]] == ["q3", "a3", "q4", "a4"]
    assert two.messages[0]["role"] == "system" and two.messages[-1]["content"] == "new"
    assert two.tokens <= two.budget
    assert len(talk) == 5  # left out of the context, not forgotten


def test_context_always_sends_the_new_question_even_past_the_budget():
    task = builtin_tasks()["ask"]
    talk = Conversation()
    talk.add(_turn(0))
    ctx = talk.context(task, "z" * 10_000, 100)
    assert ctx.dropped == 1
    assert [m["role"] for m in ctx.messages] == ["system", "user"]


def test_context_uses_the_system_prompt_of_the_task_asked():
    tasks = all_tasks({"daily": {"route": "r", "prompt": "Plan my day."}})
    talk = Conversation()
    talk.add(_turn(0, 10))
    assert talk.context(tasks["daily"], "go", 1000).messages[0]["content"] == "Plan my day."


def test_markdown_keeps_every_turn_and_marks_partial():
    talk = Conversation()
    talk.add(Turn("ask", "q", "what is pH?", "Acidity.", backend="apex", model="gemma27b"))
    talk.add(Turn("digest", "go", "go", "- half", True, "stopped with Ctrl-C", "local"))
    text = talk.to_markdown()
    assert text.startswith("# brain conversation, ")
    assert "## You (ask)\n\nwhat is pH?\n\n## brain (apex, gemma27b)\n\nAcidity." in text
    assert "## You (digest)" in text and "## brain (local)\n\n- half" in text
    assert "*(partial answer: stopped with Ctrl-C)*" in text


def test_every_repl_command_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "repl.md").read_text()
    for name in SLASH_COMMANDS:
        assert f"/{name}" in doc, f"/{name} is missing from docs/repl.md"


def test_core_modules_import_no_ui_libraries():
    code = (
        "import sys, brain.conversation, brain.cli\n"
        "print(','.join(m for m in ('prompt_toolkit', 'rich', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    code = "import sys, brain.conversation\nprint('click' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
