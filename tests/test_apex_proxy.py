"""The rendered config.yaml in a real LiteLLM proxy (litellm[proxy]==1.106.12), every provider's
api_base pointed at a fake upstream: brain's tasks reach their routes, a failing first step
falls back (and `--json` shows it), premium and code never fall back, `brain apex check` shows
who answered, and the drill sees the cascade and the flip back.

Needs BRAIN_TEST_LITELLM (see tests/litellm_proxy.py); skipped without it. One proxy serves
the whole module: it takes ~15 s to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeProviders
from litellm_proxy import require_litellm, start_proxy

from brain.apex import catalog
from brain.apex import render as apex_render
from brain.tasks import builtin_tasks

KEY = "sk-brain-test-master-key"
PROVIDERS = ["ollama", "whisper", "cerebras", "groq", "gemini", "cloudflare", "anthropic"]


@dataclass
class Stack:
    url: str
    fakes: FakeProviders
    dir: Path

    def log(self) -> str:
        return self.url.log_text()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_litellm()
    directory = tmp_path_factory.mktemp("apex")
    _plan, files = apex_render.render_files(builtin_tasks(), apex_render.Options(slack=False))
    apex_render.write_files(directory, files, force=False)
    fakes = FakeProviders(PROVIDERS)
    env = {}
    for name in PROVIDERS:
        provider = catalog.PROVIDERS[name]
        env[provider.base_env] = fakes.base(name)
        env[provider.key_env] = f"fake-{name}-key"
    try:
        with start_proxy(directory / "config.yaml", env, master_key=KEY) as url:
            yield Stack(url, fakes, directory)
    finally:
        fakes.close()


@pytest.fixture
def apex_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name in PROVIDERS:
        stack.fakes.restore(name)
    stack.fakes.requests.clear()
    stack.fakes.uploads.clear()
    monkeypatch.setenv("BRAIN_APEX_URL", stack.url)
    monkeypatch.setenv("BRAIN_APEX_KEY", KEY)
    yield stack
    for name in PROVIDERS:
        stack.fakes.restore(name)


def _first_step(route: str) -> catalog.Deployment:
    return catalog.DEPLOYMENTS[catalog.CHAINS[route][0]]


@pytest.mark.parametrize("task", list(builtin_tasks()))
def test_every_task_reaches_its_route(apex_stack, brain, task):
    route = builtin_tasks()[task].route
    step = _first_step(route)
    r = brain("--online", "--json", task, "say hi")
    assert r.code == 0, r.stderr + apex_stack.log()[-3000:]
    j = r.json
    assert j["route"] == route and j["backend"] == "apex"
    assert j["model"] == f"{step.key}@{route}"
    assert j["answer"] == f"{step.provider}:{step.model} answers"
    assert j["fallbacks"] == []
    assert apex_stack.fakes.asked(step.provider) == [step.model]


def test_long_input_takes_the_long_route(apex_stack, brain):
    long_text = "word " * 40000  # ~50K tokens: past local.context_tokens (8192)
    r = brain("--online", "--json", "digest", input=long_text)
    assert r.code == 0, r.stderr
    j = r.json
    step = _first_step("long_context_summary")
    assert j["route"] == "long_context_summary"
    assert j["answer"] == f"gemini:{step.model} answers"


def test_failing_first_step_falls_back_and_json_shows_it(apex_stack, brain):
    apex_stack.fakes.fail("ollama", 500)
    r = brain("--online", "--json", "dump", "call Sam")
    assert r.code == 0, r.stderr
    j = r.json
    assert j["backend"] == "apex" and j["route"] == "brain_dump"
    assert j["model"] == "cerebras-llama-3.3-70b"
    assert j["answer"] == "cerebras:llama-3.3-70b answers"
    assert [f["backend"] for f in j["fallbacks"]] == ["apex"]
    assert j["fallbacks"][0]["answered_by"] == "cerebras-llama-3.3-70b"
    # Why, from the litellm-fallback-metadata chunk (expose_fallback_errors_to_caller).
    assert "fake ollama failure" in j["fallbacks"][0]["reason"]
    assert apex_stack.fakes.asked("ollama") == ["gemma3:27b-it-qat"]
    assert "Apex fell back" in r.stderr


def test_cascade_continues_past_two_failing_steps(apex_stack, brain):
    apex_stack.fakes.down("ollama")  # stopped: connection refused
    apex_stack.fakes.fail("cerebras", 429)
    r = brain("--online", "--json", "ask", "hello")
    assert r.code == 0, r.stderr
    j = r.json
    assert j["model"] == "groq-llama-3.3-70b"
    assert j["answer"] == "groq:llama-3.3-70b-versatile answers"
    assert j["fallbacks"] and j["fallbacks"][0]["backend"] == "apex"


def test_premium_never_falls_back(apex_stack, brain):
    apex_stack.fakes.fail("anthropic", 500)
    r = brain("--json", "premium", "is this rubric fair?")
    assert r.code != 0
    assert r.stdout == ""
    assert "premium" in r.stderr.lower() or "apex" in r.stderr.lower()
    asked = {name for name, _ in apex_stack.fakes.requests}
    assert asked == {"anthropic"}, asked


def test_premium_answers_from_claude(apex_stack, brain):
    r = brain("--json", "premium", "is this rubric fair?")
    assert r.code == 0, r.stderr + apex_stack.log()[-3000:]
    j = r.json
    assert j["model"] == "claude-sonnet-4-5@premium_reasoning"
    assert j["answer"] == "anthropic:claude-sonnet-4-5 answers"


def test_code_does_not_fall_back_on_apex(apex_stack, brain):
    apex_stack.fakes.fail("ollama", 500)
    r = brain("--online", "--json", "code", "review this")
    assert r.code != 0
    asked = {name for name, _ in apex_stack.fakes.requests}
    assert asked == {"ollama"}, asked


def test_wrong_key_is_a_key_error(apex_stack, brain, monkeypatch):
    monkeypatch.setenv("BRAIN_APEX_KEY", "sk-wrong")
    r = brain("--online", "dump", "x")
    assert r.code == 77, r.stderr
    assert "brain keys set apex" in r.stderr
    assert apex_stack.fakes.requests == []


def test_apex_check_prints_who_answered(apex_stack, brain):
    r = brain("apex", "check")
    assert r.code == 0, r.stderr
    lines = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert lines[0] == ["route", "tasks", "status", "answered by", "first token", "note"]
    rows = {row[0]: row for row in lines[1:]}
    assert set(rows) == set(catalog.routes_of(builtin_tasks()))
    assert rows["brain_dump"][2] == "ok"
    assert rows["brain_dump"][3] == "apex-gemma3-27b@brain_dump (Apex GPU)"
    assert rows["long_context_summary"][3] == "gemini-flash-lite@long_context_summary (cloud)"
    assert rows["premium_reasoning"][2] == "skipped"
    assert "anthropic" not in {name for name, _ in apex_stack.fakes.requests}
    assert "every route answered from its first step" in r.stderr


def test_apex_check_json_shows_fallbacks(apex_stack, brain):
    apex_stack.fakes.down("ollama")
    r = brain("apex", "check", "--json", "--premium")
    assert r.code == 69, r.stderr  # code has no cloud step: it cannot answer
    j = r.json
    routes = {x["route"]: x for x in j["routes"]}
    assert routes["brain_dump"]["ok"] and routes["brain_dump"]["apex_fallbacks"] == 1
    assert routes["brain_dump"]["model"] == "cerebras-llama-3.3-70b"
    assert routes["brain_dump"]["on_apex_gpu"] is False
    assert routes["code"]["ok"] is False and routes["code"]["error"]
    assert routes["premium_reasoning"]["model"] == "claude-sonnet-4-5@premium_reasoning"
    assert j["ok"] is False


def test_drill_sees_cascade_and_flip_back(apex_stack, make_app):
    from brain.apex import check

    endpoint = make_app().backend("apex")
    prompts: list[str] = []

    def pause(message: str) -> None:
        prompts.append(message)
        if len(prompts) == 1:
            apex_stack.fakes.down("ollama")
        else:
            apex_stack.fakes.restore("ollama")

    report = check.drill(endpoint, catalog.routes_of(builtin_tasks()), pause, poll_every=0.5)
    assert len(prompts) == 2 and "stop Ollama" in prompts[0]
    verdicts = {v.route: v for v in report.verdicts if v.text.startswith(("cascaded", "no answer"))}
    # Which cloud step answers depends on the free tiers' per-minute limits (rpm), which the
    # earlier tests in this module have partly used up: any cloud step is right.
    cloud = [k for k in catalog.CHAINS["brain_dump"] if not k.startswith("apex-")]
    assert verdicts["brain_dump"].ok
    assert any(f"to {k}" in verdicts["brain_dump"].text for k in cloud)
    assert verdicts["code"].ok and "as designed" in verdicts["code"].text
    flipped = [v for v in report.verdicts if v.text.startswith("flipped back")]
    assert {v.route for v in flipped} >= {"brain_dump", "daily_digest", "draft", "code", "default"}
    assert report.ok, report.verdicts
    assert report.flip_back_s is not None


def test_drill_on_the_command_line(apex_stack, home):
    """`brain apex check --drill` in a terminal: it waits for Enter at each step."""
    import os

    pexpect = pytest.importorskip("pexpect")
    from conftest import SUPPORT, brain_executable

    env = dict(os.environ, PYTHONPATH=str(SUPPORT), NO_COLOR="1", COLUMNS="200")
    child = pexpect.spawn(
        brain_executable(),
        ["apex", "check", "--drill"],
        env=env,
        cwd=str(home.root),
        encoding="utf-8",
        timeout=120,
    )
    child.expect("stop Ollama now")
    child.expect("Press Enter when done")
    apex_stack.fakes.down("ollama")
    child.sendline("")
    child.expect("start Ollama again")
    child.expect("Press Enter when done")
    apex_stack.fakes.restore("ollama")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    out = child.before
    assert child.exitstatus == 0, out
    assert "Fallback drill" in out
    assert "as designed" in out and "flipped back" in out and "cascaded from" in out


# ----- speech: the rendered `transcribe` group carries a memo (brain.voice) ---------------------


def _memo(path: Path, seconds: float = 1.0) -> Path:
    """A small WAV (a tone): what the upstream hears does not matter here, only the bytes."""
    import math
    import struct
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        frames = int(16000 * seconds)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(i * 440 * 2 * math.pi / 16000)))
                for i in range(frames)
            )
        )
    return path


def test_a_memo_goes_through_the_transcribe_group_and_the_transcript_is_the_input(
    apex_stack, brain, home
):
    memo = _memo(home.root / "memo.wav")
    r = brain("--online", "--json", "dump", "memo.wav", "for Monday")
    assert r.code == 0, r.stderr + apex_stack.log()[-3000:]
    j = r.json
    # The recording reached the Whisper server on Apex, byte for byte, as the rendered group says.
    provider, upload = apex_stack.fakes.uploads[-1]
    assert provider == "whisper"
    assert upload["model"] == catalog.DEPLOYMENTS["apex-whisper"].model
    assert upload["bytes"] == memo.read_bytes() and upload["filename"] == "memo.wav"
    heard = f"whisper:{upload['model']} heard {len(upload['bytes'])} bytes of memo.wav"
    assert j["transcript"] == {
        "text": heard,
        "backend": "apex",
        "model": "apex-whisper@transcribe",
        "audio_seconds": 6.7,
        "ms": j["transcript"]["ms"],
    }
    # The transcript, with the instruction, is what the dump route was asked.
    asked = [body for name, body in apex_stack.fakes.requests if name == "ollama"]
    assert asked[-1]["messages"][-1]["content"] == f"for Monday\n\n{heard}"
    assert j["answer"] == "ollama:gemma3:27b-it-qat answers"


def test_a_failing_whisper_on_apex_falls_back_to_groq_on_apex(apex_stack, brain, home):
    _memo(home.root / "memo.wav")
    apex_stack.fakes.fail("whisper", 500)
    r = brain("--online", "--json", "dump", "memo.wav")
    assert r.code == 0, r.stderr + apex_stack.log()[-3000:]
    transcript = r.json["transcript"]
    assert transcript["model"] == "groq-whisper-large-v3-turbo"
    assert transcript["text"].startswith("groq:whisper-large-v3-turbo heard ")
    assert [p for p, _ in apex_stack.fakes.uploads] == ["whisper", "groq"]


def test_ollama_steps_get_their_context_and_free_routes_cost_zero(apex_stack, brain):
    # Issue 29 items 8 and 9: LiteLLM's ollama_chat/ sends options.num_ctx only when the config
    # sets it; a zero-cost answer has no x-litellm-response-cost, only ...-cost-original.
    r = brain("--online", "--json", "dump", "call Sam")
    assert r.code == 0, r.stderr
    assert r.json["model"] == "apex-gemma3-27b@brain_dump"
    assert r.json["cost"] == 0.0
    (body,) = [b for name, b in apex_stack.fakes.requests if name == "ollama"]
    assert body["options"]["num_ctx"] == catalog.DEPLOYMENTS["apex-gemma3-27b"].context
    assert body["stream"] is True


def test_input_past_a_local_steps_context_skips_it_on_apex(apex_stack, brain):
    # Not sent to Ollama to be cut at num_ctx: LiteLLM's pre-call check passes it on.
    text = "word " * 32000  # ~40K tokens: past apex-gemma3-27b's max_input_tokens
    r = brain("--online", "--json", "ask", input=text)
    assert r.code == 0, r.stderr + apex_stack.log()[-3000:]
    assert "ollama" not in {name for name, _ in apex_stack.fakes.requests}
    assert r.json["fallbacks"] and r.json["fallbacks"][0]["backend"] == "apex"
    reason = r.json["fallbacks"][0]["reason"]
    assert "\n" not in reason and "context window" in reason.lower(), reason


def test_status_with_a_rejected_key_exits_77(apex_stack, brain, monkeypatch):
    # Issue 29 item 5: it said "questions go to Apex" and exited 0.
    monkeypatch.setenv("BRAIN_APEX_KEY", "sk-wrong")
    r = brain("status")
    assert r.code == 77, r.stdout + r.stderr
    assert "rejected" in r.stdout + r.stderr
    assert "questions go to Apex" not in r.stderr
    assert brain("status", "--json").json["key_ok"] is False
    monkeypatch.setenv("BRAIN_APEX_KEY", KEY)
    ok = brain("status")
    assert "questions go to Apex" in ok.stderr, ok.stdout + ok.stderr


def test_input_too_long_for_every_step_is_bad_input(apex_stack, brain):
    # `code` has one step (Apex's Qwen, num_ctx set): LiteLLM refuses; brain says 65 and
    # nothing reaches Ollama to be cut.
    r = brain("--online", "code", input="word " * 16000)  # ~20K tokens
    assert r.code == 65, r.stderr
    assert "ollama" not in {name for name, _ in apex_stack.fakes.requests}
    assert "too long" in r.stderr or "longer than" in r.stderr, r.stderr


def test_apex_check_advice_follows_each_routes_first_step(apex_stack, brain):
    # Issue 29 item 7: long_context_summary starts on Gemini; asking about Ollama was wrong.
    apex_stack.fakes.fail("gemini", 500)
    r = brain("apex", "check", "--only", "long_context_summary", "--only", "brain_dump")
    assert r.code == 0, r.stderr
    advice = {
        line.split(" answered only")[0].split()[-1]: line
        for line in r.stderr.splitlines()
        if "answered only after a fallback" in line
    }
    assert set(advice) == {"long_context_summary"}, r.stderr
    assert "GEMINI_API_KEY" in advice["long_context_summary"]
    assert "Ollama" not in advice["long_context_summary"]
    apex_stack.fakes.restore("gemini")
    apex_stack.fakes.down("ollama")
    r = brain("apex", "check", "--only", "brain_dump")
    line = next(x for x in r.stderr.splitlines() if "answered only after a fallback" in x)
    assert "Ollama" in line and "gemma3:27b-it-qat" in line and "Cannot connect" in line, line


def test_no_key_at_all_is_a_key_error_not_a_server_error(apex_stack, brain, monkeypatch):
    # LiteLLM 1.106.12 without a database answers a request with no key with a bare
    # `500 Internal Server Error` (text/plain), not the 400 a wrong key gets.
    monkeypatch.delenv("BRAIN_APEX_KEY")
    r = brain("--online", "dump", "x")
    assert r.code == 77, r.stderr + apex_stack.log()[-2000:]
    assert "none is set" in r.stderr and "brain keys set apex" in r.stderr
    status = brain("status")
    assert status.code == 77, status.stdout + status.stderr
    assert "not set, and Apex needs one" in status.stdout
    assert apex_stack.fakes.requests == []
