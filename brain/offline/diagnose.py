"""Why Apex cannot be reached, in words: adds what the `tailscale` CLI knows, when it exists.

Runs only after a failed probe (never on the happy path), with a one-second limit.
"""

from __future__ import annotations

import json
import shutil
import subprocess

_STATES = {
    "Stopped": "Tailscale is stopped on this laptop (`tailscale up` starts it)",
    "NeedsLogin": "Tailscale is logged out (`tailscale login`)",
    "NeedsMachineAuth": "this laptop waits for approval in the Tailscale admin console",
    "Starting": "Tailscale is still starting",
    "NoState": "Tailscale is not running (start the Tailscale app or `tailscaled`)",
}


def tailscale() -> str:
    """A phrase about Tailscale's state, or "" when the CLI is absent or says nothing useful."""
    exe = shutil.which("tailscale")
    if not exe:
        return ""
    try:
        proc = subprocess.run(
            [exe, "status", "--json"], capture_output=True, text=True, timeout=1.0, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "the tailscale CLI did not answer within a second"
    try:
        state = json.loads(proc.stdout).get("BackendState", "")
    except (ValueError, AttributeError):
        text = (proc.stdout + proc.stderr).strip().splitlines()
        return f"tailscale says: {text[0][:120]}" if text else ""
    if state == "Running":
        return "Tailscale is up, so Apex itself (or its proxy) is down or asleep"
    return _STATES.get(state, f"Tailscale's state is {state}" if state else "")
