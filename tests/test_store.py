"""The store across releases and processes: a brain.db written by 0.1.0 opens with every row,
a newer one is refused untouched, and a queued input is claimed by one sender only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from brain.backends.base import Answer
from brain.errors import ConfigError
from brain.store import QUEUED, SENDING, VERSION, Store

FIXTURE = Path(__file__).parent / "fixtures" / "brain-0.1.0.db"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "brain.db"
    shutil.copy(FIXTURE, path)
    return path


def test_the_fixture_is_a_store_without_a_version() -> None:
    db = sqlite3.connect(FIXTURE)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    columns = {row[1] for row in db.execute("PRAGMA table_info(exchanges)")}
    assert "claimed_by" not in columns  # written before the schema changed
    db.close()


def test_a_store_written_by_0_1_0_opens_with_every_row(old_db: Path) -> None:
    store = Store(old_db)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    history = store.history(50)
    assert [(e.id, e.task, e.status) for e in history] == [
        (1, "dump", "answered"),
        (2, "digest", "answered"),
        (3, "draft", "partial"),
        (4, "premium", "answered"),
    ]
    assert history[0].answer == "- [ ] call Sam about the field trip"
    assert history[1].fallbacks[0]["reason"].endswith("connection refused")
    assert history[3].cost == pytest.approx(0.0123)
    queued = store.queued()
    assert [(e.id, e.input) for e in queued] == [
        (5, "soil pH for blueberries?"),
        (6, "review this diff"),
    ]
    assert "connection refused" in (queued[0].error or "")
    assert store.outbox("slack") == [(1, ":warning: brain fallback fired", 0)]
    assert store.get_state("notify.backend") == "local:gemma4:e4b"
    # The old rows go on as any other: a queued one is claimed, answered and in the history.
    assert store.claim(5)
    store.finish(5, "default", Answer(text="5.0", backend="apex", model="m"), [])
    assert [e.id for e in store.history(50)][-1] == 5
    store.close()
    # Opening again migrates nothing twice.
    again = Store(old_db)
    assert len(again.history(50)) == 5 and [e.id for e in again.queued()] == [6]
    again.close()


def test_two_processes_opening_an_old_store_at_once_both_work(old_db: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from brain.store import Store; "
        "s = Store(Path(sys.argv[1])); print(len(s.history(50))); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(old_db)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert outs == ["4", "4", "4", "4"]


def test_a_store_from_a_newer_brain_is_refused_untouched(old_db: Path) -> None:
    db = sqlite3.connect(old_db)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.commit()
    db.close()
    before = old_db.read_bytes()
    with pytest.raises(ConfigError) as err:
        Store(old_db)
    assert err.value.exit_code == 78 and "newer brain" in err.value.message
    assert old_db.read_bytes() == before


def test_a_queued_input_is_claimed_by_one_sender_only(tmp_path: Path) -> None:
    first = Store(tmp_path / "brain.db")
    row = first.add("ask", "default", "x", [])
    first.release(row, "nothing answered")
    second = Store(tmp_path / "brain.db")
    wins: list[bool] = []
    barrier = threading.Barrier(2)

    def take(store_path: Path) -> None:
        store = Store(store_path)
        barrier.wait()
        wins.append(store.claim(row))
        store.close()

    threads = [threading.Thread(target=take, args=(tmp_path / "brain.db",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, True]
    assert second.get(row).status == SENDING
    assert second.queued() == []  # its sender (this process) is alive
    first.close()
    second.close()


def test_a_claim_whose_sender_died_counts_as_queued(tmp_path: Path) -> None:
    store = Store(tmp_path / "brain.db")
    row = store.add("ask", "default", "lost in a crash", [])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store.db.execute("UPDATE exchanges SET claimed_by=? WHERE id=?", (int(dead.stdout), row))
    assert [e.input for e in store.queued()] == ["lost in a crash"]
    assert store.claim(row) and store.get(row).status == SENDING
    store.release(row, "again nothing")
    assert store.get(row).status == QUEUED
    store.close()


def test_the_store_file_is_private(tmp_path: Path) -> None:
    Store(tmp_path / "brain.db").close()
    assert oct(os.stat(tmp_path / "brain.db").st_mode & 0o777) == "0o600"


def test_the_input_is_kept_once_and_read_back_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "brain.db")
    text = "grade essays by fri " * 1000
    messages = [{"role": "system", "content": "sort"}, {"role": "user", "content": text}]
    row = store.add("dump", "brain_dump", text, messages)
    raw = store.db.execute("SELECT messages FROM exchanges WHERE id=?", (row,)).fetchone()[0]
    assert text not in raw and len(raw) < 200  # not twice in the row
    assert store.get(row).messages == messages
    # A REPL turn whose last message is not the input itself is kept as it is.
    other = [*messages, {"role": "assistant", "content": "ok"}]
    row2 = store.add("ask", "default", "x", other)
    assert store.get(row2).messages == other
    store.close()


def _long(text: str) -> str:
    from brain.store import APART

    return (text * (APART // len(text) + 2))[: APART + 5000]


def test_a_long_input_lives_apart_and_reads_back_whole(tmp_path: Path) -> None:
    # issue 32: the row's updates (answering, the answer) never rewrite a 4 MiB input.
    store = Store(tmp_path / "brain.db")
    text = _long("notes — café ✓ 📝 ")  # UTF-8 of 1 to 4 bytes, cut across the slices
    messages = [{"role": "system", "content": "sort"}, {"role": "user", "content": text}]
    row = store.add("dump", "brain_dump", text, messages)
    kept = store.db.execute("SELECT input FROM exchanges WHERE id=?", (row,)).fetchone()[0]
    assert kept == ""
    apart = store.db.execute("SELECT text FROM inputs WHERE id=?", (row,)).fetchone()[0]
    assert apart == text.encode("utf-8")
    store.started(row)
    store.finish(row, "brain_dump", Answer(text="sorted", backend="apex"), [])
    got = store.get(row)
    assert got.input == text and got.messages == messages and got.status == "answered"
    assert [e.id for e in store.search(text="café ✓")] == [row]  # non-ASCII: brain_has
    assert [e.id for e in store.search(text="NOTES")] == [row]  # ASCII: LIKE on the blob
    assert store.history(5)[-1].input == text
    store.close()


def test_an_input_that_shrinks_or_is_dropped_leaves_nothing_apart(tmp_path: Path) -> None:
    store = Store(tmp_path / "brain.db")
    text = _long("x")
    row = store.add("dump", "brain_dump", text, [{"role": "user", "content": text}])
    store.set_input(row, "short now", [{"role": "user", "content": "short now"}], None)
    assert store.db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == 0
    assert store.get(row).input == "short now"
    store.set_input(row, text, [{"role": "user", "content": text}], None)
    assert store.get(row).input == text
    store.release(row, "Apex is away")
    assert [e.input for e in store.queued()] == [text]
    assert store.drop(row)
    assert store.db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == 0
    store.close()


def test_a_long_input_that_cannot_be_kept_leaves_no_row(tmp_path: Path, monkeypatch) -> None:
    from brain.errors import StorageError

    store = Store(tmp_path / "brain.db")
    text = _long("y")

    real = store.db

    class Full:  # the disk fills while the long input is written
        def __getattr__(self, name: str):
            return getattr(real, name)

        def blobopen(self, *_a, **_k):
            raise sqlite3.OperationalError("database or disk is full")

    store.db = Full()  # type: ignore[assignment]
    with pytest.raises(StorageError):
        store.add("dump", "brain_dump", text, [{"role": "user", "content": text}])
    store.db = real
    assert store.db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0] == 0
    assert not store.db.in_transaction
    store.close()


def test_an_input_set_on_a_row_dropped_meanwhile_keeps_nothing_apart(tmp_path: Path) -> None:
    store = Store(tmp_path / "brain.db")
    row = store.add("dump", "brain_dump", "short", [{"role": "user", "content": "short"}])
    store.release(row, "later")
    assert store.drop(row)
    text = _long("z")
    store.set_input(row, text, [{"role": "user", "content": text}], None)
    assert store.db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == 0
    store.close()
