"""Drives Switchyard's MCP server with the official `mcp` Python SDK (tests/it/mcp.rs runs it).

    client.py stdio MODE SWITCHYARD_BIN CONFIG [--url URL KEY]
    client.py http  MODE URL KEY

MODE is the SDK's `mode`: `legacy` (the initialize handshake most clients use today) or
`auto` (2026-07-28 `server/discover`, falling back to the handshake). Lists the tools, calls
each with good and bad arguments, and prints one JSON object with what came back.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result(r):
    return {
        "is_error": bool(r.is_error),
        "text": [c.text for c in r.content if getattr(c, "type", None) == "text"],
        "structured": r.structured_content,
    }


async def session(client):
    out = {"protocol": client.protocol_version}
    info = client.server_info
    out["server"] = info.name if info else None
    tools = await client.list_tools()
    out["tools"] = {t.name: t.input_schema for t in tools.tools}
    out["lanes"] = result(await client.call_tool("lanes", {}))
    out["ask"] = result(await client.call_tool("ask", {"prompt": "Say hello"}))
    out["ask_lane"] = result(await client.call_tool("ask", {"prompt": "Say hello", "lane": "l1"}))
    out["ask_unknown_lane"] = result(await client.call_tool("ask", {"prompt": "hi", "lane": "nope"}))
    out["ask_unknown_task"] = result(await client.call_tool("ask", {"prompt": "hi", "task": "nope"}))
    out["ask_empty"] = result(await client.call_tool("ask", {"prompt": "  "}))
    out["usage"] = result(await client.call_tool("usage", {"since": "1h"}))
    out["usage_bad"] = result(await client.call_tool("usage", {"since": "yesterday-ish"}))
    return out


async def main():
    transport, mode = sys.argv[1], sys.argv[2]
    if transport == "stdio":
        args = ["mcp", "--config", sys.argv[4]]
        if len(sys.argv) > 5 and sys.argv[5] == "--url":
            args = ["mcp", "--url", sys.argv[6], "--key", sys.argv[7]]
        params = StdioServerParameters(command=sys.argv[3], args=args, env={"SWITCHYARD_LOG": "info"})
        async with Client(params, mode=mode, read_timeout_seconds=60) as client:
            out = await session(client)
    else:
        url, key = sys.argv[3], sys.argv[4]
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        async with http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode,
                              read_timeout_seconds=60) as client:
                out = await session(client)
    print(json.dumps(out))


asyncio.run(main())
