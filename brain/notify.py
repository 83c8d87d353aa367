"""Slack notices when a fallback fires: one per change of state, kept in an outbox until sent.

Owns the state machine (which backend answered last, as a notice would see it), the wording,
the outbox (SQLite, brain.store) and the sender. Sending happens in a detached process
(`python -m brain.notify`) after the answer, so a notice never delays or fails an answer;
while Slack is unreachable the notice waits in the outbox for the next run.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from brain.store import Store

SLACK = "slack"
STATE = "notify.backend"


def state_of(outcome: Any) -> tuple[str, str] | None:
    """(state, event) for an answered request: who answered and which kind of event it is.
    None when the answer says nothing about Apex: it was not asked (--offline, BRAIN_OFFLINE,
    no apex.url). `--offline` is a choice, not a failure: no notice, and the state stays."""
    a = outcome.answer
    if a.backend != "apex":
        if not any(
            f.get("backend") == "apex" and not f.get("answered_by") for f in outcome.fallbacks
        ):
            return None
        return f"{a.backend}:{a.model}", "fallback"
    apex_side = [f for f in outcome.fallbacks if f.get("answered_by")]
    if apex_side:
        return f"apex-fallback:{apex_side[0]['answered_by']}", "apex_fallback"
    return "apex", "recovered"


def message(outcome: Any, event: str) -> str:
    from brain.client import one_line

    a = outcome.answer
    host = socket.gethostname()
    if event == "fallback":
        reason = next(
            (f["reason"] for f in outcome.fallbacks if f.get("backend") == "apex"), "unknown"
        )
        used = (
            f"local {a.model or 'model'}"
            if a.backend == "local"
            else f"{a.backend} {a.model or ''}".rstrip()
        )
        return (
            f":warning: brain fallback fired on {host} — used {used} for "
            f"`{outcome.task}` because Apex failed: {one_line(reason, 300)}"
        )
    if event == "apex_fallback":
        fb = next(f for f in outcome.fallbacks if f.get("answered_by"))
        return (
            f":warning: LiteLLM fallback fired on Apex — used {fb['answered_by']} "
            f"(deployment {a.model or '?'}) for route `{outcome.route}` because the primary "
            f"failed: {one_line(fb['reason'], 300)}"
        )
    return f":white_check_mark: Apex answers again ({host}): `{outcome.task}` → {a.model or outcome.route}"


def record(store: Store, settings: Any, outcome: Any) -> bool:
    """Queue a notice if this answer changes the state; True when the outbox has something."""
    if not settings.get("notify", "slack"):
        return False
    seen = state_of(outcome)
    if seen is None:
        return bool(store.outbox(SLACK))
    state, event = seen
    before = store.get_state(STATE) or "apex"
    if state != before:
        store.set_state(STATE, state)
        if event in settings.get("notify", "events") and has_webhook():
            from brain.secrets import redact

            store.outbox_add(SLACK, redact(message(outcome, event)))
    return bool(store.outbox(SLACK))


def has_webhook() -> bool:
    from brain import secrets

    return bool(secrets.get("slack"))


def spawn_sender() -> None:
    """Send the outbox from a detached process; the answer is already on the screen."""
    import subprocess  # only when there is something to send (~1 ms on every answer otherwise)

    # Apart from the terminal: its own session on POSIX (a closed terminal's SIGHUP does not
    # reach it); on Windows no console and its own process group (not tried on Windows).
    if os.name == "nt":
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        apart: dict[str, Any] = {"creationflags": flags}
    else:
        apart = {"start_new_session": True}
    try:
        subprocess.Popen(
            [sys.executable, "-m", "brain.notify"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            **apart,
        )
    except OSError:
        pass  # the outbox keeps the notice for the next run


def flush(store: Store, webhook: str, timeout: float = 5.0) -> int:
    """Post every waiting notice, oldest first; stop at the first failure. Returns how many sent.

    Each post is one brain.client.request: the whole exchange (connection, headers, body) ends
    within `timeout` seconds however the server dribbles, and at most 64 KiB of its answer is
    read (Slack answers "ok"); a webhook that answers forever costs 5 s, never memory.
    """
    from brain.client import NetError, TooBig, describe, one_line, request

    sent = 0
    for row, text, _attempts in store.outbox(SLACK):
        try:
            reply = request(
                "POST",
                webhook,
                timeout=timeout,
                json_body={"text": text},
                limit=64 * 1024,
                internet=True,
            )
        except (NetError, TooBig) as exc:
            store.outbox_failed(row, describe(exc))
            break
        if reply.status // 100 == 2:
            store.outbox_sent(row)
            sent += 1
        elif reply.status in (400, 403, 404, 410):
            # Slack says the webhook itself is wrong (revoked, bad URL): retrying won't help.
            store.outbox_failed(row, f"HTTP {reply.status}: {one_line(reply.text, 100)}")
            break
        else:
            store.outbox_failed(row, f"HTTP {reply.status}")
            break
    return sent


def send_now() -> int | None:
    """Send the outbox in this process (the one sender: the detached one runs this too).
    How many were sent; None when no webhook is set or another sender is at it."""
    from brain import secrets
    from brain.files import open_lock
    from brain.settings import data_dir

    webhook = secrets.get("slack")
    if not webhook:
        return None
    with os.fdopen(open_lock(data_dir() / "notify.lock"), "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass  # Windows: two senders at once may post a notice twice; nothing is lost
        except OSError:
            return None  # another sender is at it
        store = Store.open_default()
        try:
            return flush(store, webhook)
        finally:
            store.close()


SLACK_TEXT = 39_000  # Slack cuts a message's text past 40,000 characters


def post(store: Store, text: str) -> list[int]:
    """Put `text` in the outbox for Slack (in several messages, in order, when longer than
    Slack keeps in one); the outbox rows. `send_now` or the next sender posts them."""
    from brain.secrets import redact

    text = redact(text)
    pieces: list[str] = []
    while len(text) > SLACK_TEXT:
        cut = text.rfind("\n", 0, SLACK_TEXT)
        cut = cut if cut > 0 else SLACK_TEXT
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    if len(pieces) > 1:
        pieces = [f"({i}/{len(pieces)}) {p}" for i, p in enumerate(pieces, 1)]
    return [store.outbox_add(SLACK, piece) for piece in pieces]


def post_now(store: Store, text: str) -> str | None:
    """`post` and send at once; None when Slack took all of it, else why it waits."""
    rows = post(store, text)
    send_now()
    waiting = {row for row, _text, _attempts in store.outbox(SLACK)} & set(rows)
    if not waiting:
        return None
    found = store.db.execute("SELECT last_error FROM outbox WHERE id=?", (min(waiting),)).fetchone()
    return found[0] if found and found[0] else "another brain is sending the outbox right now"


def main() -> int:
    send_now()
    return 0


if __name__ == "__main__":
    sys.exit(main())
