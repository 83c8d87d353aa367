"""The MCP handshake as a client sends it over stdio, for the tests and bench/memory.py that
drive `brain mcp` line by line (JSON-RPC 2.0, one object per line)."""

from __future__ import annotations

from typing import Any

PROTOCOL = "2025-06-18"
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def initialize(rid: int = 1, client: str = "test") -> dict[str, Any]:
    """The `initialize` request; INITIALIZED is the notification that follows its answer."""
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": client, "version": "0"},
        },
    }
