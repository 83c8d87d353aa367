"""Slack notices when a fallback fires: one per change of state, kept in an outbox until sent.

Owns the state machine (which backend answered last, as a notice would see it), the wording,
the outbox (SQLite, brain.store) and the sender. Sending happens in a detached process
(`python -m brain.notify`) after the answer, so a notice never delays or fails an answer;
while Slack is unreachable the notice waits in the outbox for the next run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from brain.store import Store

SLACK = "slack"
STATE = "notify.backend"


def state_of(outcome: Any) -> tuple[str, str]:
    """(state, event) for an answered request: who answered and which kind of event it is."""
    a = outcome.answer
    if a.backend == "local":
        return f"local:{a.model}", "fallback"
    apex_side = [f for f in outcome.fallbacks if f.get("answered_by")]
    if apex_side:
        return f"apex-fallback:{apex_side[0]['answered_by']}", "apex_fallback"
    return "apex", "recovered"


def message(outcome: Any, event: str) -> str:
    a = outcome.answer
    host = socket.gethostname()
    if event == "fallback":
        reason = next((f["reason"] for f in outcome.fallbacks if not f.get("answered_by")), "")
        return (
            f":warning: brain fallback fired on {host} — used local {a.model or 'model'} for "
            f"`{outcome.task}` because Apex failed: {reason}"
        )
    if event == "apex_fallback":
        fb = next(f for f in outcome.fallbacks if f.get("answered_by"))
        return (
            f":warning: LiteLLM fallback fired on Apex — used {fb['answered_by']} "
            f"(deployment {a.model or '?'}) for route `{outcome.route}` because the primary "
            f"failed: {fb['reason'][:300]}"
        )
    return f":white_check_mark: Apex answers again ({host}): `{outcome.task}` → {a.model or outcome.route}"


def record(store: Store, settings: Any, outcome: Any) -> bool:
    """Queue a notice if this answer changes the state; True when the outbox has something."""
    if not settings.get("notify", "slack"):
        return False
    state, event = state_of(outcome)
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
    try:
        subprocess.Popen(
            [sys.executable, "-m", "brain.notify"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        pass  # the outbox keeps the notice for the next run


def flush(store: Store, webhook: str, timeout: float = 5.0) -> int:
    """Post every waiting notice, oldest first; stop at the first failure. Returns how many sent.

    Each post is one brain.client.request: the whole exchange (connection, headers, body) ends
    within `timeout` seconds however the server dribbles, and at most 64 KiB of its answer is
    read (Slack answers "ok"); a webhook that answers forever costs 5 s, never memory.
    """
    import httpx

    from brain.client import TooBig, describe, one_line, request

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
        except (httpx.HTTPError, TooBig) as exc:
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


def main() -> int:
    from brain import secrets
    from brain.files import open_lock
    from brain.settings import data_dir

    webhook = secrets.get("slack")
    if not webhook:
        return 0
    with os.fdopen(open_lock(data_dir() / "notify.lock"), "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass  # Windows: two senders at once may post a notice twice; nothing is lost
        except OSError:
            return 0  # another sender is at it
        store = Store.open_default()
        try:
            flush(store, webhook)
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
