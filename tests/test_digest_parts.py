"""A digest of any length on any model: material longer than the answering backend's context
is digested in parts that each fit, then the parts' notes together (brain.digest.parts)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeApex, FakeOllama, fake_tokens, refused_url
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from brain.digest.parts import cost, pack, split
from brain.digest.sources import Unit


def six_files(root: Path, total: int = 200_000) -> list[Path]:
    """Six files, `total` bytes together, every line unique (file and line number)."""
    paths = []
    for f in range(6):
        lines, size, n = [], 0, 0
        while size < total // 6:
            line = f"f{f}-l{n}: the soil pH lab needs strips, rubric v{n % 7}, bus {n % 11}\n"
            lines.append(line)
            size += len(line)
            n += 1
        path = root / f"night-{f}.md"
        path.write_text("".join(lines))
        paths.append(path)
    return paths


def lines_of(paths: list[Path]) -> list[str]:
    return [ln for p in paths for ln in p.read_text().splitlines()]


def user_texts(requests: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for r in requests for m in r["messages"] if m["role"] == "user"]


def check_every_local_request_fits(ollama: FakeOllama) -> None:
    """No request over the model's context: the fake read all of it (nothing dropped from the
    start), the context asked for is within the model's, and the answer has room in it."""
    assert ollama.requests
    for body, kept, num_ctx in zip(ollama.requests, ollama.kept, ollama.num_ctx_seen, strict=True):
        text = "\n".join(str(m["content"]) for m in body["messages"])
        assert kept == text  # nothing cut
        assert num_ctx is not None and num_ctx <= ollama.model_ctx
        assert fake_tokens(text) + body["options"]["num_predict"] <= num_ctx


def test_offline_digest_of_200kb_in_parts_on_a_4096_context(
    ollama: FakeOllama, brain, home
) -> None:
    ollama.model_ctx = 4096
    paths = six_files(home.root)
    r = brain("--offline", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    check_every_local_request_fits(ollama)
    parts = len(ollama.requests) - 1
    assert parts >= 18  # 200 KB (~57,000 tokens) at under 3,000 tokens a part
    # Every file's content reaches some request, labelled with its file.
    sent = "\n".join(user_texts(ollama.requests[:-1]))
    missing = [ln for ln in lines_of(paths) if ln not in sent]
    assert missing == []
    for p in paths:
        assert f"--- {p.name} (piece 1 of" in sent
    # The answer comes from one last request, which holds every part's notes.
    last = user_texts(ollama.requests[-1:])[0]
    assert last.count("--- notes on part ") == parts
    assert f"read in {parts} parts" in last
    assert r.stdout.startswith("local answer\n\n_Digested in ")
    assert f"Digested in {parts} parts" in r.stdout and "4,096 tokens" in r.stdout
    assert f"digesting it in {parts} parts" in r.stderr
    # The history has each part and the digest; nothing is left in the queue.
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status='answered'").fetchone()[0] == (
        parts + 1
    )
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status!='answered'").fetchone()[0] == 0


def test_notes_too_long_for_one_request_are_combined_in_rounds(
    ollama: FakeOllama, brain, home
) -> None:
    ollama.model_ctx = 4096
    ollama.pieces = ["- note " + "x" * 1200]  # each part's notes: ~350 tokens
    paths = six_files(home.root, total=60_000)
    r = brain("--offline", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    check_every_local_request_fits(ollama)
    assert "rounds of combining notes" in r.stdout
    merges = [b for b in ollama.requests if "combine notes" in b["messages"][0]["content"]]
    assert merges  # rounds happened, each within the context (checked above)
    last = user_texts(ollama.requests[-1:])[0]
    assert "--- notes on " in last and "write the digest from them" in last


def test_other_tasks_still_refuse_input_too_long_for_every_model(ollama: FakeOllama, brain):
    ollama.model_ctx = 4096
    r = brain("--offline", "ask", "summarize", input="word " * 20000)
    assert r.code == 65 and "longer than any model" in r.stderr
    assert ollama.requests == []


def test_apex_away_the_laptop_digests_in_parts(ollama: FakeOllama, brain, home) -> None:
    """Apex's context is not known (no /model/info), so the whole goes to Apex; Apex cannot be
    reached, so the laptop takes over, in parts that fit its context."""
    ollama.model_ctx = 4096
    paths = six_files(home.root, total=40_000)
    r = brain("--json", "digest", *[p.name for p in paths], env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 0, r.stderr
    check_every_local_request_fits(ollama)
    notice = [ln for ln in r.stderr.splitlines() if "connection refused —" in ln]
    assert len(notice) == 1 and "answering on this laptop with gemma4:e4b" in notice[0]
    assert "parts that fit its context (4,096 tokens)" in notice[0]
    j = r.json
    assert j["backend"] == "local" and j["digest"]["parts"] == len(ollama.requests) - 1
    assert [f["backend"] for f in j["fallbacks"]] == ["apex"]
    assert f"Digested in {j['digest']['parts']} parts" in j["answer"]
    sent = "\n".join(user_texts(ollama.requests))
    assert [ln for ln in lines_of(paths) if ln not in sent] == []
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status='queued'").fetchone()[0] == 0


def _model_info(server: HTTPServer, limit: int) -> None:
    data = [
        {"model_name": route, "model_info": {"max_input_tokens": limit}}
        for route in ("daily_digest", "long_context_summary")
    ]
    server.expect_request("/model/info").respond_with_json({"data": data})


class CountingApex:
    """Apex's chat endpoint counting how many requests are in flight; from request `fail_from`
    on, HTTP 500. With `overlap`, a part's request waits (up to 5 s) for another to arrive, so
    that parts sent at once are seen at once however slow the machine is."""

    def __init__(
        self,
        apex: FakeApex,
        server: HTTPServer,
        fail_from: int | None = None,
        overlap: bool = False,
    ):
        self.apex, self.fail_from, self.overlap = apex, fail_from, overlap
        self.lock = threading.Condition()
        self.inflight = self.peak = 0
        self.bodies: list[dict[str, Any]] = []
        server.clear()
        server.expect_request("/health/liveliness").respond_with_data('"I\'m alive!"')
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
            self.handle
        )

    def handle(self, request: Request) -> Response:
        body = request.get_json()
        with self.lock:
            self.bodies.append(body)
            number = len(self.bodies)
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
            self.lock.notify_all()
            if self.overlap and "--- notes on part" not in json.dumps(body):
                self.lock.wait_for(lambda: self.inflight >= 2, timeout=5.0)
        try:
            time.sleep(0.1)
            if self.fail_from is not None and number >= self.fail_from:
                error = {"error": {"message": "upstream is down", "type": "None", "code": "500"}}
                return Response(json.dumps(error), status=500, content_type="application/json")
            return self.apex._chat(request)
        finally:
            with self.lock:
                self.inflight -= 1


def test_parts_run_at_once_on_apex_bounded(
    apex: FakeApex, apex_server: HTTPServer, brain, write_config, home
) -> None:
    write_config("[digest]\nparallel = 2\n")
    counting = CountingApex(apex, apex_server, overlap=True)
    _model_info(apex_server, 6000)
    apex.answer("long_context_summary", ["apex notes"])
    paths = six_files(home.root, total=80_000)
    r = brain("--online", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    parts = len(counting.bodies) - 1
    assert parts >= 4
    assert counting.peak == 2  # at once, and never more than [digest] parallel
    for body in counting.bodies:
        assert body["model"] == "long_context_summary"
        assert sum(len(m["content"]) for m in body["messages"]) / 3.5 <= 6000
    last = counting.bodies[-1]["messages"][1]["content"]
    assert last.count("--- notes on part ") == parts
    # The notes keep the parts' order whatever order they were answered in.
    labels = [ln for ln in last.splitlines() if ln.startswith("--- notes on part ")]
    assert [int(ln.split()[4]) for ln in labels] == list(range(1, parts + 1))
    assert r.stdout.startswith("apex notes\n\n_Digested in")


def test_apex_failing_part_way_hands_the_rest_to_the_laptop(
    apex: FakeApex, apex_server: HTTPServer, ollama: FakeOllama, brain, write_config, home
) -> None:
    write_config("[digest]\nparallel = 1\n")
    ollama.model_ctx = 4096
    counting = CountingApex(apex, apex_server, fail_from=3)
    _model_info(apex_server, 6000)
    apex.answer("long_context_summary", ["apex notes"])
    paths = six_files(home.root, total=80_000)
    r = brain("--json", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    # Two parts answered on Apex; the third failed; the laptop read the rest in parts that fit
    # its own (smaller) context, and wrote the digest from all the notes.
    check_every_local_request_fits(ollama)
    apex_read = "\n".join(user_texts(counting.bodies[:2]))
    laptop_read = "\n".join(user_texts(ollama.requests[:-1]))
    missing = [ln for ln in lines_of(paths) if ln not in apex_read and ln not in laptop_read]
    assert missing == []
    last = user_texts(ollama.requests[-1:])[0]
    assert last.count("apex notes") == 2 and last.count("local answer") == len(ollama.requests) - 1
    assert "answered HTTP 500" in r.stderr and "answering on this laptop" in r.stderr
    assert r.json["backend"] == "local"
    assert r.json["digest"]["parts"] == 2 + len(ollama.requests) - 1
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status='queued'").fetchone()[0] == 0


def test_nothing_left_to_answer_keeps_the_rest_in_the_queue(
    apex: FakeApex, apex_server: HTTPServer, brain, write_config, home
) -> None:
    write_config("[digest]\nparallel = 1\n")
    CountingApex(apex, apex_server, fail_from=2)
    _model_info(apex_server, 6000)
    apex.answer("long_context_summary", ["apex notes"])
    paths = six_files(home.root, total=60_000)
    r = brain("digest", *[p.name for p in paths])  # the laptop: nothing answers (refused)
    assert r.code == 69
    assert "Nothing could finish the digest" in r.stderr and "apex: " in r.stderr
    assert "in the queue" in r.stderr and "notes on 1 parts in the history" in r.stderr
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    queued = [t for (t,) in db.execute("SELECT input FROM exchanges WHERE status='queued'")]
    answered = [t for (t,) in db.execute("SELECT input FROM exchanges WHERE status='answered'")]
    kept = "\n".join(queued + answered)
    assert queued and [ln for ln in lines_of(paths) if ln not in kept] == []


# ----- packing ----------------------------------------------------------------------------------


def test_pack_and_split_keep_every_character_once() -> None:
    text = "".join(f"line {i} " + "é" * (i % 5) + "\n" for i in range(3000))
    text += "x" * 50_000 + "\n"  # a line longer than a part
    unit = Unit("s", "s: big.md", text)
    pieces = split(unit, 500)
    assert "".join(p.text for p in pieces) == text
    assert all(cost(p.labelled()) <= 500 for p in pieces)
    assert pieces[0].label == f"s: big.md (piece 1 of {len(pieces)})"
    groups = pack([Unit("a", "a", "small\n"), unit, Unit("b", "b", "tail\n")], 800)
    assert all(sum(cost(u.labelled()) + 1 for u in g) <= 800 for g in groups)
    flat = [u for g in groups for u in g]
    assert flat[0].text == "small\n" and flat[-1].text == "tail\n"
    assert "".join(u.text for u in flat[1:-1]) == text


@pytest.mark.parametrize("text", ["ascii only " * 500, "日本語のテキスト" * 300, "a\n" * 2000])
def test_cost_is_never_below_brains_estimate(text: str) -> None:
    from brain.backends import estimate_tokens

    assert cost(text) + 8 >= estimate_tokens([{"content": text}])


# ----- a model that counts the material denser than brain estimates -------------------------


class DenseLlamaServer:
    """A llama.cpp server whose tokenizer counts `chars_per_token` characters a token (digits,
    tables, base64 are far denser than prose) and refuses, as llama.cpp does, a request past
    its slot's context."""

    def __init__(self, server: HTTPServer, n_ctx: int, chars_per_token: float) -> None:
        self.n_ctx, self.cpt = n_ctx, chars_per_token
        self.accepted: list[str] = []
        self.refused = 0
        server.expect_request("/v1/models").respond_with_json({"data": [{"id": "dense.gguf"}]})
        server.expect_request("/props").respond_with_json(
            {"default_generation_settings": {"n_ctx": n_ctx}}
        )
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self.chat)

    def chat(self, request: Request) -> Response:
        from fakes import sse_body

        body = json.loads(request.data)
        text = "\n".join(str(m["content"]) for m in body["messages"])
        tokens = int(len(text) / self.cpt) + 1
        if tokens + int(body.get("max_tokens") or 0) > self.n_ctx:
            self.refused += 1
            message = (
                f"request ({tokens} tokens) exceeds the available context size "
                f"({self.n_ctx} tokens), try increasing it"
            )
            error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
            return Response(json.dumps({"error": error}), 400, mimetype="application/json")
        self.accepted.append(text)
        return Response(sse_body([f"notes {len(self.accepted)}"]), mimetype="text/event-stream")


def test_a_model_that_counts_denser_gets_smaller_parts(
    apex_server: HTTPServer, brain, home, monkeypatch
) -> None:
    # 1.8 characters a token against brain's 3.5: the first part is refused with the count,
    # the rest is packed again by what the server said, and the digest is whole.
    dense = DenseLlamaServer(apex_server, n_ctx=8192, chars_per_token=1.8)
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    paths = six_files(home.root, total=60_000)
    r = brain("--offline", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    assert dense.refused >= 1 and "packing the rest in smaller parts" in r.stderr
    sent = "\n".join(dense.accepted)
    assert [ln for ln in lines_of(paths) if ln not in sent] == []  # every line read once
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status='queued'").fetchone()[0] == 0


def test_material_too_dense_for_every_model_is_refused_not_queued(
    apex_server: HTTPServer, brain, home, monkeypatch
) -> None:
    # One character a token in a 2,048-token slot: no part worth asking fits; the input is
    # refused (65) and nothing waits in the queue to fail again.
    DenseLlamaServer(apex_server, n_ctx=2048, chars_per_token=1.0)
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    paths = six_files(home.root, total=20_000)
    r = brain("--offline", "digest", *[p.name for p in paths])
    assert r.code == 65, r.stderr
    assert "too dense for every model" in r.stderr and "nothing was put in the queue" in r.stderr
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM exchanges WHERE status='queued'").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("said", "counted", "context"),
    [
        (
            "request (3112 tokens) exceeds the available context size (2048 tokens), try "
            "increasing it",
            3112,
            2048,
        ),
        (
            "This model's maximum context length is 4096 tokens. However, your messages "
            "resulted in 5000 tokens. Please reduce the length of the messages.",
            5000,
            4096,
        ),
        (
            "This model's maximum context length is 2048 tokens. However, you requested 3000 "
            "tokens (2000 in the messages, 1000 in the completion).",
            2000,
            2048,
        ),
        ("prompt is too long: 210000 tokens > 200000 maximum", 210000, 200000),
        (
            "litellm.ContextWindowExceededError: ContextWindowExceededError: OpenAIException - "
            "request (9,000 tokens) exceeds the available context size (8,192 tokens)",
            9000,
            8192,
        ),
    ],
)
def test_what_servers_say_about_too_long_is_read(said: str, counted: int, context: int) -> None:
    from brain.digest.parts import _said

    assert _said(said) == (counted, context)


def test_a_shrunk_laptop_context_keeps_a_quarter_for_the_answer() -> None:
    # local.context_tokens said 8,192; the server holds 2,048: the answer room follows.
    from brain.digest.parts import Room, _MoveOn, _smaller

    room = Room("local", "r", "m", 8192, 2048, "m on this laptop", "asking m")
    said = "request (2500 tokens) exceeds the available context size (2048 tokens)"
    smaller = _smaller(room, _MoveOn("local", said, [], too_long=True, estimate=2400))
    assert smaller is not None and smaller.limit == 2048 and smaller.answer == 512
    assert smaller.budget is not None and smaller.budget > 1024


def test_prose_on_a_server_smaller_than_configured_is_digested(
    apex_server: HTTPServer, brain, home, monkeypatch, write_config
) -> None:
    write_config("[local]\ncontext_tokens = 8192\n")
    dense = DenseLlamaServer(apex_server, n_ctx=2048, chars_per_token=3.5)
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    paths = six_files(home.root, total=30_000)
    r = brain("--offline", "digest", *[p.name for p in paths])
    assert r.code == 0, r.stderr
    sent = "\n".join(dense.accepted)
    assert [ln for ln in lines_of(paths) if ln not in sent] == []


def test_dense_material_brain_thought_fits_whole_is_read_in_parts(
    apex_server: HTTPServer, brain, home, monkeypatch
) -> None:
    # Digits, one token each: brain's estimate says the whole fits 4,096 tokens; the server
    # refuses it, and the digest goes on in parts sized by what it said.
    dense = DenseLlamaServer(apex_server, n_ctx=4096, chars_per_token=1.0)
    monkeypatch.setenv("BRAIN_LOCAL_URL", apex_server.url_for("").rstrip("/"))
    (home.root / "digits.txt").write_text("".join(f"{n:08d}\n" for n in range(700)))
    r = brain("--offline", "digest", "digits.txt")
    assert r.code == 0, r.stderr
    assert dense.refused >= 1 and "digesting it in parts" in r.stderr
    sent = "\n".join(dense.accepted)
    assert all(f"{n:08d}" in sent for n in range(700))


def test_sigterm_while_parts_are_read_is_143_not_130() -> None:
    from brain.digest.parts import _stopped
    from brain.errors import Terminated

    assert _stopped(Terminated(15, "SIGTERM"), []).exit_code == 143
    assert _stopped(KeyboardInterrupt(), []).exit_code == 130


class RateLimitedFirst(CountingApex):
    """The first request to arrive is rate limited (429), after the others have failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.first = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle(self, request: Request) -> Response:
        if self.first.acquire(blocking=False):
            time.sleep(1.0)  # the 500s (the laptop takes over) are seen first
            error = {"error": {"message": "rate limited", "type": "None", "code": "429"}}
            return Response(json.dumps(error), status=429, content_type="application/json")
        return super().handle(request)


def test_a_rate_limit_beside_a_failure_on_apex_reads_each_line_once(
    apex: FakeApex, apex_server: HTTPServer, ollama: FakeOllama, brain, write_config, home
) -> None:
    # Parts at once on Apex: one is rate limited (its input queued, 429), the others fail
    # (500, the laptop takes over). Whichever failure is seen first, every line is read by the
    # laptop or kept in the queue, and never both.
    write_config("[digest]\nparallel = 3\n")
    ollama.model_ctx = 4096
    RateLimitedFirst(apex, apex_server, fail_from=1)
    _model_info(apex_server, 6000)
    paths = six_files(home.root, total=60_000)
    r = brain("digest", *[p.name for p in paths])
    assert r.code in (0, 69, 75), r.stderr
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    queued = "\n".join(
        t for (t,) in db.execute("SELECT input FROM exchanges WHERE status='queued'")
    )
    laptop = "\n".join(user_texts(ollama.requests))
    for line in lines_of(paths):
        assert (line in queued) != (line in laptop), line  # read once, or kept once
