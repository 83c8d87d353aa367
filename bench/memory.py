"""brain's peak memory under hostile input and hostile servers (issue 31): every case of
tests/test_bounds.py, plus the largest request brain accepts, measured for real.

Each case runs the installed `brain` (or the Slack sender, or `brain mcp`) as a process under
a 512 MiB address-space cap (RLIMIT_AS, as `prlimit --as` sets it), so an unbounded read
fails inside brain instead of taking the machine down, and reads that process's own peak
resident set from wait4 (ru_maxrss). The servers are tests/support/hostile.py: raw sockets,
every byte chosen. Nothing here is a time: the deadlines are what the tests check.
Writes bench/hostile.md.

    .venv/bin/python bench/memory.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import hostile  # noqa: E402
from capped import CAP, Capped, run_capped  # noqa: E402
from fakes import FakeApex, refused_url  # noqa: E402
from hostile import Hostile  # noqa: E402
from mcp_wire import INITIALIZED, initialize  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

BRAIN = str(Path(sys.executable).parent / "brain")
LIMIT_MIB = 64


class Bench:
    def __init__(self, home: Path, runs: int) -> None:
        self.home = home
        self.runs = runs
        self.rows: list[tuple[str, str, int, float]] = []  # case, what brain did, exit, MiB
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRAIN_")},
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "c"),
            "XDG_DATA_HOME": str(home / "d"),
            "XDG_CACHE_HOME": str(home / "k"),
            "BRAIN_LOCAL_URL": refused_url(),
            "BRAIN_APEX_KEY": "sk-bench-key",  # a keyless text 500 would mean "set a key"
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        config = home / "c" / "brain" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text("[apex]\nfirst_token_timeout = 1\n[local]\nfirst_token_timeout = 1\n")

    def case(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        what: Callable[[Capped], str] = lambda r: "",
        **kw: Any,
    ) -> None:
        results = []
        for _ in range(self.runs):
            opened = kw.pop("open_stdin", None)
            stdin = opened() if opened else kw.get("stdin", subprocess.DEVNULL)
            try:
                results.append(
                    run_capped(
                        argv,
                        {**self.env, **(env or {})},
                        **{**kw, "stdin": stdin},
                        cwd=str(self.home),
                    )
                )
            finally:
                if opened:
                    kw["open_stdin"] = opened
                    _close(stdin)
        worst = max(results, key=lambda r: r.peak_kib)
        self.rows.append((name, what(worst) or _said(worst), worst.code, worst.peak_mib))
        print(f"{worst.peak_mib:6.1f} MiB  exit {worst.code:3}  {name}", flush=True)


def _close(stream: Any) -> None:
    proc = getattr(stream, "proc", None)
    if proc is not None:
        proc.kill()
        proc.wait()
    if hasattr(stream, "close"):
        stream.close()


def _said(r: Capped) -> str:
    """The line that says why: a backend's reason under "Nothing could answer", else the
    last thing brain said."""
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if ln.startswith(("Apex", "apex:", "local:"))]
    said = [ln for ln in lines if ln.startswith("brain")]
    text = reasons[0] if reasons else (said[-1] if said else r.stdout.strip()[:80])
    text = text.replace("brain: error: ", "").replace("brain: ", "")
    return text[:120] + ("…" if len(text) > 120 else "")


def yes_pipe() -> Any:
    proc = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.proc = proc  # type: ignore[attr-defined]
    return proc.stdout


def inputs(b: Bench) -> None:
    b.case("`yes \\| brain digest` (an endless pipe)", [BRAIN, "digest"], open_stdin=yes_pipe)
    b.case(
        "`brain digest < /dev/zero`",
        [BRAIN, "digest"],
        open_stdin=lambda: open("/dev/zero", "rb"),  # noqa: SIM115 - closed by Bench.case
    )
    big = b.home / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(3 << 30)
    b.case("`brain digest big.txt` (a 3 GB file)", [BRAIN, "digest", str(big)])
    names = []
    for i in range(30):
        path = b.home / f"part{i}.md"
        path.write_text(f"notes {i} " * 20_000)
        names.append(str(path))
    b.case("`brain digest` 30 files of 200 KB (6 MB together)", [BRAIN, "digest", *names])
    big.unlink()


def largest(b: Bench) -> None:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        apex = FakeApex(server)
        apex.answer("brain_dump", ["noted"])
        b.case(
            "baseline: one ordinary answer (`brain dump x`)",
            [BRAIN, "dump", "x"],
            env={"BRAIN_APEX_URL": apex.url},
            what=lambda r: "answered",
        )
        text = ("grading notes for tuesday, soil pH lab. " * 110_000)[: 4 * 1024 * 1024 - 10]
        b.case(
            "the largest request brain sends: 4 MiB piped into `dump`, answered",
            [BRAIN, "dump"],
            env={"BRAIN_APEX_URL": apex.url},
            input=text.encode(),
        )
        b.case(
            "the same, with one answer of 4 MiB coming back",
            [BRAIN, "dump", "x"],
            env={"BRAIN_APEX_URL": apex.url},
            what=lambda r: f"answered, {len(r.stdout) >> 20} MiB on stdout",
        ) if _big_answer(apex) else None
    finally:
        server.stop()


def _big_answer(apex: FakeApex) -> bool:
    apex.answer("brain_dump", ["word " * 1000] * 840)  # ~4 MiB in 840 pieces
    return True


SERVERS = [
    ("an SSE line that never ends", hostile.endless_line),
    ("a JSON body that never ends", hostile.endless_json),
    ("a 500 whose error body never ends", hostile.endless_error),
    ("a gzip bomb (64 MiB in ~64 KiB)", hostile.gzip_bomb),
    ("keep-alive pings, never content", hostile.pings),
    ("empty chunks, never content", hostile.empty_chunks),
    ("headers a byte at a time", hostile.dribble),
    ("one token, then pings forever", hostile.stall_after_first),
    ("one token, then empty chunks forever", hostile.trickle_after_first),
]


def servers(b: Bench) -> None:
    for name, script in SERVERS:
        with Hostile({"/v1/chat/completions": script}) as apex:
            b.case(f"Apex: {name}", [BRAIN, "dump", "x"], env={"BRAIN_APEX_URL": apex.url})
    with Hostile(
        {"/health/liveliness": hostile.endless_text, "/v1/chat/completions": hostile.pings},
        alive=False,
    ) as apex:
        b.case(
            "Apex: a health check that never stops downloading",
            [BRAIN, "dump", "x"],
            env={"BRAIN_APEX_URL": apex.url},
        )
    for name, script in [
        ("an endless JSON body", hostile.endless_json),
        ("a body a byte at a time", hostile.dribble_body),
    ]:
        with _ollama(script) as ollama:
            b.case(
                f"Ollama: `/api/ps` sends {name}",
                [BRAIN, "--offline", "dump", "x"],
                env={"BRAIN_LOCAL_URL": ollama.url},
            )
    with Hostile({"/v1/chat/completions": hostile.pings}) as apex:
        b.case(
            "`brain apex check`: pings, never content, on every route",
            [BRAIN, "apex", "check"],
            env={"BRAIN_APEX_URL": apex.url},
        )


def _ollama(ps: Any) -> Hostile:
    def chat(conn: Any, request: Any, stopped: Any) -> None:
        lines = [
            {"message": {"role": "assistant", "content": "local answer"}, "done": False},
            {"done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2},
        ]
        body = "".join(json.dumps(x) + "\n" for x in lines).encode()
        hostile.reply(200, body, "application/x-ndjson")(conn, request, stopped)

    version = hostile.reply(200, b'{"version": "0.12.0"}')
    return Hostile({"/api/version": version, "/api/ps": ps, "/api/chat": chat}, alive=False)


def slack(b: Bench) -> None:
    sys.path.insert(0, str(ROOT))
    for name, script in [
        ("answers forever", hostile.endless_text),
        ("answers a byte at a time", hostile.dribble_body),
        ("sends headers a byte at a time", hostile.dribble),
    ]:
        db = b.home / "d" / "brain" / "brain.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from brain.store import Store; "
                "s = Store(Path(sys.argv[1])); s.outbox_add('slack', 'notice'); s.close()",
                str(db),
            ],
            check=True,
        )
        with Hostile({"/hook": script}, alive=False) as hook:
            b.case(
                f"the Slack sender: the webhook {name}",
                [sys.executable, "-m", "brain.notify"],
                env={"BRAIN_SLACK_WEBHOOK": hook.url + "/hook"},
                what=lambda r: "ended; the notice stays in the outbox with the reason",
            )


def mcp(b: Bench) -> None:
    hello = initialize(client="bench")

    def session(material: str) -> bytes:
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "dump", "arguments": {"text": "x", "material": material}},
        }
        lines = [hello, INITIALIZED, call]
        return "".join(json.dumps(x) + "\n" for x in lines).encode()

    try:
        import mcp as _  # noqa: F401
    except ImportError:
        return
    tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    start = [hello, INITIALIZED, tools]
    b.case(
        "baseline: `brain mcp` answering initialize and tools/list (the MCP SDK loaded)",
        [BRAIN, "mcp"],
        input="".join(json.dumps(x) + "\n" for x in start).encode(),
        linger=3.0,
        what=lambda r: "listed the tools",
    )
    b.case(
        "`brain mcp`: a 20 MiB request line",
        [BRAIN, "mcp"],
        input=session("y" * (20 << 20)),
        linger=5.0,
        env={"BRAIN_APEX_URL": refused_url()},
        what=lambda r: "error result: " + _mcp_text(r),
    )
    b.case(
        "`brain mcp`: 5 MiB of material (past the 4 MiB cap)",
        [BRAIN, "mcp"],
        input=session("y" * (5 << 20)),
        linger=5.0,
        env={"BRAIN_APEX_URL": refused_url()},
        what=lambda r: "error result: " + _mcp_text(r),
    )


def _mcp_text(r: Capped) -> str:
    for line in r.stdout.splitlines():
        message = json.loads(line)
        if message.get("id") == 2:
            return message["result"]["content"][0]["text"][:80]
    return "(no answer)"


def notes(b: Bench) -> list[str]:
    """What the figures say about the goal, from the figures themselves."""
    not_hostile = ("baseline", "the largest", "the same")  # the Slack sender's rows count
    hostile = [(n, m) for n, _, _, m in b.rows if not n.startswith(not_hostile)]
    hostile = [(n, m) for n, m in hostile if "mcp" not in n]
    cli = max(m for _, m in hostile)
    mcp = {n: m for n, _, _, m in b.rows if "mcp" in n}
    base = next((m for n, m in mcp.items() if n.startswith("baseline")), None)
    lines = [
        f"- Every hostile case of the command line and the Slack sender: at most {cli:.1f} "
        f"MiB, " + ("**under 64 MiB**." if cli < LIMIT_MIB else "**over 64 MiB**."),
    ]
    if base is not None:
        worst = max(m for n, m in mcp.items() if not n.startswith("baseline"))
        lines.append(
            f"- `brain mcp` starts at {base:.1f} MiB before any request (the MCP SDK, pydantic "
            f"and anyio it loads); its hostile requests add {worst - base:.1f} MiB at most "
            f"(peak {worst:.1f} MiB). Under 64 MiB is out of reach while the SDK alone is "
            "over it."
        )
    big = [m for n, _, _, m in b.rows if n.startswith("the largest")]
    if big:
        lines.append(
            f"- Not hostile, but the most a user may send: a 4 MiB question peaks at "
            f"{big[0]:.1f} MiB (the text is held once; the request body is encoded and sent a "
            "slice at a time, and brain.db keeps a long input apart from its row, written a "
            "slice at a time, so no update rewrites it: store migration 5, issue 32)."
        )
    return lines


def report(b: Bench, out: Path) -> None:
    worst = max(mib for *_, mib in b.rows)
    lines = [
        "# brain under hostile input: peak memory",
        "",
        f"Generated by `bench/memory.py` on {platform.node() or 'this machine'} "
        f"({platform.platform()}, Python {platform.python_version()}); {b.runs} run(s) a case, "
        "the largest peak shown.",
        "",
        "Each case runs brain as a process under a "
        f"{CAP >> 20} MiB address-space cap (RLIMIT_AS, what `prlimit --as` sets): an "
        "unbounded read would fail inside brain, not take the machine down. The figure is that "
        "process's peak resident set (wait4's ru_maxrss). The servers are "
        "`tests/support/hostile.py` (raw sockets); `tests/test_bounds.py` runs the same cases "
        f"and checks each stays under {LIMIT_MIB} MiB and never exits 70. "
        f"Goal: under {LIMIT_MIB} MiB in every hostile case. Largest figure below: "
        f"{worst:.1f} MiB.",
        "",
        *notes(b),
        "",
        "| case | what brain did | exit | peak RSS |",
        "|---|---|---:|---:|",
    ]
    for name, what, code, mib in b.rows:
        lines.append(f"| {name} | {what.replace('|', '/')} | {code} | {mib:.1f} MiB |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "hostile.md"))
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp), ns.runs)
        b.case("baseline: `brain --help`", [BRAIN, "--help"], what=lambda r: "help")
        inputs(b)
        largest(b)
        servers(b)
        slack(b)
        mcp(b)
        report(b, Path(ns.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
