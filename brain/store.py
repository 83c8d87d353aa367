"""History and queue: one SQLite table of exchanges in the data dir (file mode 0600).

An input is written before its request goes out (status `queued`), then updated with the
answer (`answered`, or `partial`). So a crash, a kill -9 or "nothing reachable" leaves it in
the queue, and a queued input answered later lands in the history like any other.
Keys never reach this file: only the text the user sent and the answer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUED, ANSWERED, PARTIAL, FAILED = "queued", "answered", "partial", "failed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    status TEXT NOT NULL,
    task TEXT NOT NULL,
    route TEXT,
    backend TEXT,
    model TEXT,
    fallbacks TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    first_token_ms INTEGER,
    total_ms INTEGER,
    cost REAL,
    input TEXT NOT NULL,
    messages TEXT NOT NULL,
    answer TEXT,
    partial INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS exchanges_status ON exchanges(status);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass
class Exchange:
    id: int
    time: float
    status: str
    task: str
    route: str | None
    backend: str | None
    model: str | None
    fallbacks: list[dict[str, str]]
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_ms: int | None
    total_ms: int | None
    cost: float | None
    input: str
    messages: list[dict[str, str]]
    answer: str | None
    partial: bool
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.time)),
            "status": self.status,
            "task": self.task,
            "route": self.route,
            "backend": self.backend,
            "model": self.model,
            "fallbacks": self.fallbacks,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
            "latency_ms": {"first_token": self.first_token_ms, "total": self.total_ms},
            "cost": self.cost,
            "input": self.input,
            "answer": self.answer,
            "partial": self.partial,
            "error": self.error,
        }


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists()
        if new:
            # Create it 0600 before SQLite opens it: the history holds everything typed.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    @classmethod
    def open_default(cls) -> Store:
        from brain.settings import data_dir

        return cls(data_dir() / "brain.db")

    def close(self) -> None:
        self.db.close()

    def add(self, task: str, route: str, user_input: str, messages: list[dict[str, str]]) -> int:
        cur = self.db.execute(
            "INSERT INTO exchanges (time, status, task, route, input, messages) VALUES (?,?,?,?,?,?)",
            (time.time(), QUEUED, task, route, user_input, json.dumps(messages)),
        )
        return int(cur.lastrowid or 0)

    def finish(
        self,
        row: int,
        *,
        route: str,
        backend: str,
        model: str,
        fallbacks: list[dict[str, str]],
        usage: dict[str, int],
        first_token_ms: int | None,
        total_ms: int,
        cost: float | None,
        answer: str,
        partial: bool,
    ) -> None:
        self.db.execute(
            "UPDATE exchanges SET status=?, route=?, backend=?, model=?, fallbacks=?,"
            " prompt_tokens=?, completion_tokens=?, first_token_ms=?, total_ms=?, cost=?,"
            " answer=?, partial=?, error=NULL, time=? WHERE id=?",
            (
                PARTIAL if partial else ANSWERED,
                route,
                backend,
                model,
                json.dumps(fallbacks),
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                first_token_ms,
                total_ms,
                cost,
                answer,
                int(partial),
                time.time(),
                row,
            ),
        )

    def fail(self, row: int, error: str) -> None:
        """The input stays in the queue with the reason it was not answered (keys masked)."""
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, error=? WHERE id=?", (QUEUED, redact(error)[:1000], row)
        )

    def get(self, row: int) -> Exchange | None:
        found = self.db.execute("SELECT * FROM exchanges WHERE id=?", (row,)).fetchone()
        return _exchange(found) if found else None

    def history(self, limit: int = 20) -> list[Exchange]:
        rows = self.db.execute(
            "SELECT * FROM exchanges WHERE status IN (?,?) ORDER BY time DESC, id DESC LIMIT ?",
            (ANSWERED, PARTIAL, limit),
        ).fetchall()
        return [_exchange(r) for r in reversed(rows)]

    def queued(self) -> list[Exchange]:
        rows = self.db.execute(
            "SELECT * FROM exchanges WHERE status=? ORDER BY id", (QUEUED,)
        ).fetchall()
        return [_exchange(r) for r in rows]

    def drop(self, row: int) -> bool:
        cur = self.db.execute("DELETE FROM exchanges WHERE id=? AND status=?", (row, QUEUED))
        return cur.rowcount > 0

    # ----- notices waiting to be sent (brain.notify) ---------------------------------------
    def outbox_add(self, channel: str, text: str) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox (time, channel, text) VALUES (?,?,?)", (time.time(), channel, text)
        )
        return int(cur.lastrowid or 0)

    def outbox(self, channel: str) -> list[tuple[int, str, int]]:
        rows = self.db.execute(
            "SELECT id, text, attempts FROM outbox WHERE channel=? ORDER BY id", (channel,)
        ).fetchall()
        return [(r["id"], r["text"], r["attempts"]) for r in rows]

    def outbox_sent(self, row: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE id=?", (row,))

    def outbox_failed(self, row: int, error: str) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error=? WHERE id=?", (error[:300], row)
        )

    # ----- small named values (the last notified state) -----------------------------------
    def get_state(self, name: str) -> str | None:
        found = self.db.execute("SELECT value FROM state WHERE name=?", (name,)).fetchone()
        return None if found is None else str(found[0])

    def set_state(self, name: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO state (name, value) VALUES (?,?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    def spent_since(self, since: float, route: str) -> float:
        found = self.db.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM exchanges WHERE route=? AND time>=?", (route, since)
        ).fetchone()
        return float(found[0])


def _exchange(row: sqlite3.Row) -> Exchange:
    return Exchange(
        id=row["id"],
        time=row["time"],
        status=row["status"],
        task=row["task"],
        route=row["route"],
        backend=row["backend"],
        model=row["model"],
        fallbacks=json.loads(row["fallbacks"] or "[]"),
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        first_token_ms=row["first_token_ms"],
        total_ms=row["total_ms"],
        cost=row["cost"],
        input=row["input"],
        messages=json.loads(row["messages"] or "[]"),
        answer=row["answer"],
        partial=bool(row["partial"]),
        error=row["error"],
    )


@contextmanager
def opened() -> Iterator[Store]:
    store = Store.open_default()
    try:
        yield store
    finally:
        store.close()
