"""The REPL's slash commands and turns, in-process: Repl.handle() against the fake Apex.

The prompt itself (keys, toolbar, Ctrl-C, Ctrl-D) is tested through a pty in
test_repl_pty.py; here each typed line goes straight to `handle`, as the prompt hands it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from brain.offline import probe
from brain.repl import Repl


@pytest.fixture
def make_repl(home: Any, write_config: Any, monkeypatch: pytest.MonkeyPatch, make_app) -> Any:
    write_config('[apex]\nprobe_ttl = 0\n[tasks.daily]\nroute = "daily_route"\n')
    monkeypatch.chdir(home.root)

    def make(task: str = "ask", mode: str = "auto") -> Repl:
        return Repl(make_app(mode), task)

    return make


def test_save_writes_markdown_and_never_overwrites_silently(apex, make_repl, home, capsys):
    apex.answer("default", ["Acidity, ", "mostly."])
    repl = make_repl()
    repl.handle("what is soil pH?")
    assert capsys.readouterr().out.strip().endswith("Acidity, mostly.")
    repl.handle("/save talk.md")
    text = (home.root / "talk.md").read_text()
    assert "## You (ask)\n\nwhat is soil pH?" in text and "Acidity, mostly." in text
    assert "Saved 1 turn to talk.md" in capsys.readouterr().out

    (home.root / "talk.md").write_text("mine")
    repl.handle("/save talk.md")
    assert "talk.md exists" in capsys.readouterr().out
    assert (home.root / "talk.md").read_text() == "mine"
    repl.handle("/save -f talk.md")
    assert "Acidity, mostly." in (home.root / "talk.md").read_text()


def test_save_puts_the_answers_headings_under_the_turns(apex, make_repl, home, capsys):
    apex.answer("default", ["# Plan\n\n## Monday\n\n```sh\n# a comment\n```\n"])
    repl = make_repl()
    repl.handle("plan my week")
    repl.handle("/save week.md")
    text = (home.root / "week.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# brain conversation")
    assert headings[1:] == ["## You (ask)", "## brain (apex, default-deployment)", "### Plan",
                            "#### Monday", "# a comment"]  # fmt: skip


def test_retry_after_nothing_answered_sends_it_again(apex, make_repl, home, capsys):
    apex.error("default", 503, {"error": {"message": "all deployments busy"}})
    repl = make_repl()  # the local tier is a refused port (conftest)
    repl.handle("are you there?")
    err = capsys.readouterr().err
    assert "Nothing could answer" in err and "/retry asks it again here" in err
    assert [e.status for e in repl.store.queued()] == ["queued"]

    apex.answer("default", ["Yes."])
    repl.handle("/retry")
    assert capsys.readouterr().out.strip().endswith("Yes.")
    assert repl.store.queued() == []  # the failed entry is replaced, not left in the queue
    [row] = repl.store.history()
    assert (row.input, row.answer, row.status) == ("are you there?", "Yes.", "answered")
    assert len(repl.conversation) == 1


def test_retry_replaces_the_last_answer(apex, make_repl):
    apex.answer("default", ["one"])
    repl = make_repl()
    repl.handle("pick a number")
    apex.answer("default", ["two"])
    repl.handle("/retry")
    assert [t.answer for t in repl.conversation.turns] == ["two"]
    # The retry does not send the answer it replaces as context.
    assert [m["role"] for m in apex.requests[-1]["messages"]] == ["system", "user"]
    assert len(repl.store.history()) == 2  # both answers are in the history


def test_task_switch_list_and_unknown(apex, make_repl, capsys):
    apex.answer("daily_route", ["- 9:00 soil lab"])
    repl = make_repl()
    repl.handle("/task daily")
    assert repl.task.name == "daily"
    repl.handle("plan tomorrow")
    assert apex.requests[-1]["model"] == "daily_route"
    repl.handle("/task nope")
    out = capsys.readouterr().out
    assert "No task `nope`" in out and "daily" in out
    assert repl.task.name == "daily"
    repl.handle("/dump")  # a task's name alone switches too
    assert repl.task.name == "dump"
    repl.handle("/task")
    assert "→ dump" in capsys.readouterr().out


def test_unknown_command_sends_nothing(apex, make_repl, capsys):
    repl = make_repl()
    repl.handle("/etc/hosts what is this")
    out = capsys.readouterr().out
    assert "No command /etc/hosts" in out and "//" in out
    assert apex.requests == []


def test_a_line_naming_a_file_sends_the_file(apex, make_repl, home):
    (home.root / "monday.md").write_text("soil lab at 9\n")
    apex.answer("daily_digest", ["ok"])
    repl = make_repl()
    repl.handle("/digest monday.md")
    content = apex.requests[-1]["messages"][-1]["content"]
    assert content == "--- monday.md ---\nsoil lab at 9"
    assert repl.conversation.turns[-1].user == "monday.md"  # as typed, for /retry


def test_a_binary_file_is_refused_and_the_repl_goes_on(apex, make_repl, home, capsys):
    (home.root / "blob.bin").write_bytes(b"\x00\x01\x02")
    repl = make_repl()
    repl.handle("look at blob.bin")
    assert "looks binary" in capsys.readouterr().err
    assert apex.requests == []


def test_clear_starts_a_new_conversation(apex, make_repl, capsys):
    apex.answer("default", ["hi"])
    repl = make_repl()
    repl.handle("hello")
    repl.handle("/clear")
    assert len(repl.conversation) == 0
    repl.handle("again")
    assert [m["role"] for m in apex.requests[-1]["messages"]] == ["system", "user"]
    assert "New conversation" in capsys.readouterr().out


def test_status_and_help_say_what_is_what(apex, make_repl, capsys):
    repl = make_repl()
    probe.remember(repl.app.cache_dir, probe.Verdict(apex.url, True, "", time.time()))
    repl.handle("/status")
    out = capsys.readouterr().out
    assert "mode         auto" in out
    assert "next answer  apex" in out and apex.url in out
    repl.handle("/help")
    out = capsys.readouterr().out
    assert "/daily" in out and "/retry" in out and "Ctrl-D" in out


def test_exit_and_modes(make_repl, capsys):
    repl = make_repl()
    assert repl.handle("/offline") is None
    assert repl.mode == "offline"
    assert repl.next_backend()[0] == "local"
    repl.handle("/online")
    assert repl.mode == "online"
    repl.handle("/auto")
    assert repl.mode == "auto"
    assert repl.handle("/exit") == "exit"
    assert repl.handle("/quit") == "exit"


def test_the_history_file_is_private(make_repl):
    from brain.repl_prompt import session

    repl = make_repl()
    session(repl)
    assert repl.history_path.exists()
    assert oct(os.stat(repl.history_path).st_mode & 0o777) == "0o600"


def test_a_failed_question_stays_queued_when_another_is_asked(apex, make_repl, capsys):
    apex.error("default", 503, {"error": {"message": "all deployments busy"}})
    repl = make_repl()
    repl.handle("first, unanswered")
    assert "brain queue run" in capsys.readouterr().err
    apex.answer("default", ["fine"])
    repl.handle("second")
    # As the message said: the first waits in the queue; /retry now means the second.
    assert [e.input for e in repl.store.queued()] == ["first, unanswered"]
    repl.handle("/retry")
    assert [m["content"] for m in apex.requests[-1]["messages"][1:]] == ["second"]
    assert [e.input for e in repl.store.queued()] == ["first, unanswered"]


def test_premium_refused_by_the_cap_leaves_nothing_queued(apex, write_config, make_repl, capsys):
    apex.answer("premium_reasoning", ["deep thought"], cost=0.75)
    repl = make_repl()
    repl.app.settings.values["premium"]["daily_usd"] = 0.5
    repl.handle("/premium is this rubric fair?")
    assert "premium: this answer cost $0.7500" in capsys.readouterr().err  # shown, like one-shot
    repl.handle("/premium and this one?")
    err = capsys.readouterr().err
    assert "Premium is capped at $0.50 a day" in err and "Nothing was sent" in err
    assert len(apex.requests) == 1
    assert repl.store.queued() == []  # refused before sending: nothing waits in the queue
    assert [e.input for e in repl.store.history()] == ["is this rubric fair?"]


def test_offline_the_conversation_keeps_to_what_the_local_server_holds(
    apex_server, make_repl, monkeypatch, capsys
) -> None:
    # A llama-server whose slot holds 2,048 tokens (its /props): two long turns do not fit,
    # so the oldest is left out and the question is answered, not refused as too long.
    import json as _json

    from fakes import sse_body
    from werkzeug import Response

    from brain.conversation import Turn

    sent: list[dict] = []

    def chat(request: Any) -> Response:
        sent.append(_json.loads(request.data))
        return Response(sse_body(["fits"]), mimetype="text/event-stream")

    apex_server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(chat)
    apex_server.expect_request("/v1/models").respond_with_json({"data": [{"id": "g.gguf"}]})
    apex_server.expect_request("/props").respond_with_json(
        {"default_generation_settings": {"n_ctx": 2048}}
    )
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    repl = make_repl(mode="offline")
    # ~2,450 tokens, then ~250: the newer fits in what ask may send there (512), the older
    # does not (and sent whole, the conversation would be refused as longer than 2,048)
    for n, words in enumerate((700, 70)):
        repl.conversation.add(Turn("ask", f"q{n}", f"q{n}", f"long answer {n} " * words))
    repl.handle("and now?")
    out = capsys.readouterr().out
    assert "fits" in out and "longer than any model" not in out
    assert "the oldest 1 turn is left out" in " ".join(out.split())
    contents = " ".join(str(m["content"]) for m in sent[-1]["messages"])
    assert "long answer 1" in contents and "long answer 0" not in contents
    # the toolbar names the model that answered (as the server said), not local.model
    assert repl.model_text("local") == repl.last.model != repl.app.local_model


def test_a_digest_longer_than_any_model_reads_is_digested_in_parts(
    ollama, make_repl, monkeypatch, capsys
) -> None:
    # /task digest with a pasted document past the laptop model's 4,096 tokens: read in parts
    # (as `brain digest`), not refused as too long.
    from fakes import refused_url

    ollama.model_ctx = 4096
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    repl = make_repl(task="digest")
    pasted = "".join(
        f"line {n}: rubric v{n % 7}, bus {n % 11}, soil pH strips\n" for n in range(900)
    )
    repl.handle(pasted)
    seen = capsys.readouterr()
    out = seen.out
    assert "_Digested in " in out and "longer than any model" not in out, seen.err
    sent = "\n".join(str(m["content"]) for r in ollama.requests for m in r["messages"])
    assert all(f"line {n}:" in sent for n in range(900))
    assert repl.last is not None and repl.last.task == "digest"
    assert repl.store.queued() == []


def test_a_digest_naming_files_keeps_its_words_for_every_part(
    ollama, make_repl, monkeypatch, home, capsys
) -> None:
    from fakes import refused_url

    ollama.model_ctx = 4096
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    (home.root / "notes.md").write_text(
        "".join(f"line {n}: rubric v{n % 7}, bus {n % 11}, soil pH strips\n" for n in range(900))
    )
    repl = make_repl(task="digest")
    repl.handle("only the bus numbers notes.md")
    assert "_Digested in " in capsys.readouterr().out
    parts = [r for r in ollama.requests if "Part " in str(r["messages"][-1]["content"])]
    assert len(parts) >= 2
    assert all("only the bus numbers" in str(r["messages"][-1]["content"]) for r in parts)


def test_a_digest_online_with_no_apex_says_so_and_the_session_goes_on(
    make_repl, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("BRAIN_APEX_URL", raising=False)
    repl = make_repl(task="digest", mode="online")
    repl.handle("hello")  # no exception out of the session
    err = capsys.readouterr()
    assert "Apex is not configured" in err.err and "/retry" in err.err


def test_a_digest_denser_than_brain_thought_is_read_in_parts(
    apex_server, make_repl, monkeypatch, capsys
) -> None:
    from test_digest_parts import DenseLlamaServer

    dense = DenseLlamaServer(apex_server, n_ctx=4096, chars_per_token=1.0)
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    repl = make_repl(task="digest", mode="offline")
    repl.handle("".join(f"{n:08d}\n" for n in range(700)))
    assert "_Digested in " in capsys.readouterr().out
    assert dense.refused >= 1
    sent = "\n".join(dense.accepted)
    assert all(f"{n:08d}" in sent for n in range(700))
