"""Nothing is silently truncated (DESIGN.md): brain knows the context of what it is about to
ask, sizes Ollama's to the request, leaves out a backend too small for the input, and refuses
(65) input longer than every model it may go to, without keeping it to fail again."""

from __future__ import annotations

import json

import httpx
from fakes import FakeApex, FakeOllama, fake_tokens

NOTES = [
    ("monday.md", "Monday: graded the soil pH lab reports; Sam's field trip form is late. "),
    ("tuesday.md", "Tuesday: FFA chapter meeting moved to Thursday; order pH strips. "),
    ("wednesday.md", "Wednesday: greenhouse heater tripped overnight; tomatoes fine. "),
    ("thursday.md", "Thursday: parent conference with the Garcias about the science fair. "),
]


def _write_notes(home, size: int) -> list[str]:
    """Files of about `size` bytes in all, each with a marker line only it holds."""
    names = []
    for i, (name, line) in enumerate(NOTES):
        body = f"MARKER-{i}-{name}\n" + line * (size // len(NOTES) // len(line))
        (home.root / name).write_text(body)
        names.append(name)
    return names


def test_the_fake_ollama_cuts_what_its_openai_api_sends_past_4096(ollama: FakeOllama) -> None:
    # What brain 0.1 did: the /v1 API cannot set the context, and the start is dropped.
    text = "START " + "x" * 80_000
    httpx.post(
        ollama.url + "/v1/chat/completions",
        json={"model": "gemma4:e4b", "messages": [{"role": "user", "content": text}]},
    )
    assert ollama.num_ctx_seen[-1] is None
    assert "START" not in ollama.kept[-1] and fake_tokens(ollama.kept[-1]) <= 4096


def test_offline_digest_of_80_kb_reaches_ollama_whole(ollama: FakeOllama, brain, home) -> None:
    names = _write_notes(home, 80_000)
    r = brain("--offline", "digest", *names, "--json")
    assert r.code == 0, r.stderr
    body = ollama.requests[-1]
    sent = body["messages"][1]["content"]
    num_ctx = body["options"]["num_ctx"]
    assert fake_tokens(sent) > 4096  # past Ollama's default: 0.1 would have cut it
    assert num_ctx >= fake_tokens(sent) + 1024 and num_ctx <= ollama.model_ctx
    kept = ollama.kept[-1]
    for i, name in enumerate(names):
        assert f"MARKER-{i}-{name}" in kept, f"{name} did not reach the model"
    assert r.json["backend"] == "local" and not r.json["partial"]


def test_input_past_the_local_models_own_context_is_refused(
    ollama: FakeOllama, brain, home
) -> None:
    ollama.model_ctx = 8192  # a small model: /api/show says 8,192
    names = _write_notes(home, 80_000)
    r = brain("--offline", "draft", "a summary letter", *names)
    assert r.code == 65, r.stderr
    assert "8,192" in r.stderr and "tokens" in r.stderr
    assert ollama.requests == []  # nothing was sent to be cut
    assert brain("queue", "list", "--json").json["queued"] == []  # nor kept to fail again


def test_a_task_with_a_long_route_takes_it_past_the_local_context(
    apex: FakeApex, ollama: FakeOllama, brain, home
) -> None:
    ollama.model_ctx = 8192
    apex.answer("long_context_summary", ["the long summary"])
    names = _write_notes(home, 80_000)
    r = brain("digest", *names, "--json")
    assert r.code == 0, r.stderr
    assert r.json["route"] == "long_context_summary" and r.json["backend"] == "apex"


def test_apex_route_limits_from_model_info_are_respected(
    apex: FakeApex, ollama: FakeOllama, brain, home
) -> None:
    # LiteLLM's /model/info says the draft route reads 16,000 tokens at most, the laptop 8,192.
    ollama.model_ctx = 8192
    apex.server.expect_request("/model/info").respond_with_json(
        {"data": [{"model_name": "draft", "model_info": {"max_input_tokens": 16000}}]}
    )
    apex.answer("draft", ["never"])
    names = _write_notes(home, 80_000)
    r = brain("draft", "a letter", *names)
    assert r.code == 65, r.stderr
    assert "16,000" in r.stderr and "8,192" in r.stderr
    assert apex.requests == [] and ollama.requests == []


def test_a_queued_input_that_no_longer_fits_leaves_the_queue(
    ollama: FakeOllama, brain, home
) -> None:
    from brain.material import messages_for
    from brain.store import Store
    from brain.tasks import builtin_tasks

    text = "y" * 80_000
    store = Store(home.data / "brain" / "brain.db") if (home.data / "brain").exists() else None
    if store is None:
        (home.data / "brain").mkdir(parents=True)
        store = Store(home.data / "brain" / "brain.db")
    row = store.add("draft", "draft", text, messages_for(builtin_tasks()["draft"], text))
    store.release(row, "nothing answered")
    store.close()
    ollama.model_ctx = 8192
    r = brain("--offline", "queue", "run")
    assert r.code == 65, r.stderr
    assert brain("queue", "list", "--json").json["queued"] == []
    [row_now] = [json.loads(line) for line in brain("history", "--json").stdout.splitlines()]
    assert row_now["id"] == row and row_now["status"] == "failed"  # out of the queue for good
