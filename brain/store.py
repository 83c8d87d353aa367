"""History and queue: one SQLite table of exchanges in the data dir (file mode 0600), plus
the Slack outbox and a few named values.

What must stay true:
- An input is written before its request goes out, claimed by the process sending it
  (`sending`, with its pid). It ends `answered` or `partial`, goes back to `queued` with the
  reason when nothing could answer, or `failed` when it can never be answered (too long for
  every model). A claim whose process is gone (kill -9, a crash) counts as queued again.
- A queued input is sent by one process only: `claim` is a compare-and-swap on its status
  (two `brain queue run` at once, or one during an in-flight `brain dump`, never send it twice).
- The schema has a version (`PRAGMA user_version`); MIGRATIONS run in order when a store
  opens, in one write transaction, so a brain.db from any earlier release opens with every row.
- Keys never reach this file: only the text the user sent and the answer (masked).
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
from typing import TYPE_CHECKING, Any

from brain.errors import ConfigError

if TYPE_CHECKING:
    from brain.backends.base import Answer

QUEUED, SENDING, ANSWERED, PARTIAL, FAILED = "queued", "sending", "answered", "partial", "failed"
STALE_CLAIM = 24 * 3600.0  # a claim older than this is stale even if its pid lives (reused)

# Each entry brings the schema from version i to i + 1. Never edit one that has shipped:
# append. Version 1 is the schema of brain 0.1.0, which had no version (user_version 0).
MIGRATIONS: list[str] = [
    """
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
    """,
    """
    ALTER TABLE exchanges ADD COLUMN partial_reason TEXT;
    ALTER TABLE exchanges ADD COLUMN claimed_by INTEGER;
    ALTER TABLE exchanges ADD COLUMN claimed_at REAL;
    CREATE INDEX IF NOT EXISTS exchanges_time ON exchanges(time);
    """,
    # Voice (issue 33): the recordings an input came from and its transcript, as JSON
    # (brain.voice.Audio.to_row); NULL for typed input.
    """
    ALTER TABLE exchanges ADD COLUMN audio TEXT;
    """,
]
VERSION = len(MIGRATIONS)


class NewerStore(ConfigError):
    """brain.db was written by a newer brain (its schema version is past ours)."""


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
    partial_reason: str | None = None
    audio: dict[str, Any] | None = None  # brain.voice: the recordings and the transcript

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.time)),
            "status": QUEUED if self.status == SENDING else self.status,
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
            "partial_reason": self.partial_reason,
            "error": self.error,
            **_voice_fields(self.audio),
        }


def _voice_fields(audio: dict[str, Any] | None) -> dict[str, Any]:
    """`audio` (the recordings' paths) and `transcript` for an input that was spoken."""
    if not audio:
        return {}
    files = audio.get("files") if isinstance(audio.get("files"), list) else []
    fields: dict[str, Any] = {"audio": [f.get("path") for f in files if isinstance(f, dict)]}
    if isinstance(audio.get("transcript"), dict):
        fields["transcript"] = audio["transcript"]
    return fields


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            # Create it 0600 before SQLite opens it: the history holds everything typed.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version <= VERSION:  # never change the file of a newer brain, not even its journal
            self.db.execute("PRAGMA journal_mode=WAL")
        if version == VERSION:
            return
        if version > VERSION:
            self.db.close()
            raise NewerStore(
                f"{self.path} was written by a newer brain (schema version {version}; this one "
                f"knows up to {VERSION}). Nothing in it was changed.",
                "Upgrade brain (`pip install -U` the same way you installed it), or point this "
                "one at another data dir (XDG_DATA_HOME).",
            )
        self.db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @classmethod
    def open_default(cls) -> Store:
        from brain.settings import data_dir

        return cls(data_dir() / "brain.db")

    def close(self) -> None:
        self.db.close()

    # ----- one question's life ------------------------------------------------------------------
    def add(
        self,
        task: str,
        route: str,
        user_input: str,
        messages: list[dict[str, str]],
        audio: dict[str, Any] | None = None,
    ) -> int:
        """Keep an input before it is sent, claimed by this process. `audio`: the recordings
        it holds (brain.voice), their transcripts still to come."""
        cur = self.db.execute(
            "INSERT INTO exchanges (time, status, task, route, input, messages, claimed_by,"
            " claimed_at, audio) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                time.time(),
                SENDING,
                task,
                route,
                user_input,
                json.dumps(messages),
                os.getpid(),
                time.time(),
                json.dumps(audio) if audio else None,
            ),
        )
        return int(cur.lastrowid or 0)

    def set_input(
        self,
        row: int,
        user_input: str,
        messages: list[dict[str, str]],
        audio: dict[str, Any] | None,
    ) -> None:
        """The input as it now stands (a recording transcribed, or copied for the queue)."""
        self.db.execute(
            "UPDATE exchanges SET input=?, messages=?, audio=? WHERE id=?",
            (user_input, json.dumps(messages), json.dumps(audio) if audio else None, row),
        )

    def claim(self, row: int) -> bool:
        """Take a queued input (or one whose sender is gone) for this process; False when
        another process has it, or it is not waiting to be sent."""
        found = self.db.execute(
            "SELECT status, claimed_by, claimed_at FROM exchanges WHERE id=?", (row,)
        ).fetchone()
        if found is None or not _claimable(found):
            return False
        cur = self.db.execute(
            "UPDATE exchanges SET status=?, claimed_by=?, claimed_at=? WHERE id=? AND status=?"
            " AND IFNULL(claimed_by, -1)=IFNULL(?, -1)",
            (SENDING, os.getpid(), time.time(), row, found["status"], found["claimed_by"]),
        )
        return cur.rowcount == 1

    def finish(self, row: int, route: str, answer: Answer, fallbacks: list[dict[str, str]]) -> None:
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, route=?, backend=?, model=?, fallbacks=?,"
            " prompt_tokens=?, completion_tokens=?, first_token_ms=?, total_ms=?, cost=?,"
            " answer=?, partial=?, partial_reason=?, error=NULL, claimed_by=NULL, time=?"
            " WHERE id=?",
            (
                PARTIAL if answer.partial else ANSWERED,
                route,
                answer.backend,
                answer.model,
                redact(json.dumps(fallbacks)),
                answer.usage.get("prompt_tokens"),
                answer.usage.get("completion_tokens"),
                answer.first_token_ms,
                answer.total_ms,
                answer.cost,
                answer.text,
                int(answer.partial),
                redact(answer.partial_reason) or None,
                time.time(),
                row,
            ),
        )

    def release(self, row: int, error: str) -> None:
        """Back to the queue, with the reason it was not answered (keys masked)."""
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, error=?, claimed_by=NULL WHERE id=?",
            (QUEUED, redact(error)[:1000], row),
        )

    fail = release  # the name 0.1 used

    def give_up(self, row: int, error: str) -> None:
        """It can never be answered (too long for every model): out of the queue for good."""
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, error=?, claimed_by=NULL WHERE id=?",
            (FAILED, redact(error)[:1000], row),
        )

    # ----- reading --------------------------------------------------------------------------
    def get(self, row: int) -> Exchange | None:
        found = self.db.execute("SELECT * FROM exchanges WHERE id=?", (row,)).fetchone()
        return _exchange(found) if found else None

    def history(self, limit: int = 20) -> list[Exchange]:
        # Newest first along the time index; the status filter stops after `limit` rows.
        rows = self.db.execute(
            "SELECT * FROM exchanges INDEXED BY exchanges_time WHERE status IN (?,?)"
            " ORDER BY time DESC, id DESC LIMIT ?",
            (ANSWERED, PARTIAL, limit),
        ).fetchall()
        return [_exchange(r) for r in reversed(rows)]

    def search(
        self, limit: int = 10, *, text: str | None = None, task: str | None = None
    ) -> list[Exchange]:
        """`brain history`: the last `limit` exchanges in any state, oldest first; `text` a
        case-insensitive substring of the input or the answer, `task` a task name. Walks the
        time index newest first and stops at `limit` matches, however long the history."""
        where, params = [], []
        if task is not None:
            where.append("task=?")
            params.append(task)
        if text:
            if text.isascii():  # SQLite's LIKE folds ASCII case only
                pattern = (
                    "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                )
                where.append("(input LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\')")
                params += [pattern, pattern]
            else:
                self.db.create_function("brain_has", 2, _has, deterministic=True)
                where.append("(brain_has(input, ?) OR brain_has(answer, ?))")
                params += [text.casefold(), text.casefold()]
        sql = "SELECT * FROM exchanges INDEXED BY exchanges_time"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY time DESC, id DESC LIMIT ?", (*params, limit))
        return [_exchange(r) for r in reversed(rows.fetchall())]

    def queued(self) -> list[Exchange]:
        """Inputs waiting to be sent, including those whose sender died."""
        rows = self.db.execute(
            "SELECT * FROM exchanges WHERE status IN (?,?) ORDER BY id", (QUEUED, SENDING)
        ).fetchall()
        return [_exchange(r) for r in rows if _claimable(r)]

    def in_flight(self) -> list[Exchange]:
        rows = self.db.execute(
            "SELECT * FROM exchanges WHERE status=? ORDER BY id", (SENDING,)
        ).fetchall()
        return [_exchange(r) for r in rows if not _claimable(r)]

    def drop(self, row: int) -> bool:
        """Forget a queued input (not one another process is sending)."""
        found = self.db.execute(
            "SELECT status, claimed_by, claimed_at FROM exchanges WHERE id=?", (row,)
        ).fetchone()
        if found is None or not (_claimable(found) or found["claimed_by"] == os.getpid()):
            return False
        cur = self.db.execute(
            "DELETE FROM exchanges WHERE id=? AND status IN (?,?)", (row, QUEUED, SENDING)
        )
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
            "INSERT INTO state (name, value) VALUES (?,?)"
            " ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    def spent_since(self, since: float, route: str) -> float:
        found = self.db.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM exchanges WHERE route=? AND time>=?", (route, since)
        ).fetchone()
        return float(found[0])


def _claimable(row: Any) -> bool:
    if row["status"] == QUEUED:
        return True
    if row["status"] != SENDING:
        return False
    pid, at = row["claimed_by"], row["claimed_at"]
    if pid is None or at is None or time.time() - at > STALE_CLAIM:
        return True
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    """Is process `pid` running? (POSIX: signal 0; Windows: OpenProcess and its exit code.)"""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _exchange(row: sqlite3.Row) -> Exchange:
    keys = row.keys()
    return Exchange(
        id=row["id"],
        time=row["time"],
        status=row["status"],
        task=row["task"],
        route=row["route"],
        backend=row["backend"],
        model=row["model"],
        fallbacks=_json_list(row["fallbacks"]),
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        first_token_ms=row["first_token_ms"],
        total_ms=row["total_ms"],
        cost=row["cost"],
        input=row["input"],
        messages=_json_list(row["messages"]),
        answer=row["answer"],
        partial=bool(row["partial"]),
        error=row["error"],
        partial_reason=row["partial_reason"] if "partial_reason" in keys else None,
        audio=_json_dict(row["audio"]) if "audio" in keys else None,
    )


def _has(value: str | None, folded: str) -> bool:
    return value is not None and folded in value.casefold()


def _json_dict(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_list(text: str | None) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


@contextmanager
def opened() -> Iterator[Store]:
    store = Store.open_default()
    try:
        yield store
    finally:
        store.close()
