#!/usr/bin/env python3
"""The measuring half of bench/run.sh: brain against llm and shell-gpt, one machine, one run.

Starts the fake endpoints, gives each client a throwaway HOME pointed at them, measures with
hyperfine (start-up, one answer), /usr/bin/time (peak memory) and its own clock (time to the
first answer byte when the endpoint is refused, unresolvable or hanging), profiles brain's
imports, and writes bench/out/results.json and bench/README.md. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PROMPT = "Say hello"
# Issue 32's goals (brain 0.1's were 100 ms, 150 ms and 40 MiB).
GOALS = {
    "help_ms": 40,
    "help_x_python": 3.5,  # or --help within 3.5x `python -c pass` on the same machine
    "overhead_ms": 90,
    "rss_mib": 32,
    "rows_ms": 5,  # at most this much slower with 100,000 stored rows than with 10
    "refused_s": 0.5,
    "unresolvable_s": 0.5,
    "hanging_s": 1.0,
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ----- servers ----------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, *args: str) -> None:
        self.port_file = OUT / f"{name}.port"
        self.port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "fake_openai.py"),
                "--port-file",
                str(self.port_file),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if self.port_file.exists() and self.port_file.read_text():
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"bench: the fake endpoint {name} did not start")
        self.url = f"http://127.0.0.1:{self.port_file.read_text()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ----- clients ----------------------------------------------------------------------------
class Clients:
    """Each client's command lines and environment, all pointed at the same endpoints."""

    def __init__(self, ok: str, local: str, refused: str, hang: str, unresolvable: str) -> None:
        self.urls = {"ok": ok, "refused": refused, "hang": hang, "unresolvable": unresolvable}
        self.local = local
        self.bin = {t: OUT / f"venv-{t}" / "bin" / t for t in ("brain", "llm", "sgpt")}
        self.homes = {}
        for tool in ("brain", "llm", "sgpt", "curl"):
            home = OUT / f"home-{tool}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            self.homes[tool] = home
        llm_dir = self.homes["llm"] / "llm"
        llm_dir.mkdir()
        (llm_dir / "extra-openai-models.yaml").write_text(
            "".join(
                f"- model_id: mock-{case}\n  model_name: mock-model\n  api_base: {url}/v1\n"
                for case, url in {**self.urls, "blackhole": f"http://{BLACKHOLE}:4000"}.items()
            )
        )
        sgpt_dir = self.homes["sgpt"] / ".config" / "shell_gpt"
        sgpt_dir.mkdir(parents=True)
        (sgpt_dir / ".sgptrc").write_text(
            "OPENAI_API_KEY=sk-bench\n"
            f"API_BASE_URL={ok}/v1\n"
            "DEFAULT_MODEL=mock-model\n"
            f"CHAT_CACHE_PATH={self.homes['sgpt']}/chat_cache\n"
            f"CACHE_PATH={self.homes['sgpt']}/cache\n"
            "PRETTIFY_MARKDOWN=false\n"
        )

    def base_env(self, tool: str) -> dict[str, str]:
        home = self.homes[tool]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
        if tool == "llm":
            env["LLM_USER_PATH"] = str(home / "llm")
        return env

    def env(self, tool: str, case: str = "ok") -> dict[str, str]:
        env = self.base_env(tool)
        if tool == "brain":
            env.update(
                BRAIN_APEX_URL=self.urls[case],
                BRAIN_APEX_KEY="sk-bench",
                BRAIN_LOCAL_URL=self.local,
            )
        elif tool == "sgpt" and case != "ok":
            env["API_BASE_URL"] = self.urls[case] + "/v1"
        return env

    def help(self, tool: str) -> list[str]:
        return [str(self.bin[tool]), "--help"] if tool != "curl" else ["curl", "--help"]

    def answer(self, tool: str, stream: bool, case: str = "ok") -> list[str] | None:
        url = self.urls[case]
        if tool == "curl":
            body = json.dumps(
                {
                    "model": "mock",
                    "messages": [{"role": "user", "content": PROMPT}],
                    "stream": stream,
                }
            )
            cmd = ["curl", "-sS", "-H", "Content-Type: application/json", "-d", body]
            return [*cmd, *(["-N"] if stream else []), f"{url}/v1/chat/completions"]
        if tool == "brain":
            # brain always streams its request; --json prints the answer once, at the end.
            return [str(self.bin["brain"]), *([] if stream else ["--json"]), "ask", PROMPT]
        if tool == "llm":
            return [
                str(self.bin["llm"]),
                "-m",
                f"mock-{case}",
                *([] if stream else ["--no-stream"]),
                PROMPT,
            ]
        if tool == "sgpt":
            # sgpt has no non-streaming request (perf-anchors.md): stream only.
            return [str(self.bin["sgpt"]), "--no-cache", PROMPT] if stream else None
        raise ValueError(tool)


# ----- measuring --------------------------------------------------------------------------
def hyperfine(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    runs: int,
    warmup: int,
    prepare: str | None = None,
    ignore_failure: bool = False,
) -> dict:
    export = OUT / f"hf-{name}.json"
    args = [
        "hyperfine",
        "-N",
        "--style",
        "none",
        "--warmup",
        str(warmup),
        "--runs",
        str(runs),
        "--export-json",
        str(export),
    ]
    if prepare:
        args += ["--prepare", prepare]
    if ignore_failure:
        args += ["-i"]
    # hyperfine -N splits on spaces and understands quotes: quote each word.
    args.append(" ".join(_quote(c) for c in cmd))
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"hyperfine failed for {name}: {proc.stderr.strip()[-400:]}")
        return {"error": proc.stderr.strip()[-400:]}
    r = json.loads(export.read_text())["results"][0]
    ms = [t * 1000 for t in r["times"]]
    return {
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "user_sys_ms": round((r["user"] + r["system"]) * 1000, 1),
        "runs": len(ms),
    }


def _quote(word: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./-]+", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def peak_rss(cmd: list[str], env: dict[str, str], runs: int, stdin: Path | None = None) -> dict:
    values = []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            src = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
            try:
                proc = subprocess.run(
                    ["/usr/bin/time", "-f", "%M", "-o", tf.name, *cmd],
                    env=env,
                    stdin=src,
                    capture_output=True,
                )
            finally:
                if stdin:
                    src.close()
            text = Path(tf.name).read_text().strip().splitlines()
        if proc.returncode != 0 or not text:
            return {"error": proc.stderr.decode(errors="replace")[-300:]}
        values.append(int(text[-1]) / 1024)
    return {
        "median_mib": round(statistics.median(values), 1),
        "min_mib": round(min(values), 1),
        "max_mib": round(max(values), 1),
        "runs": runs,
    }


def first_byte(
    cmd: list[str], env: dict[str, str], cap: float, fresh_cache: Path | None = None
) -> dict:
    """Time from starting `cmd` to its first stdout byte, and to its exit (capped)."""
    if fresh_cache is not None:
        shutil.rmtree(fresh_cache, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    first: list[float] = []
    err: list[bytes] = []

    def read_out() -> None:
        b = proc.stdout.read(1)
        if b:
            first.append(time.perf_counter() - start)
        proc.stdout.read()

    def read_err() -> None:
        err.append(proc.stderr.read())

    threads = [
        threading.Thread(target=read_out, daemon=True),
        threading.Thread(target=read_err, daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        code = proc.wait(cap)
        capped = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        capped = True
    end = time.perf_counter() - start
    for t in threads:
        t.join(2)
    stderr = b"".join(err).decode(errors="replace").strip()
    return {
        "first_byte_s": round(first[0], 3) if first else None,
        "exit_s": None if capped else round(end, 3),
        "capped": capped,
        "exit_code": None if capped else code,
        "stderr_lines": len(stderr.splitlines()),
        "stderr_last": stderr.splitlines()[-1][:200] if stderr else "",
        "stderr_first": stderr.splitlines()[0][:200] if stderr else "",
    }


def repeat_first_byte(cmd, env, cap, runs, fresh_cache=None) -> dict:
    results = [first_byte(cmd, env, cap, fresh_cache) for _ in range(runs)]
    fb = [r["first_byte_s"] for r in results if r["first_byte_s"] is not None]
    ex = [r["exit_s"] for r in results if r["exit_s"] is not None]
    last = results[-1]
    return {
        "runs": runs,
        "answered": len(fb),
        "first_byte_median_s": round(statistics.median(fb), 3) if fb else None,
        "first_byte_max_s": round(max(fb), 3) if fb else None,
        "exit_median_s": round(statistics.median(ex), 3) if ex else None,
        "capped": sum(r["capped"] for r in results),
        "exit_code": last["exit_code"],
        "stderr_lines": last["stderr_lines"],
        "stderr_first": last["stderr_first"],
        "stderr_last": last["stderr_last"],
    }


def importtime(python: Path, env: dict[str, str], argv: list[str]) -> dict:
    """`-X importtime` of a brain command: total and the largest cumulative entries."""
    code = "import sys; from brain.cli import run; sys.exit(run(sys.argv[1:]))"
    proc = subprocess.run(
        [str(python), "-X", "importtime", "-c", code, *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4), int(m.group(1))))
    total = sum(r[3] for r in rows)
    top = [r for r in rows if r[1] <= 1]  # top-level and their direct children
    top.sort(reverse=True)
    said = [x for x in proc.stderr.splitlines() if not x.startswith("import time:")]
    return {
        "argv": argv,
        "said": said[0][:200] if said else "",  # a fallback notice explains a keyring import
        "modules": len(rows),
        "total_self_ms": round(total / 1000, 1),
        "largest": [
            {"module": r[2], "cumulative_ms": round(r[0] / 1000, 1), "depth": r[1]}
            for r in top[:14]
        ],
    }


def versions() -> dict:
    def pip_version(tool: str, dist: str) -> str:
        py = OUT / f"venv-{tool}" / "bin" / "python"
        proc = subprocess.run(
            [str(py), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
        )
        return proc.stdout.strip() or "?"

    hf = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout.strip()
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    return {
        "brain": pip_version("brain", "brain-apex"),
        "llm": pip_version("llm", "llm"),
        "llm_openai": pip_version("llm", "openai"),
        "shell-gpt": pip_version("sgpt", "shell-gpt"),
        "sgpt_openai": pip_version("sgpt", "openai"),
        "python": platform.python_version(),
        "hyperfine": hf,
        "curl": " ".join(curl.split()[:2]),
    }


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "os": platform.platform(terse=True),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_at_start": [round(x, 2) for x in load],
    }


# ----- the run ----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer runs, to try the script")
    ap.add_argument("--cap", type=float, default=30.0, help="seconds a peer may wait (default 30)")
    ap.add_argument("--no-readme", action="store_true", help="write results.json only")
    opts = ap.parse_args()
    runs, warmup, rss_runs, fail_runs = (3, 1, 2, 2) if opts.quick else (10, 3, 5, 5)
    cap = opts.cap
    OUT.mkdir(exist_ok=True)

    ok = Server("ok")
    local = Server("local")
    hang = Server("hang", "--hang")
    refused = f"http://127.0.0.1:{free_port()}"
    c = Clients(ok.url, local.url, refused, hang.url, "http://apex.invalid:4000")
    tools = ("brain", "llm", "sgpt")
    results: dict = {
        "machine": machine(),
        "versions": versions(),
        "quick": opts.quick,
        "cap_s": cap,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    try:
        log("start-up: --help")
        py = OUT / "venv-brain" / "bin" / "python"
        startup = {
            "python -c pass": hyperfine(
                "python", [str(py), "-c", "pass"], c.base_env("curl"), runs, warmup
            ),
            "curl --help": hyperfine("curl-help", c.help("curl"), c.base_env("curl"), runs, warmup),
        }
        for t in tools:
            startup[f"{t} --help"] = hyperfine(f"{t}-help", c.help(t), c.env(t), runs, warmup)
        results["startup"] = startup

        log("one answer, end to end")
        answers: dict = {}
        for stream in (False, True):
            mode = "stream" if stream else "no-stream"
            for t in ("curl", *tools):
                cmd = c.answer(t, stream)
                if cmd is None:
                    continue
                answers[f"{t} {mode}"] = hyperfine(
                    f"{t}-{mode}",
                    cmd,
                    c.env(t) if t != "curl" else c.base_env("curl"),
                    runs,
                    warmup,
                )
        # brain with no cached probe verdict: every run also probes Apex (GET /health/liveliness).
        brain_cache = c.homes["brain"] / ".cache" / "brain"
        answers["brain stream, probe not cached"] = hyperfine(
            "brain-stream-cold",
            c.answer("brain", True),
            c.env("brain"),
            runs,
            warmup,
            prepare=f"rm -rf {brain_cache}",
        )
        results["answers"] = answers

        log("peak memory")
        rss: dict = {}
        rss["curl stream"] = peak_rss(c.answer("curl", True), c.base_env("curl"), rss_runs)
        rss["brain --help"] = peak_rss(c.help("brain"), c.env("brain"), rss_runs)
        for t in tools:
            for stream in (False, True):
                cmd = c.answer(t, stream)
                if cmd:
                    rss[f"{t} {'stream' if stream else 'no-stream'}"] = peak_rss(
                        cmd, c.env(t), rss_runs
                    )
        results["rss"] = rss
        results["rss_input"] = input_sizes(c, rss_runs)

        log("stored rows: 10 against 100,000")
        results["rows"] = store_sizes(c, runs, warmup)

        log("unreachable endpoints: time to the first answer byte")
        failures: dict = {}
        for case in ("refused", "unresolvable", "hang"):
            failures[f"brain {case}"] = repeat_first_byte(
                c.answer("brain", True, case),
                c.env("brain", case),
                cap,
                fail_runs,
                fresh_cache=brain_cache,
            )
            if case != "hang":
                # A second command within FAIL_TTL (10 s) reuses the cached verdict.
                first_byte(
                    c.answer("brain", True, case),
                    c.env("brain", case),
                    cap,
                    fresh_cache=brain_cache,
                )
                failures[f"brain {case}, verdict cached"] = repeat_first_byte(
                    c.answer("brain", True, case), c.env("brain", case), cap, fail_runs
                )
        # Peers: refused and unresolvable in sequence; the hanging case in parallel (they sleep).
        for case in ("refused", "unresolvable"):
            for t in ("curl", "llm", "sgpt"):
                cmd = c.answer(t, True, case)
                env = c.env(t, case) if t != "curl" else c.base_env("curl")
                failures[f"{t} {case}"] = repeat_first_byte(cmd, env, cap, max(2, fail_runs // 2))
        hang_results: dict = {}

        def hang_peer(t: str) -> None:
            cmd = c.answer(t, True, "hang")
            env = c.env(t, "hang") if t != "curl" else c.base_env("curl")
            hang_results[f"{t} hang"] = repeat_first_byte(cmd, env, cap, 1)

        threads = [threading.Thread(target=hang_peer, args=(t,)) for t in ("curl", "llm", "sgpt")]
        for i, th in enumerate(threads):
            th.start()
            time.sleep(0.5 * (i + 1))
        for th in threads:
            th.join()
        failures.update(hang_results)
        results["failures"] = failures

        log("netns blackhole")
        results["blackhole"] = blackhole(c, cap, fail_runs)

        log("import profile")
        phases = {
            "import brain.quick (what a cached --help imports)": "import brain.quick",
            "import click": "import click",
            "import brain.cli": "import brain.cli",
            "import brain.client (brain's HTTP, with brain.plainhttp)": "import brain.client",
            "import httpx (https and the internet only, as brain imports it)": (
                "import brain, httpx"
            ),
            "import platformdirs (macOS and Windows only)": "import platformdirs",
            "import sqlite3": "import sqlite3",
            "import brain.exchange": "import brain.exchange",
            "import keyring; keyring.get_keyring() (a key not in env)": (
                "import keyring; keyring.get_keyring()"
            ),
        }
        results["phases"] = {
            name: hyperfine(f"phase-{i}", [str(py), "-c", code], c.env("brain"), runs, warmup)
            for i, (name, code) in enumerate(phases.items())
        }
        # One answer first: after the unreachable cases, brain's first answer from Apex again
        # is a recovery (a Slack notice is due, so the keyring is asked for the webhook); the
        # profile is of an ordinary answer.
        subprocess.run(
            c.answer("brain", True),
            env=c.env("brain"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        results["imports"] = {
            "help": importtime(py, c.env("brain"), ["--help"]),
            "answer": importtime(py, c.env("brain"), ["ask", PROMPT]),
            "answer_json": importtime(py, c.env("brain"), ["--json", "ask", PROMPT]),
        }
    finally:
        for s in (ok, local, hang):
            s.stop()
    results["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    log(f"wrote {OUT / 'results.json'}")
    if not opts.no_readme:
        import readme

        (HERE / "README.md").write_text(readme.render(results, GOALS))
        log(f"wrote {HERE / 'README.md'}")


def fill_store(template: Path, db: Path, rows: int) -> None:
    """A copy of `template` (a brain.db brain wrote) holding exactly `rows` exchanges: answered
    ones a minute apart (a 200-byte question, a 1 KiB answer), the newest three queued."""
    import sqlite3

    db.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(template)
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    cols = [r[1] for r in dst.execute("PRAGMA table_info(exchanges)") if r[1] != "id"]
    fixed = {
        "time": "strftime('%s','now') - n.k * 60",
        "status": "CASE WHEN n.k <= 3 THEN 'queued' ELSE 'answered' END",
        "input": ":q",
        "answer": "CASE WHEN n.k <= 3 THEN NULL ELSE :a END",
    }
    select = ", ".join(fixed.get(c, f"t.{c}") for c in cols)
    with dst:
        keep = dst.execute("SELECT max(id) FROM exchanges WHERE status='answered'").fetchone()[0]
        dst.execute("DELETE FROM exchanges WHERE id != ?", (keep,))
        dst.execute(
            "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < :rows) "
            f"INSERT INTO exchanges ({', '.join(cols)}) SELECT {select} "
            "FROM n, (SELECT * FROM exchanges WHERE id = :keep) t",
            {"rows": rows - 1, "keep": keep, "q": "q" * 200, "a": "a" * 1024},
        )
    dst.execute("VACUUM")
    dst.close()


def store_sizes(c: Clients, runs: int, warmup: int) -> dict:
    """history -n 5, queue list, --help and one answer with 10 and with 100,000 stored rows."""
    template = c.homes["brain"] / ".local" / "share" / "brain" / "brain.db"
    out: dict = {}
    for rows in (10, 100_000):
        home = OUT / f"home-brain-rows{rows}"
        shutil.rmtree(home, ignore_errors=True)
        fill_store(template, home / ".local" / "share" / "brain" / "brain.db", rows)
        env = {
            **c.env("brain"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        brain = str(c.bin["brain"])
        for name, cmd in {
            "history -n 5": [brain, "history", "-n", "5"],
            "queue list": [brain, "queue", "list"],
            "--help": [brain, "--help"],
            "one answer (stream)": c.answer("brain", True),
        }.items():
            slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
            out[f"{name} · {rows:,} rows"] = hyperfine(f"rows{rows}-{slug}", cmd, env, runs, warmup)
    return out


def input_sizes(c: Clients, runs: int) -> dict:
    """Peak memory of one answer with piped input from 4 KiB up to brain's cap (4 MiB)."""
    out: dict = {}
    ascii_line = b"The quick brown fox jumps over the lazy dog, again and again.\n"
    # Curly quotes and dashes: Python holds such a text at 2 bytes a character, not 1.
    wide_line = "“Naïve” café notes — über straße, résumé; again and again.\n".encode()
    cases = (
        ("4 KiB", 4 << 10, ascii_line),
        ("1 MiB", 1 << 20, ascii_line),
        ("4 MiB (the cap)", 4 << 20, ascii_line),
        ("4 MiB of text with “ ” and —", 4 << 20, wide_line),
    )
    for label, size, line in cases:
        path = OUT / f"input-{size}-{len(line)}.txt"
        data = (line * (size // len(line) + 1))[:size]
        path.write_bytes(data.decode("utf-8", "ignore").encode())  # no character cut in two
        out[f"brain ask, {label} piped in"] = peak_rss(
            [str(c.bin["brain"]), "ask"], c.env("brain"), runs, stdin=path
        )
    return out


NS = "brainbench"
BLACKHOLE = "10.77.0.2"  # a neighbour that never answers: frames leave, nothing comes back


def blackhole(c: Clients, cap: float, runs: int) -> dict:
    """Apex's address swallows packets (a dead Tailscale peer): a network namespace where
    frames to BLACKHOLE leave through a veth pair and vanish. Needs root; skipped otherwise."""

    def ns(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", NS, *cmd], capture_output=True, text=True)

    subprocess.run(["ip", "netns", "delete", NS], capture_output=True)
    made = subprocess.run(["ip", "netns", "add", NS], capture_output=True, text=True)
    if made.returncode != 0:
        return {
            "skipped": "network namespaces are not permitted here ("
            f"{(made.stderr or made.stdout).strip()[:120]}); run bench/run.sh as root"
        }
    local = None
    try:
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "bb0", "type", "veth", "peer", "name", "bb1"],
            ["ip", "addr", "add", "10.77.0.1/24", "dev", "bb0"],
            ["ip", "link", "set", "bb0", "up"],
            ["ip", "link", "set", "bb1", "up"],
            [
                "ip",
                "neigh",
                "add",
                BLACKHOLE,
                "lladdr",
                "02:00:00:00:00:02",
                "dev",
                "bb0",
                "nud",
                "permanent",
            ],
        ):
            r = ns(*cmd)
            if r.returncode != 0:
                return {
                    "skipped": f"could not build the namespace: {' '.join(cmd)}: "
                    f"{r.stderr.strip()[:120]}"
                }
        port_file = OUT / "ns-local.port"
        port_file.unlink(missing_ok=True)
        local = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NS,
                sys.executable,
                str(HERE / "fake_openai.py"),
                "--port-file",
                str(port_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        url = f"http://{BLACKHOLE}:4000"
        wrap = ["ip", "netns", "exec", NS]
        env = c.env("brain", "ok")
        env.update(BRAIN_APEX_URL=url, BRAIN_LOCAL_URL=f"http://127.0.0.1:{port_file.read_text()}")
        brain_cache = c.homes["brain"] / ".cache" / "brain"
        out = {
            "brain blackhole": repeat_first_byte(
                [*wrap, *c.answer("brain", True)], env, cap, runs, fresh_cache=brain_cache
            )
        }
        peers: dict = {}

        def peer(t: str) -> None:
            if t == "llm":
                cmd = [*wrap, str(c.bin["llm"]), "-m", "mock-blackhole", PROMPT]
            else:
                cmd = [*wrap, *c.answer(t, True, "ok")]
            penv = c.env(t, "ok") if t != "curl" else c.base_env("curl")
            if t == "sgpt":
                penv["API_BASE_URL"] = url + "/v1"
            if t == "curl":
                cmd = [x.replace(c.urls["ok"], url) for x in cmd]
            peers[f"{t} blackhole"] = repeat_first_byte(cmd, penv, cap, 1)

        threads = [threading.Thread(target=peer, args=(t,)) for t in ("curl", "llm", "sgpt")]
        for th in threads:
            th.start()
            time.sleep(0.5)
        for th in threads:
            th.join()
        out.update(peers)
        return out
    finally:
        if local is not None:
            local.terminate()
            local.wait(5)
        subprocess.run(["ip", "netns", "delete", NS], capture_output=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
