"""History and queue: one SQLite table of exchanges in the data dir (file mode 0600), plus
the Slack outbox and a few named values.

What must stay true:
- An input is written before its request goes out, claimed by the process sending it
  (`sending`, with its pid). It ends `answered` or `partial`, goes back to `queued` with the
  reason when nothing could answer, or `failed` when it can never be answered (too long for
  every model). A claim whose process is gone (kill -9, a crash) counts as queued again.
- Before the first piece of an answer is shown the row becomes `answering` (`started`): from
  then on it is never sent again, even if storing the answer fails (a full disk) or the
  process dies; such a row settles as `partial` ("shown, but not stored").
- Every SQLite failure becomes a StorageError naming the file and the cause (a full disk, a
  read-only directory, a damaged file: 74; locked by another program for over 5 s: 75).
- A queued input is sent by one process only: `claim` is a compare-and-swap on its status
  (two `brain queue run` at once, or one during an in-flight `brain dump`, never send it twice).
- The schema has a version (`PRAGMA user_version`); MIGRATIONS run in order when a store
  opens, in one write transaction, so a brain.db from any earlier release opens with every row.
- Keys never reach this file: only the text the user sent and the answer (masked).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from brain.errors import TEMPFAIL, ConfigError, StorageError

if TYPE_CHECKING:
    from brain.backends.base import Answer

QUEUED, SENDING, ANSWERED, PARTIAL, FAILED = "queued", "sending", "answered", "partial", "failed"
ANSWERING = "answering"  # its answer has begun to be shown: never sent again
NOT_STORED = "the answer was shown, but brain stopped before storing it"
LOCK_WAIT = 5.0  # seconds to wait for another brain's write before giving up (75)
MAX_ROW_ID = (1 << 63) - 1  # SQLite's largest integer; a larger id names no row
STALE_CLAIM = 24 * 3600.0  # a claim older than this is stale even if its pid lives (reused)
APART = 64 * 1024  # characters: a longer input is kept in `inputs` (migration 5)
_SLICE = 64 * 1024  # characters of a long input encoded and written at a time
# Every exchange as read: the row, and its input kept apart (NULL for a short one).
_APART = "SELECT text FROM inputs WHERE inputs.id = exchanges.id"
_ROWS = f"SELECT *, ({_APART}) AS apart FROM exchanges"

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
    # The last user message in `messages` may hold null content: it is `input` (_compact). A
    # brain of version 3 would send that null, so this file must be newer than it knows.
    """
    -- no schema change: messages[-1].content may be null, meaning the row's input
    """,
    # A long input (past APART characters) lives apart, in `inputs`, as UTF-8 written a slice
    # at a time through SQLite's incremental blob I/O; its row's `input` is ''. The row's
    # updates (answering, the answer) then never rewrite it, and no whole copy of it is made
    # to store it (issue 32: 4 MiB in, peak memory within 32 MiB).
    """
    CREATE TABLE IF NOT EXISTS inputs (id INTEGER PRIMARY KEY, text BLOB NOT NULL);
    """,
]
VERSION = len(MIGRATIONS)


class NewerStore(ConfigError):
    """brain.db was written by a newer brain (its schema version is past ours)."""


def fault(exc: BaseException, path: Path, doing: str) -> StorageError:
    """The StorageError for an SQLite or OS failure while `doing` something with `path`."""
    cause, fix, code = _cause(exc, path)
    error = StorageError(f"brain could not {doing} {path}: {cause}.", fix, cause=cause)
    if code:
        error.exit_code = code
    return error


def _cause(exc: BaseException, path: Path) -> tuple[str, str, int]:
    """(what went wrong, what to do, exit code or 0 for 74), from SQLite's error name (or the
    OSError's errno) and, for an I/O error, the free space left on the disk."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = f"{name} {exc}".lower()
    errno = getattr(exc, "errno", None)
    if "busy" in text or "locked" in text:
        return (
            f"it is locked by another program (waited {LOCK_WAIT:g} s)",
            "Another brain, or a program reading brain.db (a backup, sqlite3), holds it; try "
            "again when it is done.",
            TEMPFAIL,
        )
    if "full" in text or errno == 28 or ("ioerr" in text and _disk_full(path)):  # ENOSPC
        return (
            "the disk is full",
            f"Free some space on the disk that holds {path.parent}, then run it again.",
            0,
        )
    unwritable = "cantopen" in text or "unable to open" in text or "ioerr" in text
    if (
        "readonly" in text
        or "read-only" in text
        or errno in (1, 13, 30)
        or "permission" in text
        or (unwritable and _read_only(path))
    ):
        return (
            "it cannot be written (a read-only file or directory)",
            f"Make {path.parent} writable for you, or point XDG_DATA_HOME at a directory that is.",
            0,
        )
    if "notadb" in text or "not a database" in text or "corrupt" in text or "malformed" in text:
        return (
            "the file is damaged (not a readable SQLite database)",
            f"Move it away (`mv {path} {path}.damaged`); brain starts a new one. Rows may be "
            f"recovered from it with `sqlite3 {path}.damaged .recover`.",
            0,
        )
    if "cantopen" in text or "unable to open" in text:
        return "it cannot be opened", f"Check that {path.parent} exists and is writable.", 0
    detail = f"{exc}, {name}" if name else str(exc)
    return f"the disk reported an error ({detail})", f"Check the disk that holds {path}.", 0


def _read_only(path: Path) -> bool:
    """The directory of `path` cannot be written (a read-only mount, or no permission)."""
    try:
        info = os.statvfs(path.parent)
        if info.f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):
        pass
    return path.parent.is_dir() and not os.access(path.parent, os.W_OK)


def _disk_full(path: Path) -> bool:
    try:
        info = os.statvfs(path.parent)
    except (OSError, AttributeError):  # AttributeError: Windows has no statvfs
        return False
    return info.f_bavail * info.f_frsize < 64 * 1024


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(doing: str) -> Callable[[F], F]:
    """SQLite failures inside the method become a StorageError saying what was being done."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def inner(self: Store, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise fault(exc, self.path, doing) from exc

        return inner  # type: ignore[return-value]

    return wrap


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
            "status": {SENDING: QUEUED, ANSWERING: PARTIAL}.get(self.status, self.status),
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
        self.read_only = False  # opened from a read-only disk: reads work, writes say why not
        self.db: sqlite3.Connection | None = None
        try:
            # 0600 before SQLite opens it (SQLite gives its -wal and -shm files the database
            # file's mode): the history holds everything typed. An older brain's 0644 too.
            from brain.files import private_file

            private_file(path)
            self.db = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            if self.db is not None:
                self.db.close()
            error = fault(exc, path, "open")
            if not (path.is_file() and _read_only(path)):
                raise error from exc
            self._open_read_only(error)

    def _open_read_only(self, error: StorageError) -> None:
        """brain.db on a read-only disk: opened as it is (SQLite cannot make its WAL index
        there), so that the history can still be read."""
        from urllib.parse import quote

        try:
            db = sqlite3.connect(f"file:{quote(str(self.path))}?immutable=1", uri=True)
            if db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
                db.close()
                raise error  # an older schema would need a migration, which needs a write
        except sqlite3.Error:
            raise error from None
        db.row_factory = sqlite3.Row
        self.db = db
        self.read_only = True

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
    @_guarded("keep the input in")
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
        apart = len(user_input) > APART
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO exchanges (time, status, task, route, input, messages, claimed_by,"
                " claimed_at, audio) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    SENDING,
                    task,
                    route,
                    "" if apart else user_input,
                    _compact(messages, user_input),
                    os.getpid(),
                    time.time(),
                    json.dumps(audio) if audio else None,
                ),
            )
            row = int(cur.lastrowid or 0)
            if apart:
                self._put_apart(row, user_input)
        return row

    @_guarded("keep the input in")
    def set_input(
        self,
        row: int,
        user_input: str,
        messages: list[dict[str, str]],
        audio: dict[str, Any] | None,
    ) -> None:
        """The input as it now stands (a recording transcribed, or copied for the queue)."""
        apart = len(user_input) > APART
        with self._transaction():
            cur = self.db.execute(
                "UPDATE exchanges SET input=?, messages=?, audio=? WHERE id=?",
                (
                    "" if apart else user_input,
                    _compact(messages, user_input),
                    json.dumps(audio) if audio else None,
                    row,
                ),
            )
            if apart and cur.rowcount > 0:  # a row dropped meanwhile keeps nothing apart
                self._put_apart(row, user_input)
            else:
                self.db.execute("DELETE FROM inputs WHERE id=?", (row,))

    def _put_apart(self, row: int, text: str) -> None:
        """`text` into `inputs` a slice at a time: SQLite never holds a whole copy of it."""
        from brain.files import utf8_size

        self.db.execute(
            "INSERT OR REPLACE INTO inputs (id, text) VALUES (?, zeroblob(?))",
            (row, utf8_size(text, _SLICE)),
        )
        with self.db.blobopen("inputs", "text", row) as blob:
            for at in range(0, len(text), _SLICE):
                blob.write(text[at : at + _SLICE].encode("utf-8"))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back already (a full disk)
                self.db.execute("ROLLBACK")
            raise

    @_guarded("claim the queued input in")
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

    @_guarded("mark the answer as begun in")
    def started(self, row: int) -> None:
        """The answer's first piece is about to be shown: from now on the input is never sent
        again, whatever happens to this process or the disk (it settles as partial)."""
        self.db.execute(
            "UPDATE exchanges SET status=? WHERE id=? AND status=?", (ANSWERING, row, SENDING)
        )

    @_guarded("store the answer in")
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
                redact(answer.text, urls=False),
                int(answer.partial),
                redact(answer.partial_reason) or None,
                time.time(),
                row,
            ),
        )

    @_guarded("put the input back in the queue of")
    def release(self, row: int, error: str) -> None:
        """Back to the queue, with the reason it was not answered (keys masked)."""
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, error=?, claimed_by=NULL WHERE id=?",
            (QUEUED, redact(error)[:1000], row),
        )

    fail = release  # the name 0.1 used

    @_guarded("record the failure in")
    def give_up(self, row: int, error: str) -> None:
        """It can never be answered (too long for every model): out of the queue for good."""
        from brain.secrets import redact

        self.db.execute(
            "UPDATE exchanges SET status=?, error=?, claimed_by=NULL WHERE id=?",
            (FAILED, redact(error)[:1000], row),
        )

    # ----- reading --------------------------------------------------------------------------
    @_guarded("read")
    def get(self, row: int) -> Exchange | None:
        if not 0 < row <= MAX_ROW_ID:
            return None
        found = self.db.execute(_ROWS + " WHERE id=?", (row,)).fetchone()
        return _exchange(found) if found else None

    @_guarded("read the history in")
    def history(self, limit: int = 20) -> list[Exchange]:
        self._settle()
        # Newest first along the time index; the status filter stops after `limit` rows.
        rows = self.db.execute(
            _ROWS + " INDEXED BY exchanges_time WHERE status IN (?,?)"
            " ORDER BY time DESC, id DESC LIMIT ?",
            (ANSWERED, PARTIAL, limit),
        ).fetchall()
        return [_exchange(r) for r in reversed(rows)]

    @_guarded("read the history in")
    def search(
        self, limit: int = 10, *, text: str | None = None, task: str | None = None
    ) -> list[Exchange]:
        """`brain history`: the last `limit` exchanges in any state, oldest first; `text` a
        case-insensitive substring of the input or the answer, `task` a task name. Walks the
        time index newest first and stops at `limit` matches, however long the history."""
        self._settle()
        where, params = [], []
        if task is not None:
            where.append("task=?")
            params.append(task)
        if text:
            if text.isascii():  # SQLite's LIKE folds ASCII case only
                pattern = (
                    "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                )
                where.append(
                    "(input LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\'"
                    f" OR CAST(({_APART}) AS TEXT) LIKE ? ESCAPE '\\')"
                )
                params += [pattern, pattern, pattern]
            else:
                self.db.create_function("brain_has", 2, _has, deterministic=True)
                where.append(f"(brain_has(COALESCE(({_APART}), input), ?) OR brain_has(answer, ?))")
                params += [text.casefold(), text.casefold()]
        sql = _ROWS + " INDEXED BY exchanges_time"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY time DESC, id DESC LIMIT ?", (*params, limit))
        return [_exchange(r) for r in reversed(rows.fetchall())]

    @_guarded("read the queue in")
    def queued(self) -> list[Exchange]:
        """Inputs waiting to be sent, including those whose sender died."""
        rows = self.db.execute(
            _ROWS + " WHERE status IN (?,?) ORDER BY id", (QUEUED, SENDING)
        ).fetchall()
        return [_exchange(r) for r in rows if _claimable(r)]

    @_guarded("read the queue in")
    def in_flight(self) -> list[Exchange]:
        rows = self.db.execute(
            _ROWS + " WHERE status IN (?,?) ORDER BY id", (SENDING, ANSWERING)
        ).fetchall()
        return [_exchange(r) for r in rows if not _claimable(r) and _alive_claim(r)]

    def _settle(self) -> None:
        """Rows whose answer was shown by a brain that then died (or could not store it) are
        partial answers, never queued ones."""
        rows = self.db.execute(
            "SELECT id, claimed_by, claimed_at FROM exchanges WHERE status=?", (ANSWERING,)
        ).fetchall()
        dead = [r["id"] for r in rows if not _alive_claim(r)]
        if not dead:
            return
        try:
            self.db.executemany(
                "UPDATE exchanges SET status=?, partial=1, answer=COALESCE(answer, ''),"
                " partial_reason=COALESCE(partial_reason, ?), claimed_by=NULL"
                " WHERE id=? AND status=?",
                [(PARTIAL, NOT_STORED, row, ANSWERING) for row in dead],
            )
        except sqlite3.Error:
            pass  # a read-only or full store is still read; the rows settle next time

    @_guarded("drop the input from")
    def drop(self, row: int) -> bool:
        """Forget a queued input (not one another process is sending)."""
        if not 0 < row <= MAX_ROW_ID:
            return False
        with self._transaction():  # the look and the delete as one: no claim slips between
            found = self.db.execute(
                "SELECT status, claimed_by, claimed_at FROM exchanges WHERE id=?", (row,)
            ).fetchone()
            if found is None or not (_claimable(found) or found["claimed_by"] == os.getpid()):
                return False
            cur = self.db.execute(
                "DELETE FROM exchanges WHERE id=? AND status IN (?,?)", (row, QUEUED, SENDING)
            )
            if cur.rowcount > 0:
                self.db.execute("DELETE FROM inputs WHERE id=?", (row,))
        return cur.rowcount > 0

    # ----- notices waiting to be sent (brain.notify) ---------------------------------------
    @_guarded("keep the notice in")
    def outbox_add(self, channel: str, text: str) -> int:
        cur = self.db.execute(
            "INSERT INTO outbox (time, channel, text) VALUES (?,?,?)", (time.time(), channel, text)
        )
        return int(cur.lastrowid or 0)

    @_guarded("read the outbox in")
    def outbox(self, channel: str) -> list[tuple[int, str, int]]:
        rows = self.db.execute(
            "SELECT id, text, attempts FROM outbox WHERE channel=? ORDER BY id", (channel,)
        ).fetchall()
        return [(r["id"], r["text"], r["attempts"]) for r in rows]

    @_guarded("update the outbox in")
    def outbox_sent(self, row: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE id=?", (row,))

    @_guarded("update the outbox in")
    def outbox_failed(self, row: int, error: str) -> None:
        from brain.secrets import redact

        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error=? WHERE id=?",
            (redact(error)[:300], row),
        )

    # ----- small named values (the last notified state) -----------------------------------
    @_guarded("read")
    def get_state(self, name: str) -> str | None:
        found = self.db.execute("SELECT value FROM state WHERE name=?", (name,)).fetchone()
        return None if found is None else str(found[0])

    @_guarded("write")
    def set_state(self, name: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO state (name, value) VALUES (?,?)"
            " ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    @_guarded("read today's spending in")
    def spent_since(self, since: float, route: str) -> float:
        found = self.db.execute(
            # A negative cost (a bad header kept by an older brain) must not lift the cap.
            "SELECT COALESCE(SUM(cost), 0) FROM exchanges WHERE route=? AND time>=? AND cost>0",
            (route, since),
        ).fetchone()
        return float(found[0])


def _claimable(row: Any) -> bool:
    if row["status"] == QUEUED:
        return True
    if row["status"] != SENDING:
        return False
    return not _alive_claim(row)


def _alive_claim(row: Any) -> bool:
    """The process that claimed the row still runs (and the claim is not stale)."""
    pid, at = row["claimed_by"], row["claimed_at"]
    if pid is None or at is None or time.time() - at > STALE_CLAIM:
        return False
    return _alive(int(pid))


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
    apart = row["apart"] if "apart" in keys else None
    text = row["input"] if apart is None else _text(apart)
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
        input=text,
        messages=_expand(_json_list(row["messages"]), text),
        answer=row["answer"],
        partial=bool(row["partial"]),
        error=row["error"],
        partial_reason=row["partial_reason"] if "partial_reason" in keys else None,
        audio=_json_dict(row["audio"]) if "audio" in keys else None,
    )


def _has(value: str | bytes | None, folded: str) -> bool:
    return value is not None and folded in _text(value).casefold()


def _text(value: str | bytes) -> str:
    """A kept input as text (one kept apart is UTF-8 bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _json_dict(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# The last user message is, almost always, the input itself (a one-shot question, a REPL turn
# as sent): it is kept once, in `input`, and `messages` holds null in its place. A 4 MiB input
# then costs 4 MiB in the row, not 8, and so does every UPDATE of that row.
def _compact(messages: list[dict[str, Any]], user_input: str) -> str:
    if (
        messages
        and messages[-1].get("role") == "user"
        and messages[-1].get("content") == user_input
    ):
        messages = [*messages[:-1], {**messages[-1], "content": None}]
    return json.dumps(messages)


def _expand(messages: list[Any], user_input: str) -> list[Any]:
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "user" and last.get("content") is None:
        messages[-1] = {**last, "content": user_input}
    return messages


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
