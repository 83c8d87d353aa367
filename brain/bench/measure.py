"""Measuring streamed answers: first-token time, decode rate, totals, tokens, who answered.

Every figure is taken on this side of the wire with one clock (time.perf_counter):
- first token: from sending the request to the first streamed piece of text;
- decode tokens/s: the tokens after the first piece, over the time from the first piece to the
  last. The token count is the server's `usage.completion_tokens` when it sends one (scaled to
  the pieces after the first), else one token per streamed piece;
- total: from sending the request to the end of the stream.
Runs are interleaved (run 1 of every prompt and target, then run 2, …) so a machine that
slows down part-way does not penalise one target. Failures are recorded with their reason,
never dropped.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from brain import __version__
from brain.backends.base import Backend
from brain.bench.prompts import BenchPrompt
from brain.client import Message
from brain.errors import BrainError, ConfigError, UsageError
from brain.settings import Settings
from brain.tasks import Task

if TYPE_CHECKING:
    from brain.app import App

APEX, LOCAL = "apex", "local"
OK, PARTIAL, FAILED = "ok", "partial", "failed"


@dataclass(frozen=True)
class Target:
    backend: str  # "apex" or "local"
    name: str  # the route on Apex, or the local model

    @property
    def label(self) -> str:
        return f"{self.backend} {self.name}"


@dataclass
class Cell:
    """One prompt on one target: what each run sends."""

    prompt: BenchPrompt
    target: Target
    task: Task
    messages: list[Message]


@dataclass
class Run:
    prompt: str
    target: str
    backend: str
    name: str
    run: int
    status: str = FAILED
    reason: str = ""
    fix: str = ""  # what to do about a failure, when brain knows
    first_token_ms: float | None = None
    total_ms: float | None = None
    decode_tps: float | None = None
    tps_source: str = ""  # "server" (usage.completion_tokens) or "stream" (one per piece)
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_out_source: str = ""
    pieces: int = 0
    model: str = ""
    answer: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Judgement:
    prompt: str
    target: str
    run: int
    judge_route: str
    judge_model: str = ""
    scores: dict[str, int] = field(default_factory=dict)
    overall: int | None = None
    note: str = ""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    started: dt.datetime
    finished: dt.datetime | None
    machine: dict[str, Any]
    setup: dict[str, Any]
    prompts: list[BenchPrompt]
    cells: list[Cell]
    runs: list[Run]
    runs_per_cell: int
    warmup: int
    judgements: list[Judgement] = field(default_factory=list)
    judge_route: str | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.status == OK]


def decode_rate(times: list[float], server_tokens: int | None) -> tuple[float | None, str]:
    """Tokens per second after the first piece, and where the token count came from.

    `times` are the arrival times (seconds) of the streamed pieces. A server count is used when
    it is plausible (at least one token a piece); the first piece's share of it is taken off,
    since the clock starts when that piece arrives.
    """
    pieces = len(times)
    if pieces < 2:
        return None, ""
    span = times[-1] - times[0]
    if span <= 0:
        return None, ""
    if server_tokens is not None and server_tokens >= pieces:
        return server_tokens * (pieces - 1) / pieces / span, "server"
    return (pieces - 1) / span, "stream"


def measure(
    endpoint: Backend,
    model: str,
    messages: list[Message],
    *,
    temperature: float | None,
    max_tokens: int | None,
    run: Run,
) -> Run:
    """Send one streamed request and fill `run` with what was measured (or why it failed)."""
    from brain import backends
    from brain.secrets import redact

    times: list[float] = []

    def on_delta(_text: str) -> None:
        times.append(time.perf_counter())

    start = time.perf_counter()
    try:
        answer = backends.chat(
            endpoint,
            model,
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            on_delta=on_delta,
        )
    except BrainError as exc:
        run.status = FAILED
        run.reason = redact(exc.message)
        run.fix = redact(exc.fix or "")
        run.total_ms = _ms(time.perf_counter() - start)
        return run
    end = time.perf_counter()
    run.total_ms = _ms(end - start)
    run.pieces = len(times)
    run.first_token_ms = _ms(times[0] - start) if times else None
    run.model = answer.model
    run.answer = answer.text
    run.tokens_in = answer.usage.get("prompt_tokens")
    server_out = answer.usage.get("completion_tokens")
    if server_out is not None:
        run.tokens_out, run.tokens_out_source = server_out, "server"
    elif times:
        run.tokens_out, run.tokens_out_source = len(times), "stream"
    run.decode_tps, run.tps_source = decode_rate(times, server_out)
    if answer.partial and "max_tokens" in answer.partial_reason:
        # A capped answer is still a clean measurement of speed: kept, with the note.
        run.status = OK if times else FAILED
        run.reason = answer.partial_reason
    elif answer.partial:
        run.status = PARTIAL
        run.reason = redact(answer.partial_reason)
    elif not times:
        run.status = FAILED
        run.reason = f"{endpoint.name} answered with no text"
    else:
        run.status = OK
    return run


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def plan(
    settings: Settings,
    tasks: dict[str, Task],
    prompts: list[BenchPrompt],
    *,
    routes: list[str] | None,
    apex: bool,
    local: bool,
    local_model: str,
) -> list[Cell]:
    """Every prompt on every target. Without `routes`, each prompt runs on its task's route."""
    from brain.material import Material, compose

    if not prompts:
        raise UsageError("no prompts to run.", "Drop --only, or check the names it gives.")
    if not apex and not local:
        raise UsageError(
            "nothing to measure: Apex is left out and --local was not given.",
            "Give --local to measure this laptop's model, or drop --offline.",
        )
    cells = []
    for p in prompts:
        task = tasks.get(p.task)
        if task is None:
            raise ConfigError(
                f"prompt `{p.name}` ({p.source}) names the task `{p.task}`, which brain does not have",
                f"Use one of: {', '.join(tasks)}.",
            )
        _, messages = compose(task, p.text, [Material(n, t) for n, t in p.material])
        targets = []
        if apex:
            targets += [Target(APEX, r) for r in (routes or [task.route])]
        if local:
            targets.append(Target(LOCAL, local_model))
        cells += [Cell(p, t, task, messages) for t in targets]
    return cells


ProgressFn = Callable[[int, int, str, Run | None], None]


def run_bench(
    app: App,
    cells: list[Cell],
    *,
    runs: int,
    warmup: int = 0,
    on_progress: ProgressFn = lambda _done, _total, _label, _run: None,
    notice: Callable[[str], None] = lambda _m: None,
) -> BenchResult:
    """Run every cell `runs` times (after `warmup` unrecorded runs per target).

    Apex is probed once first: when it cannot be reached its runs fail at once with the reason,
    and the local runs still go ahead. A key or route problem stops that cell's other runs
    (they would fail the same way). Ctrl-C stops the benchmark and keeps what was measured.
    """
    import httpx  # noqa: F401  imported before any clock starts, so no run pays for it

    if runs < 1:
        raise UsageError("--runs must be 1 or more.")
    result = BenchResult(
        started=dt.datetime.now().astimezone(),
        finished=None,
        machine=machine(),
        setup=setup(app.settings, cells),
        prompts=_unique_prompts(cells),
        cells=cells,
        runs=[],
        runs_per_cell=runs,
        warmup=warmup,
    )
    backends, dead = _backends(app, cells, result, notice)
    bench = _Bench(backends, dead, on_progress)
    bench.total = len(cells) * runs + warmup * len({c.target for c in cells})
    try:
        bench.warm_up(cells, warmup)
        bench.total = bench.done + len(cells) * runs
        for n in range(1, runs + 1):
            for i, cell in enumerate(cells):
                bench.one(i, cell, n, runs, result.runs)
    except KeyboardInterrupt:
        result.interrupted = True
        result.notes.append("The benchmark was interrupted; the report has the runs finished.")
    result.finished = dt.datetime.now().astimezone()
    return result


def _backends(
    app: App, cells: list[Cell], result: BenchResult, notice: Callable[[str], None]
) -> tuple[dict[str, Backend], dict[str, str]]:
    """The backends the cells use, and those found dead before anything was sent (why)."""
    settings = app.settings
    backends: dict[str, Backend] = {}
    dead: dict[str, str] = {}
    if any(c.target.backend == APEX for c in cells):
        if not settings.apex_url:
            raise ConfigError(
                "Apex is not configured (apex.url is empty), so its routes cannot be measured.",
                "Set it with `brain config set apex.url http://apex:4000` (or BRAIN_APEX_URL), "
                "or measure only this laptop with `brain bench --offline --local`.",
            )
        backends[APEX] = app.backend("apex")
        verdict = backends[APEX].probe()  # type: ignore[attr-defined]
        if not verdict.ok:
            dead[APEX] = f"Apex at {settings.apex_url}: {verdict.reason}"
            notice(f"{dead[APEX]}; its runs are recorded as failed.")
            result.notes.append(dead[APEX])
    if any(c.target.backend == LOCAL for c in cells):
        backends[LOCAL] = app.backend("local")
    return backends, dead


class _Bench:
    """The runs, in order, with the progress count and the cells that stopped for good."""

    def __init__(
        self, backends: dict[str, Backend], dead: dict[str, str], on_progress: ProgressFn
    ) -> None:
        self.backends, self.dead, self.on_progress = backends, dead, on_progress
        self.done = 0
        self.total = 0
        self.stopped: dict[int, tuple[str, str]] = {}  # cell -> why its other runs were not sent

    def _measure(self, cell: Cell, run: Run) -> None:
        measure(
            self.backends[cell.target.backend],
            cell.target.name,
            cell.messages,
            temperature=cell.task.temperature,
            max_tokens=cell.prompt.max_tokens or cell.task.max_tokens,
            run=run,
        )

    def warm_up(self, cells: list[Cell], warmup: int) -> None:
        warmed: set[Target] = set()
        for cell in cells:
            if cell.target in warmed or cell.target.backend in self.dead:
                continue
            warmed.add(cell.target)
            for _ in range(warmup):
                self.on_progress(self.done, self.total, f"warm-up · {cell.target.label}", None)
                self._measure(cell, Run(cell.prompt.name, cell.target.label, "", "", 0))
                self.done += 1

    def one(self, i: int, cell: Cell, n: int, runs: int, into: list[Run]) -> None:
        """Run `cell` once (or record why not) into `into`, kept before progress is told."""
        label = f"{cell.prompt.name} · {cell.target.label} · run {n}/{runs}"
        self.on_progress(self.done, self.total, label, None)
        run = Run(cell.prompt.name, cell.target.label, cell.target.backend, cell.target.name, n)
        if cell.target.backend in self.dead:
            run.reason = self.dead[cell.target.backend]
        elif i in self.stopped:
            run.reason = f"not sent: an earlier run failed with: {self.stopped[i][0]}"
            run.fix = self.stopped[i][1]
        else:
            self._measure(cell, run)
            if run.status == FAILED and _permanent(run.reason):
                self.stopped[i] = (run.reason, run.fix)
        into.append(run)
        self.done += 1
        self.on_progress(self.done, self.total, label, run)


def _permanent(reason: str) -> bool:
    # A rejected key or an unknown route fails every run the same way; say it once.
    low = reason.lower()
    return "rejected the key" in low or "has no route" in low or "no model" in low


def _unique_prompts(cells: list[Cell]) -> list[BenchPrompt]:
    seen: dict[str, BenchPrompt] = {}
    for c in cells:
        seen.setdefault(c.prompt.name, c.prompt)
    return list(seen.values())


def machine() -> dict[str, Any]:
    """This machine, for the report: the figures mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        pass
    return {
        "host": platform.node(),
        "os": platform.platform(terse=True),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "brain": __version__,
    }


def setup(settings: Settings, cells: list[Cell]) -> dict[str, Any]:
    backends = {c.target.backend for c in cells}
    out: dict[str, Any] = {}
    if APEX in backends:
        out["apex_url"] = settings.apex_url
        out["routes"] = sorted({c.target.name for c in cells if c.target.backend == APEX})
    if LOCAL in backends:
        out["local_url"] = settings.local_url
        out["local_model"] = next(c.target.name for c in cells if c.target.backend == LOCAL)
    return out
