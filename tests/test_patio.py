"""Patio mode with real faults: detection, diagnosis, warm-up, nothing lost, any local server,
and Slack notices on fallback (one per change of state, kept in an outbox)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from conftest import spawn_brain
from fakes import FakeApex, FakeOllama, HangingListener, refused_url
from pytest_httpserver import HTTPServer

from brain import backends as local_mod


def queued(home) -> list:
    """What `brain queue run` would send: queued rows, and rows whose sender is gone."""
    from brain.store import Store

    store = Store(home.data / "brain" / "brain.db")
    try:
        return store.queued()
    finally:
        store.close()


def test_blackholed_apex_falls_back_with_timed_out(ollama: FakeOllama, brain) -> None:
    from netfaults import Unavailable, blackhole

    try:
        with blackhole() as url:
            r = brain("dump", "x", "--json", env={"BRAIN_APEX_URL": url})
    except Unavailable as exc:
        pytest.skip(f"no blackhole on this machine: {exc}")
    assert r.code == 0, r.stderr
    assert r.json["backend"] == "local"
    reason = r.json["fallbacks"][0]["reason"]
    assert "timed out" in reason and url in reason


def test_tailscale_state_is_named_when_the_cli_exists(
    ollama: FakeOllama, brain, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "tailscale"
    fake.write_text('#!/bin/sh\necho \'{"BackendState": "Stopped"}\'\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"BRAIN_APEX_URL": refused_url(), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    r = brain("dump", "x", env=env)
    assert r.code == 0
    assert "Tailscale is stopped" in r.stderr and "tailscale up" in r.stderr


def test_cold_local_model_is_announced_and_kept_warm(
    ollama: FakeOllama, brain, write_config
) -> None:
    write_config('[local]\nkeep_alive = "45m"\n')
    ollama.loaded.clear()
    r = brain("--offline", "dump", "x")
    assert r.code == 0 and r.stdout == "local answer\n"
    assert "loading gemma4:e4b on this laptop" in r.stderr
    assert ollama.requests[-1]["keep_alive"] == "45m"  # kept warm by the request itself
    warm = brain("--offline", "dump", "y")
    assert "loading" not in warm.stderr


def test_any_openai_compatible_local_server(apex_server: HTTPServer, brain, home) -> None:
    # llama.cpp's llama-server: no /api/tags, no /api/ps; /v1 only.
    from fakes import sse_body
    from werkzeug import Response

    apex_server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
        lambda _r: Response(sse_body(["from ", "llama-server"]), mimetype="text/event-stream")
    )
    apex_server.expect_request("/v1/models").respond_with_json(
        {"data": [{"id": "gemma-3-4b.gguf"}]}
    )
    url = apex_server.url_for("").rstrip("/")
    r = brain("--offline", "ask", "x", "--json", env={"BRAIN_LOCAL_URL": url})
    assert r.code == 0, r.stderr
    assert r.json["answer"] == "from llama-server" and r.json["backend"] == "local"
    # What it served is kept to explain a later failure; a private cache file like the others.
    seen = home.cache / "brain" / "local-seen.json"
    assert stat.S_IMODE(seen.stat().st_mode) == 0o600
    assert json.loads(seen.read_text())[url]["models"] == ["gemma-3-4b.gguf"]


def test_discover_finds_ollama_and_other_servers(
    ollama: FakeOllama, apex_server: HTTPServer
) -> None:
    apex_server.expect_request("/v1/models").respond_with_json({"data": [{"id": "qwen"}]})
    o_port = int(ollama.url.rsplit(":", 1)[1])
    a_port = int(apex_server.url_for("").rstrip("/").rsplit(":", 1)[1])
    free = int(refused_url().rsplit(":", 1)[1])
    found = local_mod.discover({o_port: "Ollama", a_port: "LM Studio", free: "vLLM"})
    kinds = {f.url: f for f in found}
    assert kinds[ollama.url].kind == "Ollama" and "gemma4:e4b" in kinds[ollama.url].models
    assert "LM Studio" in kinds[f"http://127.0.0.1:{a_port}"].kind
    assert len(found) == 2


def test_stall_mid_stream_is_partial_not_replaced(
    apex: FakeApex, ollama: FakeOllama, brain, write_config, home
) -> None:
    write_config("[apex]\nfirst_token_timeout = 1.0\n")
    # The first piece at once, then a 3 s stall: past the 1 s read deadline.
    apex.answer("brain_dump", ["started ", "late"], stall_after_first=3.0)
    r = brain("dump", "x")
    assert r.code == 75, r.stderr
    assert r.stdout.startswith("started")
    assert "incomplete" in r.stderr
    assert ollama.requests == []  # a started answer is never silently replaced


def test_garbage_before_first_token_falls_back(
    apex_server: HTTPServer, ollama: FakeOllama, brain
) -> None:
    apex_server.expect_request("/health/liveliness").respond_with_data("ok")
    apex_server.expect_request("/v1/chat/completions").respond_with_data(
        "\x00\x01garbage{{", content_type="application/json"
    )
    url = apex_server.url_for("").rstrip("/")
    r = brain("dump", "x", "--json", env={"BRAIN_APEX_URL": url})
    assert r.code == 0 and r.json["backend"] == "local"
    assert "not a chat completion" in r.json["fallbacks"][0]["reason"]


@pytest.mark.parametrize("status", [502, 503])
def test_litellm_all_deployments_failed_falls_back(
    status: int, apex: FakeApex, ollama: FakeOllama, brain
) -> None:
    apex.error(
        "brain_dump",
        status,
        {"error": {"message": "No deployments available for selected model", "type": None}},
    )
    r = brain("dump", "x", "--json")
    assert (
        r.code == 0
        and r.json["backend"] == "local"
        and str(status) in r.json["fallbacks"][0]["reason"]
    )


def test_kill_9_before_the_answer_leaves_the_input_in_the_queue(apex: FakeApex, home) -> None:
    apex.answer("brain_dump", ["late"], first_delay=30)
    proc = spawn_brain("dump", "the thought that must survive")
    deadline = time.monotonic() + 20
    while not apex.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rows = queued(home)
    assert [r.input for r in rows] == ["the thought that must survive"]


def test_kill_9_mid_answer_keeps_the_input_and_never_asks_it_again(apex: FakeApex, home) -> None:
    # Exactly once (issue 31): an answer that began to be shown is never sent again by
    # `queue run` (for premium that would be paying twice); the input stays in the history.
    from brain.store import Store

    apex.answer("brain_dump", [f"w{i} " for i in range(100)], delay=0.05)
    proc = spawn_brain("dump", "the thought that must survive")
    assert proc.stdout.read(2) == b"w0"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert queued(home) == []
    store = Store(home.data / "brain" / "brain.db")
    [row] = store.history()
    store.close()
    assert row.input == "the thought that must survive" and row.partial
    assert "shown" in row.partial_reason


# ----- a frozen Apex (issue 29 item 1) -------------------------------------------------------


@pytest.fixture
def apex_process(tmp_path: Path):
    """Apex as a process of its own (bench/fake_openai.py: LiteLLM's liveness and headers), so
    that it can be frozen with SIGSTOP like a stopped proxy, a hung GPU box or a sleeping one
    whose port is still open: connections are accepted by the kernel, nothing answers."""
    if not hasattr(signal, "SIGSTOP"):
        pytest.skip("SIGSTOP is POSIX-only")
    import subprocess
    import sys

    fake = Path(__file__).parent.parent / "bench" / "fake_openai.py"
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(fake), "--port", "0", "--port-file", str(port_file), "--tokens", "3"],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "the fake did not start"
            time.sleep(0.05)
        proc.url = f"http://127.0.0.1:{port_file.read_text()}"  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("probe_ttl", [None, 0])
def test_frozen_apex_after_a_success_is_left_within_the_probe(
    apex_process, ollama: FakeOllama, brain_proc, write_config, probe_ttl
) -> None:
    # Before: within 30 s of a success the probe was skipped and each command waited the whole
    # first-token timeout (20 s, twice). Now the probe beside the request cancels it. The
    # figures (about a second, then nothing) are in bench/patio.md; a test asserts no time.
    # A first-token timeout longer than the subprocess limit below: only the probe can free
    # these commands in time (the old code waited it out and would fail here, not pass slowly).
    ttl = "" if probe_ttl is None else f"probe_ttl = {probe_ttl}\n"
    write_config(f"[apex]\nfirst_token_timeout = 600\n{ttl}")
    env = {"BRAIN_APEX_URL": apex_process.url, "BRAIN_LOCAL_URL": ollama.url}
    first = brain_proc("dump", "a", "--json", env=env)
    assert first.code == 0 and first.json["backend"] == "apex", first.stderr
    apex_process.send_signal(signal.SIGSTOP)
    for text in ("b", "c"):
        r = brain_proc("dump", text, "--json", env=env, timeout=120)
        assert r.code == 0, r.stderr
        assert r.json["backend"] == "local" and r.json["answer"] == "local answer"
        reason = r.json["fallbacks"][0]["reason"]
        assert apex_process.url in reason and "timed out" in reason, reason
        assert "liveliness" not in reason
    if probe_ttl is None:  # the timeout is remembered for a few seconds: not asked again
        assert "seen in the last few seconds" in reason, reason
        return
    apex_process.send_signal(signal.SIGCONT)  # nothing remembered: the next command uses it
    back = brain_proc("dump", "d", "--json", env=env)
    assert back.code == 0 and back.json["backend"] == "apex", back.stderr


# ----- a refused Apex is never remembered (issue 29 items 3, 10) -----------------------------


@pytest.fixture
def cpu_load():
    """Busy processes on every core while the block runs: under load a refusal took over
    100 ms and was then classed "costly" and remembered. Verdicts go by kind, not time."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 2) * 2)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("loaded", [False, True], ids=["quiet", "under-load"])
def test_refused_apex_is_not_remembered_a_live_one_is_used_at_once(
    request, ollama: FakeOllama, brain, home, loaded
) -> None:
    url = refused_url()
    port = int(url.rsplit(":", 1)[1])
    if loaded:
        request.getfixturevalue("cpu_load")
    down = brain("dump", "a", "--json", env={"BRAIN_APEX_URL": url})
    assert down.code == 0 and down.json["backend"] == "local"
    assert "refused" in down.json["fallbacks"][0]["reason"]
    server = HTTPServer(host="127.0.0.1", port=port, threaded=True)  # Apex comes back there
    server.start()
    try:
        fake = FakeApex(server)
        fake.answer("brain_dump", ["apex is back"])
        back = brain("dump", "b", "--json", env={"BRAIN_APEX_URL": url})
    finally:
        server.clear()
        server.stop()
    assert back.code == 0, back.stderr
    assert back.json["backend"] == "apex" and back.json["answer"] == "apex is back"
    assert back.json["fallbacks"] == []


def test_verdicts_are_classified_by_kind_never_by_time(home) -> None:
    # A refusal that took 5 s (a loaded machine) is still not remembered; a timeout is.
    from brain.offline import probe

    home.cache.mkdir(parents=True, exist_ok=True)
    refused = probe.probe(refused_url(), 1.0)
    assert refused.kind == probe.REFUSED
    refused.latency_ms = 5000
    probe.remember(home.cache, refused)
    assert probe.away(home.cache, refused.url) is None
    hang = HangingListener()
    try:
        timed_out = probe.probe(hang.url, 0.3)
    finally:
        hang.close()
    assert timed_out.kind == probe.TIMEOUT
    probe.remember(home.cache, timed_out)
    assert probe.away(home.cache, timed_out.url) is not None


# ----- Slack --------------------------------------------------------------------------------


def slack_texts(server: HTTPServer, want: int, wait: float = 15.0) -> list[str]:
    """What the fake Slack received, waiting for the detached sender to deliver `want`."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        texts = [json.loads(req.get_data())["text"] for req, _ in server.log]
        if len(texts) >= want:
            time.sleep(0.3)  # and nothing more arrives
            return [json.loads(req.get_data())["text"] for req, _ in server.log]
        time.sleep(0.1)
    return [json.loads(req.get_data())["text"] for req, _ in server.log]


def test_slack_one_notice_per_change_of_state(
    apex: FakeApex, ollama: FakeOllama, slack: HTTPServer, brain
) -> None:
    hook = {"BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")}
    apex.answer("brain_dump", ["apex"])
    assert brain("dump", "a", env=hook).code == 0  # Apex answers: normal state, no notice
    down = {**hook, "BRAIN_APEX_URL": refused_url()}
    assert brain("dump", "b", env=down).code == 0
    texts = slack_texts(slack, 1)
    assert len(texts) == 1
    assert (
        "fallback fired" in texts[0]
        and "`dump`" in texts[0]
        and "refused" in texts[0]
        and "gemma4:e4b" in texts[0]
    )
    assert brain("dump", "c", env=down).code == 0  # same state: nothing new
    assert brain("dump", "d", env=hook).code == 0  # Apex is back
    texts = slack_texts(slack, 2)
    assert len(texts) == 2 and "Apex answers again" in texts[1]


def test_offline_is_a_choice_and_sends_no_slack_notice(
    apex: FakeApex, ollama: FakeOllama, slack: HTTPServer, brain, home
) -> None:
    # Issue 29 item 2: `--offline` sent "fallback fired … because Apex failed:" (no reason),
    # then "Apex answers again" on the next normal command. Apex never failed.
    hook = {"BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")}
    apex.answer("brain_dump", ["apex"])
    assert brain("--offline", "dump", "a", env=hook).code == 0
    assert brain("dump", "b", env={**hook, "BRAIN_OFFLINE": "1"}).code == 0
    r = brain("dump", "c", "--json", env=hook)
    assert r.code == 0 and r.json["backend"] == "apex"
    # A real fallback still notifies (the receiver works): exactly that one notice arrives.
    assert brain("dump", "d", env={**hook, "BRAIN_APEX_URL": refused_url()}).code == 0
    texts = slack_texts(slack, 1)
    assert len(texts) == 1 and "refused" in texts[0], texts


def test_slack_apex_side_fallback_from_headers(apex: FakeApex, slack: HTTPServer, brain) -> None:
    apex.answer(
        "code",
        ["ok"],
        fallbacks=1,
        group="code_cloud",
        model_id="cerebras-qwen",
        fallback_errors="qwen32b: timeout",
    )
    r = brain("code", "x", env={"BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")})
    assert r.code == 0
    texts = slack_texts(slack, 1)
    assert (
        len(texts) == 1
        and "LiteLLM fallback fired" in texts[0]
        and "code_cloud" in texts[0]
        and "qwen32b: timeout" in texts[0]
    )


def test_slack_unreachable_keeps_notice_in_outbox_then_sends(
    ollama: FakeOllama, slack: HTTPServer, brain, home
) -> None:
    down = {"BRAIN_APEX_URL": refused_url()}
    r = brain("dump", "x", env={**down, "BRAIN_SLACK_WEBHOOK": refused_url() + "/hook"})
    assert r.code == 0 and r.stdout == "local answer\n"  # the answer does not wait for Slack
    db = home.data / "brain" / "brain.db"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the detached sender tried and failed
        rows = sqlite3.connect(db).execute("SELECT attempts FROM outbox").fetchall()
        if rows and rows[0][0] >= 1:
            break
        time.sleep(0.1)
    assert rows and rows[0][0] >= 1
    # Slack is back: the next run sends the waiting notice.
    assert brain("dump", "y", env={**down, "BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")}).code == 0
    texts = slack_texts(slack, 1)
    assert len(texts) == 1 and "fallback fired" in texts[0]
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_slack_events_can_be_chosen(
    ollama: FakeOllama, slack: HTTPServer, brain, write_config, home
) -> None:
    write_config('[notify]\nevents = ["recovered"]\n')
    r = brain(
        "dump",
        "x",
        env={"BRAIN_APEX_URL": refused_url(), "BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")},
    )
    assert r.code == 0
    time.sleep(1.0)
    assert slack.log == []
    assert (
        sqlite3.connect(home.data / "brain" / "brain.db")
        .execute("SELECT COUNT(*) FROM outbox")
        .fetchone()[0]
        == 0
    )


def test_hanging_slack_never_delays_or_fails_the_answer(ollama: FakeOllama, brain, home) -> None:
    hang = HangingListener()
    try:
        r = brain(
            "dump",
            "x",
            env={"BRAIN_APEX_URL": refused_url(), "BRAIN_SLACK_WEBHOOK": hang.url + "/hook"},
        )
    finally:
        hang.close()
    assert r.code == 0 and r.stdout == "local answer\n"
    # The notice was written (and waits to be sent), so the answer did not skip notifying.
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    texts = [t for (t,) in db.execute("SELECT text FROM outbox")]
    assert len(texts) == 1 and "fallback fired" in texts[0]


def test_a_failing_route_does_not_mark_apex_away(apex: FakeApex, ollama: FakeOllama, brain) -> None:
    apex.error("code", 500, {"error": {"message": "qwen32b crashed", "type": None}})
    apex.answer("brain_dump", ["apex fine"])
    r = brain("code", "x", "--json")
    assert r.json["backend"] == "local" and "500" in r.json["fallbacks"][0]["reason"]
    assert brain("dump", "y", "--json").json["backend"] == "apex"  # not skipped for 10 s


def test_a_slow_route_does_not_mark_apex_away(
    apex: FakeApex, ollama: FakeOllama, brain, write_config
) -> None:
    write_config("[apex]\nfirst_token_timeout = 1.0\n")
    apex.answer("draft", ["too late"], first_delay=3.0)  # a cold 31B model, say
    apex.answer("brain_dump", ["apex fine"])
    r = brain("draft", "x", "--json")
    assert r.json["backend"] == "local"
    reason = r.json["fallbacks"][0]["reason"]
    assert "timed out" in reason and reason.count("Apex (") == 1
    assert brain("dump", "y", "--json").json["backend"] == "apex"


def test_notice_states_follow_what_answered_and_why() -> None:
    from brain import notify
    from brain.backends.base import Answer
    from brain.offline.ladder import Outcome

    offline = Outcome(Answer(text="x", backend="local", model="gemma3-270m"), "dump", "brain_dump")
    assert notify.state_of(offline) is None  # not asked, not failed: nothing to say
    why = "Apex (http://apex:4000): connection refused\nsecond line"
    direct = Outcome(
        Answer(text="x", backend="anthropic", model="claude-sonnet-4-5"),
        "premium",
        "premium_reasoning",
        [{"backend": "apex", "reason": why}],
    )
    assert notify.state_of(direct) == ("anthropic:claude-sonnet-4-5", "fallback")
    text = notify.message(direct, "fallback")
    assert "used anthropic claude-sonnet-4-5" in text and "local" not in text
    assert text.endswith("Apex failed: Apex (http://apex:4000): connection refused")
