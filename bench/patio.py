"""Patio-mode detection budget: what an unreachable Apex adds before the local answer begins.

Runs the installed `brain` against the fakes of tests/fakes.py (a local Ollama stand-in that
answers at once) with Apex refused, unresolvable, blackholed (a network namespace whose
replies are dropped; needs root) and hanging (accepts, never answers). Measures, from the
command's start, the time to the first byte of the answer on stdout; the baseline is
`brain --offline` (no Apex at all), so "added" is what noticing Apex's absence costs.
Also: a second command within the failed verdict's lifetime, and how soon a returning Apex
is used. Writes bench/patio.md.

    .venv/bin/python bench/patio.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes import UNRESOLVABLE_URL, FakeApex, FakeOllama, HangingListener, refused_url  # noqa: E402
from netfaults import Unavailable, blackhole  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

BRAIN = str(Path(sys.executable).parent / "brain")


def first_byte(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    proc = subprocess.Popen(
        [BRAIN, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    got = proc.stdout.read(1)
    elapsed = time.monotonic() - start
    proc.wait()
    if not got:
        raise RuntimeError(f"brain {' '.join(args)} printed nothing (exit {proc.returncode})")
    return elapsed


def series(
    env: dict[str, str], runs: int, cache: Path, *args: str, fresh: bool = True
) -> list[float]:
    out = []
    for _ in range(runs):
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
        out.append(first_byte(env, *args))
    return out


def frozen(
    env: dict[str, str], runs: int, cache: Path, home: Path
) -> tuple[list[float], list[float]]:
    """Apex answers once, is frozen with SIGSTOP, then two commands: their first answer bytes."""
    import signal

    fake = ROOT / "bench" / "fake_openai.py"
    port_file = home / "frozen-port"
    proc = subprocess.Popen(
        [sys.executable, str(fake), "--port", "0", "--port-file", str(port_file), "--tokens", "3"],
        stderr=subprocess.DEVNULL,  # the connections brain gave up on end in broken pipes there
    )
    try:
        while not (port_file.exists() and port_file.read_text()):
            time.sleep(0.05)
        fenv = {**env, "BRAIN_APEX_URL": f"http://127.0.0.1:{port_file.read_text()}"}
        first, again = [], []
        for _ in range(runs):
            shutil.rmtree(cache, ignore_errors=True)
            proc.send_signal(signal.SIGCONT)
            first_byte(fenv, "dump", "x")  # answered by Apex
            proc.send_signal(signal.SIGSTOP)
            first.append(first_byte(fenv, "dump", "x"))
            again.append(first_byte(fenv, "dump", "x"))
        return first, again
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def fmt(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ms ({ms[0]:.0f}–{ms[-1]:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "patio.md"))
    ns = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        servers = []
        for _ in range(2):
            srv = HTTPServer(host="127.0.0.1", port=0)
            srv.start()
            stack.callback(srv.stop)
            servers.append(srv)
        ollama = FakeOllama(servers[0])
        apex = FakeApex(servers[1])
        apex.answer("brain_dump", ["from apex"])
        hang = HangingListener()
        stack.callback(hang.close)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRAIN_")},
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "c"),
            "XDG_DATA_HOME": str(home / "d"),
            "XDG_CACHE_HOME": str(home / "k"),
            "BRAIN_LOCAL_URL": ollama.url,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        cache = home / "k"
        rows: list[tuple[str, str, str]] = []
        base = series(env, ns.runs, cache, "--offline", "dump", "x")
        base_med = statistics.median(base)
        rows.append(("no Apex at all (`--offline`, the baseline)", fmt(base), "—"))
        apex_ok = series({**env, "BRAIN_APEX_URL": apex.url}, ns.runs, cache, "dump", "x")
        rows.append(("Apex up (fake LiteLLM on loopback, fresh probe)", fmt(apex_ok), "—"))

        faults: dict[str, str | None] = {
            "refused port": refused_url(),
            "unresolvable name (`apex.invalid`)": UNRESOLVABLE_URL,
            "hanging listener (accepts, never answers)": hang.url,
        }
        blackhole_note = ""
        try:
            faults["blackholed host (netns, replies dropped)"] = stack.enter_context(blackhole())
        except Unavailable as exc:
            blackhole_note = f"Blackholed host not measured: {exc}."
        cached_rows = []
        for name, url in faults.items():
            fenv = {**env, "BRAIN_APEX_URL": str(url)}
            times = series(fenv, ns.runs, cache, "dump", "x")
            added = (statistics.median(times) - base_med) * 1000
            rows.append((f"Apex: {name}", fmt(times), f"{added:+.0f} ms"))
            # A second command within the failed verdict's lifetime: no probe at all.
            shutil.rmtree(cache, ignore_errors=True)
            first_byte(fenv, "dump", "x")
            again = series(fenv, ns.runs, cache, "dump", "x", fresh=False)
            cached_rows.append(
                (
                    f"Apex: {name}",
                    fmt(again),
                    f"{(statistics.median(again) - base_med) * 1000:+.0f} ms",
                )
            )

        # A frozen Apex (SIGSTOP: a stopped proxy, a hung box, its port still open) right after
        # a success: the first command, and the next one.
        frozen_first, frozen_again = frozen(env, ns.runs, cache, home)
        rows.append(
            (
                "Apex: frozen right after a success (SIGSTOP)",
                fmt(frozen_first),
                f"{(statistics.median(frozen_first) - base_med) * 1000:+.0f} ms",
            )
        )
        cached_rows.append(
            (
                "Apex: frozen (SIGSTOP)",
                fmt(frozen_again),
                f"{(statistics.median(frozen_again) - base_med) * 1000:+.0f} ms",
            )
        )

        # Apex comes back: how soon is it used? A failed verdict lives at most 10 s.
        shutil.rmtree(cache, ignore_errors=True)
        first_byte({**env, "BRAIN_APEX_URL": apex.url}, "dump", "x")
        cache_file = cache / "brain" / "apex-probe.json"
        verdict = json.loads(cache_file.read_text())
        # As if Apex had just timed out (blackholed): the kind of failure that is cached.
        verdict.update(
            ok=False, reason="timed out", at=time.time(), latency_ms=1000, kind="timeout"
        )
        cache_file.write_text(json.dumps(verdict))
        back_at = time.monotonic()
        used_after = None
        while time.monotonic() - back_at < 30:
            r = subprocess.run(
                [BRAIN, "dump", "x", "--json"],
                env={**env, "BRAIN_APEX_URL": apex.url},
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if r.returncode == 0 and json.loads(r.stdout)["backend"] == "apex":
                used_after = time.monotonic() - back_at
                break
            time.sleep(0.5)

    lines = [
        "# Patio mode: what an unreachable Apex costs",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({os.cpu_count()} cores), "
        f"Python {platform.python_version()}, load average {load:.1f} at the start (the cores are "
        f"shared), by `bench/patio.py --runs {ns.runs}`. Time from the "
        "command's start to the first byte of the answer on stdout (median, min–max); the local "
        "model is a fake that answers at once, so the figures are brain's own.",
        "",
        "| Apex is | first answer byte | added over `--offline` |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "A second command right after (a timed-out verdict is cached and skips the probe; a "
        "refused or unresolvable one is never kept, so it is simply probed again):",
        "",
        "| Apex is | first answer byte | added over `--offline` |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in cached_rows],
        "",
        (
            f"Apex back: with a timed-out verdict just cached, commands every 0.5 s were answered "
            f"by Apex again after {used_after:.1f} s (a timed-out verdict lives at most 10 s; "
            "after a refused or unresolvable one, the very next command probes again)."
            if used_after is not None
            else "Apex back: not used again within 30 s — a bug."
        ),
    ]
    if blackhole_note:
        lines += ["", blackhole_note]
    Path(ns.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
