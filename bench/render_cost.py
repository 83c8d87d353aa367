#!/usr/bin/env python3
"""brain's own time per token while it shows an answer: 4 KB, 400 KB and 4 MB of Markdown,
on a terminal (a pseudo-terminal, 80x24) and piped. The cost per token must stay flat as the
answer grows (issue 30: rich's Live redrew the whole answer, 7.2 s of brain's time for 400 KB).

Two measures, both CPU time (user + sys) of the process showing the answer, never wall time:
- drawing: brain.render.Output fed the answer in 4-character pieces, in a child process whose
  stdout is the terminal or a pipe, after drawing a small answer once (imports, lexers);
- end to end: the installed `brain dump` against bench/fake_openai.py streaming the same
  answer (SSE, one piece per event): everything brain does for the answer (reading the
  stream, keeping it, showing it), less the same command's time for a one-line answer
  (start-up, the request, the store), which is shown apart.

    python bench/render_cost.py [--sizes 4000 400000 4000000] [--no-e2e] [--out FILE.md]

Uses the brain importable from this Python (the checkout's .venv) and its `brain` script.
Stdlib only besides brain.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SECTION = """## Section {n}

A paragraph with **bold**, *italic* and `code`, long enough to wrap once or twice on an
eighty-column terminal, as answers do when they explain something step by step.

- first point about the thing
- second point, with a [link](https://example.com)
- third point

```python
def f(x):
    return x * {n}
```

1. one
2. two

"""

CHILD = r"""
import json, os, resource, sys
from brain.render import Output

def show(text):
    out = Output()
    for i in range(0, len(text), 4):
        out.delta(text[i:i + 4])
    out.stop()

show(open(sys.argv[1]).read()[:3000])  # warm: imports, Markdown parser, the Python lexer
text = open(sys.argv[2]).read()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

before = cpu()
show(text)
cpu = cpu() - before
os.write(int(sys.argv[3]), json.dumps({"cpu": cpu, "tokens": -(-len(text) // 4)}).encode())
"""


def answer(size: int) -> str:
    parts, total, n = [], 0, 0
    while total < size:
        section = SECTION.format(n=n)
        parts.append(section)
        total += len(section)
        n += 1
    return "".join(parts)[:size]


class Screen:
    """A pseudo-terminal of rows x cols whose output is read and thrown away."""

    def __init__(self, rows: int = 24, cols: int = 80) -> None:
        import fcntl
        import struct
        import termios

        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while os.read(self.master, 1 << 16):
                pass
        except OSError:
            pass


def drawing(path: Path, warm: Path, tty: bool) -> dict[str, float]:
    r, w = os.pipe()
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    if tty:
        screen = Screen()
        out: int = screen.slave
    else:
        out = subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(warm), str(path), str(w)],
        stdout=out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        pass_fds=(w,),
        env=env,
    )
    os.close(w)
    proc.wait()
    if tty:
        os.close(screen.slave)
    data = os.read(r, 4096)
    os.close(r)
    if proc.returncode != 0 or not data:
        raise SystemExit(f"render_cost: the drawing child failed ({proc.returncode})")
    return json.loads(data)


def end_to_end(path: Path, tty: bool, home: Path) -> dict[str, float]:
    port_file = home / "port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [
            *(sys.executable, str(HERE / "fake_openai.py"), "--port-file", str(port_file)),
            *("--answer-file", str(path), "--piece-size", "4"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "BRAIN_APEX_URL": url,
            "BRAIN_APEX_KEY": "sk-bench",
            "BRAIN_LOCAL_URL": "http://127.0.0.1:9",
            "TERM": "xterm-256color",
        }
        brain = str(Path(sys.executable).parent / "brain")
        screen = Screen() if tty else None
        out = screen.slave if screen else subprocess.DEVNULL
        proc = subprocess.Popen(
            [brain, "dump", "show me"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if screen:
            os.close(screen.slave)
        if proc.returncode != 0:
            raise SystemExit(f"render_cost: brain exited {proc.returncode}")
        size = path.stat().st_size
        return {"cpu": usage.ru_utime + usage.ru_stime, "tokens": -(-size // 4)}
    finally:
        server.terminate()
        server.wait(5)


def human(size: int) -> str:
    return f"{size // 1_000_000} MB" if size >= 1_000_000 else f"{size // 1000} KB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[4_000, 400_000, 4_000_000])
    ap.add_argument("--no-e2e", action="store_true", help="measure the drawing only")
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    opts = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        warm = home / "warm.md"
        warm.write_text(answer(3000))
        tiny = home / "tiny.md"
        tiny.write_text("Hello.\n")
        base = {}
        if not opts.no_e2e:
            for tty in (True, False):
                base[tty] = min(end_to_end(tiny, tty, home)["cpu"] for _ in range(3))
                print(
                    f"render_cost: a one-line answer, {'terminal' if tty else 'piped'}: "
                    f"{base[tty]:.3f} s (start-up, request, store)",
                    file=sys.stderr,
                )
        for size in opts.sizes:
            path = home / f"answer-{size}.md"
            path.write_text(answer(size))
            for tty in (True, False):
                where = "terminal 80x24" if tty else "piped"
                kinds = [("drawing", lambda p=path, t=tty: drawing(p, warm, t))]
                if not opts.no_e2e:
                    kinds.append(("end to end", lambda p=path, t=tty: end_to_end(p, t, home)))
                for kind, measure in kinds:
                    got = measure()
                    if kind == "end to end":
                        got["cpu"] -= base[tty]
                    per = got["cpu"] / got["tokens"] * 1e6
                    row = (human(size), where, kind, got["tokens"], got["cpu"], per)
                    rows.append(row)
                    print(
                        f"render_cost: {row[0]:>6} {where:<15} {kind:<10} "
                        f"{got['cpu']:8.2f} s  {per:7.1f} µs/token",
                        file=sys.stderr,
                        flush=True,
                    )
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/render_cost.py` on "
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.",
        "",
        "| answer | shown | what is timed | pieces | brain's CPU (user+sys) | per piece |",
        "|---|---|---|---:|---:|---:|",
    ]
    if base:
        lines[1:1] = [
            "",
            "End to end is less the same command for a one-line answer: "
            f"{base[True]:.3f} s on the terminal, {base[False]:.3f} s piped "
            "(start-up, the request, the store).",
        ]
    for size, where, kind, tokens, cpu, per in rows:
        lines.append(f"| {size} | {where} | {kind} | {tokens:,} | {cpu:.2f} s | {per:.1f} µs |")
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        opts.out.write_text(text)


if __name__ == "__main__":
    main()
