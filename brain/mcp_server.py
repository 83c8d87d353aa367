"""brain as an MCP server over stdio (`brain mcp`): one tool per task, and `status`.

Owns the tool list (from the task table; premium tools only with --allow-premium), what a
tool call does (brain.exchange.ask: the same ladder, the same history and the same premium
cap as the command line) and keeping stdout for the protocol alone: the SDK's stdio
transport (mcp 2.x) points fd 1 at stderr while it serves, and brain's notices go to stderr.
Needs the optional `mcp` package (the extra `brain-apex[mcp]`; brain.install names the command
for how brain was installed), imported lazily; never click or rich.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at runtime,
# and they name types imported inside build().
import json
import re
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from brain import premium
from brain.client import one_line
from brain.errors import BrainError, NotInstalled
from brain.tasks import Task

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from brain.app import App

SDK_PIN = "mcp==2.3.0"  # what brain is tested with; v2 renamed FastMCP to MCPServer

INSTRUCTIONS = (
    "brain answers with the user's own models: each tool is one task of brain's task table, "
    "asked on Apex (a LiteLLM proxy) and, when Apex cannot be reached, on the laptop's local "
    "model (tools marked 'only on Apex' never fall back). Pass the request as `text` and "
    "anything to work on (notes, a diff, a document) as `material`; a voice memo on this "
    "machine as `audio` (its path: it is transcribed, and the transcript is the material). "
    "`status` says what is reachable."
)


def require_sdk() -> None:
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        from brain import install

        raise NotInstalled(
            "`brain mcp` needs the MCP Python SDK (the `mcp` package), which is not installed.",
            f"Install it with {install.add(SDK_PIN)}, then run `brain mcp` again.",
        ) from None


def tool_tasks(tasks: dict[str, Task], allow_premium: bool) -> list[Task]:
    """The tasks that become tools: every task, premium ones only when allowed."""
    paid = premium.routes(tasks)
    return [t for t in tasks.values() if allow_premium or t.route not in paid]


def describe(task: Task, paid: set[str]) -> str:
    where = f"Apex route `{task.route}`"
    if task.may_fall_back:
        where += ", or this laptop's local model when Apex cannot be reached"
    else:
        where += " only (never falls back)"
    text = f"{task.description} Answered by {where}."
    if task.route in paid:
        text += " Paid Claude: every call costs money; call it only when the user asks for it."
    return text


def stderr_notice(message: str) -> None:
    from brain.secrets import redact

    sys.stderr.write(f"brain mcp: {redact(message)}\n")
    sys.stderr.flush()


def answer(
    app: "App",
    task: Task,
    text: str,
    material: str | None,
    *,
    audio: str | None = None,
    notice: Callable[[str], None] = stderr_notice,
) -> tuple[str, str]:
    """Ask `task` through the ladder and record it; (answer, note for the caller or "").
    `audio`: the path of a recording, transcribed into the material (brain.voice)."""
    from brain import exchange
    from brain.material import Material, compose, recordings

    materials = [Material("stdin", material)] if material else []
    if audio:
        materials.append(_recording(audio))
    user_input, messages = compose(task, text.strip(), materials)  # its checks: the cap
    line, incomplete = "", []
    if task.name == "digest" and material and not audio:
        # As `brain digest`: material longer than the model's context is read in parts.
        from brain.digest import parts
        from brain.digest.sources import Unit

        done = parts.answer(app, task, text.strip(), [Unit("stdin", "", material)], _Sink(notice))
        result, line, incomplete = done.result, done.line, done.incomplete
    else:
        question = exchange.Question(task, user_input, messages, audio=recordings(materials))
        result = exchange.ask(app, question, _Sink(notice))
    a = result.answer
    notes = []
    if a.backend != "apex":
        why = "; ".join(fb["reason"] for fb in result.outcome.fallbacks if fb.get("reason"))
        notes.append(f"answered by {a.backend} {a.model}".strip() + (f" ({why})" if why else ""))
    notes.extend(result.notes())
    notes.extend(f"incomplete: {cut}" for cut in incomplete)
    for note in notes:
        notice(note)
    if app.verbose:
        notice(
            f"{task.name}: answered by {a.backend} {a.model} (route {result.outcome.route}) in "
            f"{a.total_ms} ms, history #{result.row}"
        )
    answer_text = f"{a.text}\n\n{line}" if line else a.text
    return answer_text, ("brain: " + "; ".join(notes)) if notes else ""


def _recording(audio: str) -> "Any":
    """The material for a recording's path (BadInput when it is not one brain can read)."""
    from pathlib import Path

    from brain import voice
    from brain.errors import BadInput
    from brain.material import Material

    path = Path(audio).expanduser()
    if not voice.is_audio(path.name):
        raise BadInput(
            f"{audio} is not a recording brain reads",
            f"`audio` takes the path of a {', '.join(e[1:] for e in voice.AUDIO_ENDINGS)} file.",
        )
    if not path.is_file():
        raise BadInput(f"no such recording: {audio}", "Give the full path of the file.")
    voice.check_file(path, audio)
    return Material(path.name, "", voice.Audio.of(path.name, path))


def _answer_in_thread(
    app: "App", task: Task, text: str, material: str | None, audio: str | None = None
) -> tuple:
    with app.fork() as mine:
        return answer(mine, task, text, material, audio=audio)


def _status_in_thread(app: "App", allow_premium: bool) -> dict:
    with app.fork() as mine:
        return status(mine, allow_premium)


class _Sink:
    """Notices to stderr (stdout is the protocol's); the answer is returned whole."""

    def __init__(self, notice: Callable[[str], None]) -> None:
        self.notice = notice

    def delta(self, text: str) -> None:
        pass

    def waiting(self, text: str) -> None:
        pass


def status(app: "App", allow_premium: bool) -> dict:
    """What this server can reach now, and what each tool asks (the backends' own checks)."""
    from brain import secrets

    conf = app.settings
    apex: dict[str, Any] = {"url": conf.apex_url or None}
    if conf.apex_url and app.mode != "offline":
        verdict = app.backend("apex").probe()  # type: ignore[attr-defined]
        apex.update(reachable=verdict.ok, reason=verdict.reason or None)
        apex["latency_ms"] = verdict.latency_ms
    else:
        apex.update(reachable=False, reason="offline" if conf.apex_url else "apex.url is empty")
    local = app.backend("local").checks(app.local_model)[0]
    paid = premium.routes(app.tasks)
    today = premium.spent_today(app.store(), paid)
    return {
        "mode": app.mode,
        "apex": apex,
        "apex_key_set": bool(secrets.get("apex")),
        "local": {
            "url": conf.local_url,
            "model": app.local_model,
            "ready": bool(local.ok),
            "detail": local.detail,
            "fix": local.fix or None,
        },
        "tools": [
            {"name": t.name, "route": t.route, "fallback": t.fallback}
            for t in tool_tasks(app.tasks, allow_premium)
        ],
        "premium": {
            "enabled": allow_premium,
            "today_usd": today,
            "daily_cap_usd": float(conf.get("premium", "daily_usd")) or None,
        },
    }


def build(app: "App", *, allow_premium: bool) -> "MCPServer":
    """The server with its tools; `serve` runs it on stdio."""
    import anyio
    from mcp.server.mcpserver import MCPServer

    from brain import __version__

    server = MCPServer(
        "brain",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="INFO" if app.verbose else "WARNING",
    )
    tasks = app.tasks
    paid = premium.routes(tasks)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is brain's own

    for task in tool_tasks(tasks, allow_premium):
        server.add_tool(_task_tool(app, task), name=task.name, description=describe(task, paid))

    async def status_tool() -> str:
        data = await anyio.to_thread.run_sync(lambda: _status_in_thread(app, allow_premium))
        return json.dumps(data, indent=2)

    server.add_tool(
        status_tool,
        name="status",
        description="What brain can reach now (Apex, the local model), the tools' routes, "
        "and today's premium spending. Asks no model.",
    )
    return server


def _task_tool(app: "App", task: Task) -> Callable[..., Any]:
    """The tool for one task: text and material in, the answer (and a note) out."""
    from typing import Annotated

    import anyio
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent
    from pydantic import Field

    async def tool(
        text: Annotated[str, Field(description="What to do: the instruction or question.")],
        material: Annotated[
            str | None,
            Field(description="Text to work on (notes, a diff, a document), if any."),
        ] = None,
        audio: Annotated[
            str | None,
            Field(
                description="The path of a voice memo on this machine (wav, mp3, m4a, ogg, "
                "opus, flac, webm): transcribed, and the transcript is the material."
            ),
        ] = None,
    ) -> CallToolResult:
        try:
            reply, note = await anyio.to_thread.run_sync(
                lambda: _answer_in_thread(app, task, text, material, audio)
            )
        except BrainError as exc:
            from brain.secrets import redact

            raise ToolError(redact(str(exc))) from None
        content = [TextContent(type="text", text=reply)]
        if note:
            content.append(TextContent(type="text", text=note))
        return CallToolResult(content=content)

    return tool


def serve(server: "MCPServer") -> None:
    """Serve on stdin/stdout through brain's own line reader (`Lines`): every request has a
    bound, and one the SDK would drop without a word gets an error result instead."""
    import anyio

    anyio.run(_serve_stdio, server)


async def _serve_stdio(server: "MCPServer") -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    wire_in, wire_out, restore = _claim_stdio()
    try:
        out = Wire(wire_out)
        async with stdio_server(anyio.wrap_file(Lines(wire_in, out)), anyio.wrap_file(out)) as (
            read,
            write,
        ):
            low = server._lowlevel_server  # what MCPServer.run_stdio_async runs, on our streams
            await low.run(read, write, low.create_initialization_options())
    finally:
        restore()


def _claim_stdio() -> tuple[Any, Any, Callable[[], None]]:
    """The protocol's own copies of fd 0 and 1; while serving, fd 0 reads /dev/null and fd 1
    writes to stderr, so nothing a handler or a child prints can corrupt the protocol (what
    the SDK does when it owns the streams)."""
    import os

    wire_in = os.fdopen(os.dup(0), "rb", buffering=0)
    wire_out = os.fdopen(os.dup(1), "wb", buffering=0)
    saved = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    def restore() -> None:
        for fd, copy in zip((0, 1), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)

    return wire_in, wire_out, restore


MAX_REQUEST = 8 << 20  # bytes of one JSON-RPC line: 4 MiB of material, with room for escapes
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ID = re.compile(rb'"id"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*")')
_METHOD = re.compile(rb'"method"\s*:\s*"([^"]{1,100})"')


class Wire:
    """stdout for the protocol: one whole line per write, from any thread."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self.lock:
            self.raw.write(data)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            self.raw.flush()

    def reply(self, message: dict[str, Any]) -> None:
        self.write(json.dumps(message) + "\n")
        self.flush()


class Lines:
    """stdin for the protocol: lines of at most MAX_REQUEST bytes. The SDK reads each line with
    pydantic, and a line it cannot read it logs at debug level and drops
    (mcp.shared.jsonrpc_dispatcher._dispatch): the client waits forever for its answer. So a
    request it would drop is answered here with an error for its id and not passed on: one
    too large, one holding a lone UTF-16 surrogate (valid JSON that pydantic's parser refuses),
    one whose shape is not JSON-RPC (a method that is not a string, params that are not an
    object, a batch), or a line that is not JSON at all but names an id."""

    def __init__(self, raw: Any, wire: Wire) -> None:
        import io

        self.raw = io.BufferedReader(raw, 1 << 16)
        self.wire = wire

    def readline(self) -> str:
        while True:
            line = self.raw.readline(MAX_REQUEST + 1)
            if not line:
                return ""
            if len(line) > MAX_REQUEST and not line.endswith(b"\n"):
                head = line[:65536]
                del line  # never hold more than one bound's worth
                self._skip_line()
                self._refuse(head, None, f"the request is larger than {MAX_REQUEST >> 20} MiB")
                continue
            text = line.decode("utf-8", "replace")
            del line
            why = _unreadable(text)
            if why:
                self._refuse(text[:65536].encode(), text, why)
                continue
            return text

    def _skip_line(self) -> None:
        """Read and drop the rest of an oversized line, a bounded piece at a time."""
        while True:
            piece = self.raw.readline(1 << 16)
            if not piece or piece.endswith(b"\n"):
                return

    def _refuse(self, head: bytes, text: str | None, why: str) -> None:
        request: Any = None
        if text is not None:
            try:
                request = json.loads(text)
            except (ValueError, RecursionError):
                request = None
        if isinstance(request, list):  # a batch: MCP has none; each request gets its error
            for item in request:
                self._answer(item if isinstance(item, dict) else {}, why)
        elif isinstance(request, dict):
            self._answer(request, why)
        else:
            found, named = _ID.search(head), _METHOD.search(head)
            rid = json.loads(found.group(1)) if found else None
            self._answer({"id": rid, "method": named.group(1).decode() if named else None}, why)

    def _answer(self, request: dict[str, Any], why: str) -> None:
        rid, method = request.get("id"), request.get("method")
        stderr_notice(f"refused a request ({method if isinstance(method, str) else '?'}): {why}")
        if not isinstance(rid, (str, int, float)) or isinstance(rid, bool):
            return  # a notification, or an id no answer could carry: no one to answer
        message = f"brain: {why}. Nothing was asked."
        if method == "tools/call":
            result = {"content": [{"type": "text", "text": message}], "isError": True}
            self.wire.reply({"jsonrpc": "2.0", "id": rid, "result": result})
        else:
            error = {"code": -32600, "message": message}
            self.wire.reply({"jsonrpc": "2.0", "id": rid, "error": error})


def _unreadable(text: str) -> str:
    """Why the SDK would drop `text` (one JSON-RPC line) without an answer, or "" when it
    reads it."""
    if not text.strip():
        return ""
    why = _lone_surrogate(text)
    if why:
        return why
    import mcp_types

    try:
        message = mcp_types.jsonrpc_message_adapter.validate_json(text, by_name=False)
    except Exception as exc:  # pydantic's ValidationError, or anything else it raises
        return f"the request is not a JSON-RPC 2.0 message MCP reads ({_first_error(exc)})"
    if isinstance(message, mcp_types.JSONRPCNotification) and '"id"' in text:
        # An id that is neither an integer nor a string (13.5, true, null): pydantic reads the
        # request as a notification, and a notification gets no answer.
        try:
            has_id = "id" in json.loads(text)
        except (ValueError, RecursionError, TypeError):
            has_id = False
        if has_id:
            return "the request's id is neither an integer nor a string"
    return ""


def _lone_surrogate(text: str) -> str:
    """Why `text` (one JSON-RPC line) cannot be served, or "": it holds a lone UTF-16
    surrogate escape (\\ud800 alone), which is not a character."""
    if not _SURROGATE_ESCAPE.search(text):
        return ""
    try:
        json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return (
            "the request holds a lone UTF-16 surrogate (an escape such as \\ud800 without its "
            "pair), which is not a character; send valid Unicode text"
        )
    except (ValueError, RecursionError):
        return ""  # not JSON at all: the check after this one says so
    return ""


def _first_error(exc: Exception) -> str:
    """pydantic's first complaint, as "where: what" on one line."""
    try:
        first = exc.errors()[0]  # type: ignore[attr-defined]
        where = ".".join(str(part) for part in first["loc"][1:])
        what = str(first["msg"])
    except Exception:
        return one_line(str(exc), 160)
    return one_line(f"{where}: {what}" if where else what, 160)
