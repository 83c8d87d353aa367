"""The installed `brain` in a subprocess: tasks, material, --json, the ladder, exit codes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import brain_executable, spawn_brain
from fakes import UNRESOLVABLE_URL, FakeApex, FakeOllama, HangingListener, refused_url

JSON_FIELDS = {
    "version",
    "id",
    "answer",
    "task",
    "route",
    "backend",
    "model",
    "fallbacks",
    "usage",
    "latency_ms",
    "cost",
    "partial",
    "partial_reason",
}


def db_rows(home) -> list[sqlite3.Row]:
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM exchanges ORDER BY id").fetchall()


def test_dump_json_contract_against_apex(apex: FakeApex, ollama: FakeOllama, brain) -> None:
    apex.answer("brain_dump", ["- [ ] call ", "Sam"], model_id="gemma27b-qat", cost=0.0)
    r = brain("dump", "call Sam re field trip", "--json")
    assert r.code == 0, r.stderr
    j = r.json
    assert set(j) == JSON_FIELDS
    assert j["answer"] == "- [ ] call Sam"
    assert (j["task"], j["route"], j["backend"], j["model"]) == (
        "dump",
        "brain_dump",
        "apex",
        "gemma27b-qat",
    )
    assert j["fallbacks"] == [] and j["partial"] is False and j["cost"] == 0.0
    assert j["usage"] == {"prompt_tokens": 12, "completion_tokens": 7}
    assert (
        isinstance(j["latency_ms"]["first_token"], int)
        and j["latency_ms"]["total"] >= j["latency_ms"]["first_token"]
    )
    # The task's system prompt goes with it, the same online and offline.
    sent = apex.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "To do" in sent[0]["content"]
    assert sent[1] == {"role": "user", "content": "call Sam re field trip"}
    assert ollama.requests == []


def test_global_flags_before_or_after_the_subcommand(apex: FakeApex, brain) -> None:
    apex.answer("brain_dump", ["ok"])
    before = brain("--json", "dump", "x")
    after = brain("dump", "x", "--json")
    assert before.code == after.code == 0
    assert before.json["answer"] == after.json["answer"] == "ok"


def test_piped_stdout_is_plain_answer_only(apex: FakeApex, brain) -> None:
    apex.answer("draft", ["**Dear** team,", "\nthanks."])
    r = brain("draft", "thank-you note")
    assert r.code == 0
    assert r.stdout == "**Dear** team,\nthanks.\n"  # plain text as it arrives; no ANSI, no notices
    assert "\x1b[" not in r.stdout


def test_piped_stdin_is_material_and_args_the_instruction(apex: FakeApex, brain) -> None:
    apex.answer("daily_digest", ["digest"])
    r = brain(
        "digest", "--json", "focus on decisions", input="# Monday\nWe chose the soil pH lab.\n"
    )
    assert r.code == 0, r.stderr
    user = apex.requests[-1]["messages"][1]["content"]
    assert user.startswith("focus on decisions")
    assert "We chose the soil pH lab." in user


def test_files_named_as_arguments_are_material(apex: FakeApex, brain, home) -> None:
    apex.answer("daily_digest", ["digest"])
    (home.root / "mon.md").write_text("monday: grading\n")
    (home.root / "tue.md").write_text("tuesday: field trip\n")
    r = brain("digest", "mon.md", "tue.md")
    assert r.code == 0, r.stderr
    user = apex.requests[-1]["messages"][1]["content"]
    assert (
        "--- mon.md ---\nmonday: grading" in user and "--- tue.md ---\ntuesday: field trip" in user
    )


def test_long_input_takes_the_long_route(apex: FakeApex, brain, write_config) -> None:
    write_config("[local]\ncontext_tokens = 100\n")
    apex.answer("long_context_summary", ["long summary"])
    r = brain("digest", "--json", input="word " * 1000)
    assert r.code == 0, r.stderr
    assert r.json["route"] == "long_context_summary"


def test_route_override(apex: FakeApex, brain) -> None:
    apex.answer("my_route", ["routed"])
    r = brain("ask", "x", "--route", "my_route", "--json")
    assert r.json["route"] == "my_route" and r.json["answer"] == "routed"


def test_user_task_from_config_is_a_subcommand(apex: FakeApex, brain, write_config) -> None:
    write_config(
        '[tasks.lesson]\nroute = "lesson_plan"\nprompt = "You plan lessons."\ntemperature = 0.4\n'
    )
    apex.answer("lesson_plan", ["plan"])
    r = brain("lesson", "soil pH, grade 9", "--json")
    assert r.code == 0, r.stderr
    assert r.json["task"] == "lesson" and r.json["route"] == "lesson_plan"
    assert apex.requests[-1]["messages"][0]["content"] == "You plan lessons."
    assert "lesson" in brain("--help").stdout


@pytest.mark.parametrize("how", ["refused", "unresolvable", "hanging"])
def test_unreachable_apex_falls_back_to_local(
    how: str, ollama: FakeOllama, brain, write_config
) -> None:
    hang = HangingListener() if how == "hanging" else None
    url = {"refused": refused_url(), "unresolvable": UNRESOLVABLE_URL}.get(how) or hang.url
    try:
        r = brain("dump", "call Sam", "--json", env={"BRAIN_APEX_URL": url})
    finally:
        if hang:
            hang.close()
    assert r.code == 0, r.stderr
    j = r.json
    assert j["backend"] == "local" and j["answer"] == "local answer" and j["model"] == "gemma4:e4b"
    assert len(j["fallbacks"]) == 1 and j["fallbacks"][0]["backend"] == "apex"
    expected = {"refused": "refused", "unresolvable": "DNS", "hanging": "timed out"}[how]
    assert expected in j["fallbacks"][0]["reason"]
    assert "answering on this laptop" in r.stderr  # one line says what happened
    assert ollama.requests[-1]["messages"][0]["role"] == "system"


def test_apex_5xx_before_first_token_falls_back(apex: FakeApex, ollama: FakeOllama, brain) -> None:
    apex.error("brain_dump", 503, {"error": {"message": "No deployments available", "type": None}})
    r = brain("dump", "x", "--json")
    assert r.code == 0 and r.json["backend"] == "local"
    assert "503" in r.json["fallbacks"][0]["reason"]


def test_premium_never_falls_back(ollama: FakeOllama, brain) -> None:
    r = brain("premium", "is this rubric fair?", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69
    assert "never falls back" in r.stderr and "brain queue run" in r.stderr
    assert ollama.requests == []


def test_online_never_falls_back(ollama: FakeOllama, brain) -> None:
    r = brain("--online", "dump", "x", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69 and ollama.requests == []


def test_offline_skips_apex(apex: FakeApex, ollama: FakeOllama, brain) -> None:
    r = brain("--offline", "dump", "x", "--json")
    assert r.code == 0 and r.json["backend"] == "local" and r.json["fallbacks"] == []
    assert apex.requests == []
    r2 = brain("dump", "x", "--json", env={"BRAIN_OFFLINE": "1"})
    assert r2.json["backend"] == "local" and apex.requests == []


def test_model_override_for_local(ollama: FakeOllama, brain) -> None:
    ollama.models.append("qwen3:4b")
    r = brain("--offline", "--model", "qwen3:4b", "ask", "x", "--json")
    assert r.code == 0 and r.json["model"] == "qwen3:4b"


def test_nothing_reachable_keeps_the_input(brain, home) -> None:
    r = brain("dump", "soil pH lab idea", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69
    assert "ollama serve" in r.stderr and "brain queue run" in r.stderr
    rows = db_rows(home)
    assert rows[-1]["status"] == "queued" and rows[-1]["input"] == "soil pH lab idea"
    listed = brain("queue", "list", "--json")
    assert [q["input"] for q in listed.json["queued"]] == ["soil pH lab idea"]


def test_queue_run_answers_later_into_history(apex: FakeApex, brain, monkeypatch) -> None:
    first = brain("dump", "kept thought", env={"BRAIN_APEX_URL": refused_url()})
    assert first.code == 69
    apex.answer("brain_dump", ["sorted"])
    r = brain("queue", "run")
    assert r.code == 0, r.stderr
    assert "sorted" in r.stdout
    assert brain("queue", "list", "--json").json["queued"] == []
    hist = [json.loads(line) for line in brain("history", "--json").stdout.splitlines()]
    assert hist[-1]["input"] == "kept thought" and hist[-1]["answer"] == "sorted"
    assert hist[-1]["status"] == "answered"


def test_local_not_pulled_names_the_pull_command(ollama: FakeOllama, brain) -> None:
    ollama.models.clear()
    r = brain("--offline", "dump", "x")
    assert r.code == 69
    assert "ollama pull gemma4:e4b" in r.stderr and "not pulled" in r.stderr


def test_key_rejected_exit_77(apex: FakeApex, brain) -> None:
    apex.key = "sk-the-right-key-123"
    apex.answer("brain_dump", ["x"])
    r = brain("dump", "x", env={"BRAIN_APEX_KEY": "sk-a-wrong-key-456"})
    assert r.code == 77 and "brain keys set apex" in r.stderr
    assert "sk-a-wrong-key-456" not in r.stderr + r.stdout


def test_key_from_keyring_is_sent(apex: FakeApex, brain) -> None:
    apex.key = "sk-keyring-key-789"
    apex.answer("brain_dump", ["with key"])
    assert brain("keys", "set", "apex", "--stdin", input="sk-keyring-key-789\n").code == 0
    r = brain("dump", "x")
    assert r.code == 0 and r.stdout == "with key\n"
    assert apex.headers_seen[-1]["Authorization"] == "Bearer sk-keyring-key-789"


def test_unknown_route_exit_78(apex: FakeApex, brain) -> None:
    r = brain("dump", "x", "--route", "nope")
    assert r.code == 78 and "nope" in r.stderr and "brain routes" in r.stderr


def test_rate_limited_exit_75(apex: FakeApex, brain) -> None:
    apex.error(
        "brain_dump",
        429,
        {"error": {"message": "rate"}},
        headers={"llm_provider-retry-after": "30"},
    )
    r = brain("dump", "x")
    assert r.code == 75 and "30 s" in r.stderr


def test_empty_input_is_usage_error(brain) -> None:
    r = brain("dump")
    assert r.code == 2 and "nothing to send" in r.stderr


def test_binary_input_is_refused(brain) -> None:
    r = brain("digest", input=b"\x7fELF\x00\x00\x01binary")
    assert r.code == 65 and "binary" in r.stderr


def test_bad_config_exit_78_names_file_key_and_valid(brain, write_config) -> None:
    path = write_config("[apex]\nfirst_token_timeout = -3\n")
    r = brain("dump", "x")
    assert r.code == 78
    assert str(path) in r.stderr and "first_token_timeout" in r.stderr and "> 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_click_usage_error_exit_2(brain) -> None:
    r = brain("history", "-n", "zero")
    assert r.code == 2


def test_partial_stream_is_shown_kept_and_flagged(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["first ", "second ", "third"], cut_after=2)
    r = brain("dump", "x")
    assert r.code == 75
    assert r.stdout.startswith("first second")
    assert "incomplete" in r.stderr and "partial" in r.stderr
    row = db_rows(home)[-1]
    assert row["partial"] == 1 and row["answer"] == "first second " and row["status"] == "partial"


def test_ctrl_c_mid_answer_keeps_partial_exit_130(apex: FakeApex, home) -> None:
    apex.answer("brain_dump", [f"piece{i} " for i in range(200)], delay=0.05)
    proc = spawn_brain("dump", "x")
    first = proc.stdout.read(6)  # the answer has started
    assert first == b"piece0"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"partial" in err
    row = db_rows(home)[-1]
    assert row["partial"] == 1 and row["answer"].startswith("piece0 ")


def test_broken_pipe_exits_quietly_and_keeps_what_was_read(apex: FakeApex, home) -> None:

    apex.answer("brain_dump", ["line\n"] * 2000, delay=0.001)
    proc = spawn_brain("dump", "x")
    assert proc.stdout.read(5) == b"line\n"
    proc.stdout.close()  # the reader leaves, as `| head -n 1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"error" not in err
    row = db_rows(home)[-1]
    # Not left in the queue to be sent (and paid for) again: kept as a partial answer.
    assert row["status"] == "partial" and row["answer"].startswith("line\n")


def test_costly_failed_verdict_is_cached_cheap_one_is_not(ollama: FakeOllama, brain, home) -> None:
    hang = HangingListener()
    try:
        brain("dump", "x", env={"BRAIN_APEX_URL": hang.url})
        cache = json.loads((home.cache / "brain" / "apex-probe.json").read_text())
        assert cache["ok"] is False and cache["url"] == hang.url and cache["kind"] == "timeout"
        # Within its lifetime the timed-out verdict is reused: no second wait, and it says so.
        r = brain("dump", "x", env={"BRAIN_APEX_URL": hang.url})
        assert "seen in the last few seconds" in r.stderr
    finally:
        hang.close()
    url = refused_url()
    brain("dump", "x", env={"BRAIN_APEX_URL": url})
    r = brain("dump", "x", env={"BRAIN_APEX_URL": url})
    assert "refused" in r.stderr and "seen in the last few seconds" not in r.stderr


def _cache_verdict(home, url: str, age: float, latency_ms: int, kind: str = "timeout") -> None:
    cache = home.cache / "brain"
    cache.mkdir(parents=True, exist_ok=True)
    verdict = {
        "url": url,
        "ok": False,
        "reason": "timed out" if kind == "timeout" else "connection refused",
        "at": time.time() - age,
        "latency_ms": latency_ms,
        "kind": kind,
    }
    (cache / "apex-probe.json").write_text(json.dumps(verdict))


def test_apex_back_is_used_once_the_failed_verdict_expires(
    apex: FakeApex, ollama: FakeOllama, brain, home
) -> None:
    apex.answer("brain_dump", ["apex again"])
    _cache_verdict(home, apex.url, age=2, latency_ms=1000)
    assert brain("dump", "x", "--json").json["backend"] == "local"  # still within its 10 s
    _cache_verdict(home, apex.url, age=11, latency_ms=1000)
    assert brain("dump", "x", "--json").json["backend"] == "apex"


def test_apex_back_after_a_cheap_failure_is_used_at_once(
    apex: FakeApex, ollama: FakeOllama, brain, home
) -> None:
    apex.answer("brain_dump", ["apex again"])
    # "connection refused" a second ago, however long it took to find out: never remembered.
    _cache_verdict(home, apex.url, age=1, latency_ms=900, kind="refused")
    assert brain("dump", "x", "--json").json["backend"] == "apex"


def test_no_key_in_config_history_or_verbose_output(apex: FakeApex, brain, home) -> None:
    secret = "sk-very-secret-key-0042"
    apex.key = secret
    apex.answer("brain_dump", ["fine"])
    assert brain("keys", "set", "apex", "--stdin", input=secret + "\n").code == 0
    assert brain("config", "init", "--no-input", "--apex-url", apex.url).code == 0
    ok = brain("-v", "dump", "x")
    apex.key = "sk-other"
    bad = brain("-v", "dump", "y")
    assert bad.code == 77
    shown = ok.stdout + ok.stderr + bad.stdout + bad.stderr + brain("config", "show").stdout
    shown += brain("keys", "list").stdout
    assert secret not in shown
    for path in home.root.rglob("*"):
        if path.is_file() and path.name != "keyring.json":
            assert secret.encode() not in path.read_bytes(), path


def test_a_key_echoed_in_an_error_body_is_masked_everywhere(apex: FakeApex, brain, home) -> None:
    secret = "sk-echoed-back-key-777"
    assert brain("keys", "set", "apex", "--stdin", input=secret + "\n").code == 0
    apex.error(
        "brain_dump", 400, {"error": {"message": f"context window exceeded for key {secret}"}}
    )
    r = brain("dump", "x")
    assert r.code == 69 and "context window exceeded" in r.stderr
    listed = brain("queue", "list", "--json")
    shown = r.stdout + r.stderr + listed.stdout + brain("queue", "list").stdout
    assert "****" in listed.stdout and secret not in shown
    for path in (home.data / "brain").iterdir():  # the database, its WAL, the REPL history
        assert secret.encode() not in path.read_bytes(), path


def test_ctrl_c_stops_the_whole_queue_run(apex: FakeApex, brain, home) -> None:

    down = {"BRAIN_APEX_URL": refused_url()}
    assert brain("dump", "first kept", env=down).code == 69
    assert brain("dump", "second kept", env=down).code == 69
    apex.answer("brain_dump", [f"piece{i} " for i in range(200)], delay=0.05)
    proc = spawn_brain("queue", "run")
    assert b"first kept" in proc.stdout.readline()  # the answer's label, on stdout
    assert proc.stdout.read(6) == b"piece0"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert len(apex.requests) == 1  # the second input was not sent
    rows = {r["input"]: r for r in db_rows(home)}
    assert rows["first kept"]["status"] == "partial"
    assert rows["second kept"]["status"] == "queued"


def test_a_missing_file_is_bad_input_not_an_instruction(apex: FakeApex, brain) -> None:
    r = brain("digest", "notes/monday.md", "notes/tuesday.md")
    assert r.code == 65 and "no such file: notes/monday.md" in r.stderr
    assert apex.requests == []
    apex.answer("default", ["fine"])
    assert brain("ask", "is", "and/or", "v1.2", "ok?").code == 0  # words, not files
    assert apex.requests[-1]["messages"][1]["content"] == "is and/or v1.2 ok?"


def test_an_argument_that_is_not_utf8_is_bad_input(brain) -> None:
    import os

    proc = subprocess.run(
        [brain_executable(), "dump", os.fsdecode(b"caf\xe9")], capture_output=True, text=True
    )
    assert proc.returncode == 65 and "UTF-8" in proc.stderr


def test_no_key_at_all_says_none_is_set(apex: FakeApex, brain) -> None:
    apex.key = "sk-needed-1234"
    apex.answer("brain_dump", ["x"])
    r = brain("dump", "x")
    assert r.code == 77 and "none is set" in r.stderr and "brain keys set apex" in r.stderr


def test_an_empty_pipe_in_a_script_sends_the_words_alone(apex: FakeApex, brain_proc) -> None:
    # No terminal (a script, or cron, whose stdin is an empty pipe): said once, then sent.
    apex.answer("code", ["fine"])
    r = brain_proc("code", "review this", input=b"")
    assert r.code == 0, r.stderr
    assert "stdin was empty; the instruction is sent alone" in r.stderr
    assert apex.requests[-1]["messages"][-1]["content"] == "review this"


def test_no_answering_on_this_laptop_right_before_nothing_could_answer(brain) -> None:
    r = brain("dump", "x", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69
    assert "answering on this laptop" not in r.stderr
    assert "Nothing could answer" in r.stderr


def test_the_fallback_notice_comes_when_the_laptop_answers(ollama: FakeOllama, brain) -> None:
    r = brain("dump", "x", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 0, r.stderr
    assert r.stderr.count("answering on this laptop with gemma4:e4b") == 1


def test_an_input_refused_for_a_missing_route_says_it_was_queued(apex: FakeApex, brain) -> None:
    r = brain("dump", "kept anyway")
    assert r.code == 78
    assert "Apex has no route named `brain_dump`" in r.stderr
    assert "Your input is kept in the queue (#1)" in r.stderr
    assert "`brain queue drop 1` forgets it" in r.stderr
    assert [q["input"] for q in brain("queue", "list", "--json").json["queued"]] == ["kept anyway"]
