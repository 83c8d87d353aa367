"""`brain queue run` sends each kept input exactly once: two runs at once, or a run during an
in-flight question, never send (and, for premium, pay for) anything twice."""

from __future__ import annotations

import subprocess
import time
from collections import Counter

from conftest import brain_executable, spawn_brain
from fakes import FakeApex

from brain.material import messages_for
from brain.store import Store
from brain.tasks import builtin_tasks


def _keep(home, texts: list[str]) -> None:
    (home.data / "brain").mkdir(parents=True, exist_ok=True)
    store = Store(home.data / "brain" / "brain.db")
    task = builtin_tasks()["dump"]
    for text in texts:
        row = store.add("dump", task.route, text, messages_for(task, text))
        store.release(row, "Apex was away")
    store.close()


def _sent(apex: FakeApex) -> Counter:
    return Counter(r["messages"][-1]["content"] for r in apex.requests)


def test_two_queue_runs_at_once_send_each_input_once(apex: FakeApex, home) -> None:
    texts = [f"thought number {i}" for i in range(12)]
    _keep(home, texts)
    apex.answer("brain_dump", ["noted ", "and sorted"], delay=0.05)
    runs = [
        subprocess.Popen(
            [brain_executable(), "queue", "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=home.root,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [e.decode() for _, e in outs]
    sent = _sent(apex)
    assert sorted(sent) == sorted(texts) and set(sent.values()) == {1}
    store = Store(home.data / "brain" / "brain.db")
    assert store.queued() == [] and len(store.history(50)) == len(texts)
    store.close()


def test_queue_run_leaves_an_in_flight_question_alone(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["slow ", "answer"], first_delay=2.0)
    dump = spawn_brain("dump", "the thought in flight")
    deadline = time.monotonic() + 20
    while not apex.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert apex.requests, "the dump never reached Apex"
    r = brain("queue", "run")
    assert r.code == 0 and "nothing queued" in r.stderr
    _out, err = dump.communicate(timeout=60)
    assert dump.returncode == 0, err.decode()
    assert _sent(apex) == Counter({"the thought in flight": 1})
