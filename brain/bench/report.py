"""What `brain bench` leaves behind: the summary table, the Markdown report, the SVG chart and
the `--json` object (version 1, documented in docs/bench.md).

Pure functions from a BenchResult to text; the command decides where it goes. The chart is
written by hand (a few rects and lines), so no plotting library is needed.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from brain.bench.measure import APEX, OK, BenchResult, Judgement, Run

JSON_VERSION = 1


@dataclass
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: list[float | None]) -> Spread | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return Spread(
        round(statistics.median(got), 1), round(min(got), 1), round(max(got), 1), len(got)
    )


@dataclass
class Summary:
    prompt: str
    target: str
    backend: str
    name: str
    runs: int
    ok: int
    first_token_ms: Spread | None
    decode_tps: Spread | None
    total_ms: Spread | None
    tokens_in: float | None
    tokens_out: float | None
    tokens_counted_by: str  # "server", "stream" or "" (no answer)
    models: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def summarise(result: BenchResult) -> list[Summary]:
    """One row per prompt and target, medians over the runs that answered completely."""
    rows = []
    for cell in result.cells:
        runs = [
            r for r in result.runs if r.prompt == cell.prompt.name and r.target == cell.target.label
        ]
        good = [r for r in runs if r.status == OK]
        t_in = spread([r.tokens_in for r in good])
        t_out = spread([r.tokens_out for r in good])
        sources = {r.tokens_out_source for r in good}
        rows.append(
            Summary(
                prompt=cell.prompt.name,
                target=cell.target.label,
                backend=cell.target.backend,
                name=cell.target.name,
                runs=len(runs),
                ok=len(good),
                first_token_ms=spread([r.first_token_ms for r in good]),
                decode_tps=spread([r.decode_tps for r in good]),
                total_ms=spread([r.total_ms for r in good]),
                tokens_in=t_in.median if t_in else None,
                tokens_out=t_out.median if t_out else None,
                tokens_counted_by="server" if sources == {"server"} else ("stream" if good else ""),
                models=sorted({r.model for r in good if r.model}),
                failures=[f"run {r.run}: {r.reason}" for r in runs if r.status != OK],
            )
        )
    return rows


# ----- formatting ---------------------------------------------------------------------------
def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def tps(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def with_range(s: Spread | None, fmt: Any) -> str:
    if s is None:
        return "—"
    if s.n == 1 or s.low == s.high:
        return fmt(s.median)
    low, high = fmt(s.low), fmt(s.high)
    unit = high.rpartition(" ")[2] if " " in high else ""
    if unit and low.endswith(" " + unit):
        low = low[: -len(unit) - 1]  # 237–238 ms, not 237 ms–238 ms
    return f"{fmt(s.median)} ({low}–{high})"


def count(value: float | None, source: str = "server") -> str:
    if value is None:
        return "?"
    text = f"{value:.0f}"
    return text if source == "server" else f"≈{text}"


def speed_cells(s: Summary) -> list[str]:
    """One summary's speed figures, as the terminal table and the report both show them."""
    return [
        s.prompt,
        s.target,
        ", ".join(s.models) or "—",
        with_range(s.first_token_ms, ms),
        with_range(s.decode_tps, tps),
        with_range(s.total_ms, ms),
        f"{count(s.tokens_in)}/{count(s.tokens_out, s.tokens_counted_by)}",
        f"{s.ok}/{s.runs}",
    ]


def table_rows(
    rows: list[Summary], judgements: list[Judgement] | None = None
) -> tuple[list[str], list[list[str]]]:
    """The terminal table: medians, with the range in brackets (and the judge's overall score)."""
    columns = ["prompt", "target", "answered by", "first token", "tok/s", "total", "in/out", "ok"]
    judged = {(j.prompt, j.target): j for j in judgements or []}
    if judgements:
        columns.append("judge (1-5)")
    out = []
    for s in rows:
        j = judged.get((s.prompt, s.target))
        extra = []
        if judgements:
            extra = ["—" if j is None or j.overall is None else str(j.overall)]
        out.append([*speed_cells(s), *extra])
    return columns, out


# ----- Markdown -----------------------------------------------------------------------------
def default_path(directory: Path, day: dt.date) -> Path:
    """Gemma_Benchmark_YYYY-MM-DD.md, or -2, -3 … so an earlier run of the day is kept."""
    base = f"Gemma_Benchmark_{day.isoformat()}"
    path = directory / f"{base}.md"
    n = 2
    while path.exists() or path.with_suffix(".svg").exists():
        path = directory / f"{base}-{n}.md"
        n += 1
    return path


def markdown(result: BenchResult, chart_name: str | None) -> str:
    # long: the report top to bottom, section after section, as it is read.
    rows = summarise(result)
    m = result.machine
    took = (result.finished or result.started) - result.started
    targets = sorted({c.target.label for c in result.cells})
    lines = [
        f"# Gemma benchmark — {result.started.date().isoformat()}",
        "",
        f"{len(result.prompts)} prompts × {len(targets)} targets × {result.runs_per_cell} runs"
        + (f" (after {result.warmup} warm-up run(s) per target)" if result.warmup else "")
        + f"; started {result.started.strftime('%H:%M')}, took {_duration(took)}."
        + (" **Interrupted**: only the runs that finished are here." if result.interrupted else ""),
        "",
        "## Machine and models",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {m['host']} — {m['os']}; {m['cpu']}, {m['cores']} cores"
        + (f", {m['memory_gib']} GiB RAM" if m.get("memory_gib") else "")
        + " |",
        f"| software | brain {m['brain']}, Python {m['python']} |",
    ]
    setup = result.setup
    if "apex_url" in setup:
        lines.append(f"| Apex | {setup['apex_url']}; routes {', '.join(setup['routes'])} |")
    if "local_url" in setup:
        lines.append(f"| local | {setup['local_url']}, model {setup['local_model']} |")
    answered: dict[str, set[str]] = {}
    for r in result.ok_runs():
        if r.model:
            answered.setdefault(r.target, set()).add(r.model)
    for target, models in sorted(answered.items()):
        lines.append(f"| {_cell(target)} answered by | {_cell(', '.join(sorted(models)))} |")
    for note in result.notes:
        lines.append(f"| note | {_cell(note)} |")
    lines += [
        "",
        "## Speed",
        "",
        "Medians over the runs that answered completely; the range (lowest–highest) in brackets.",
        "",
        "| prompt | target | answered by | first token | decode tok/s | total | tokens in/out | runs ok |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in rows:
        lines.append("| " + " | ".join(_cell(x) for x in speed_cells(s)) + " |")
    if chart_name:
        lines += ["", f"![Decode tokens per second, median and range]({chart_name})"]
    lines += [
        "",
        "How the figures are taken: *first token* is the time from sending the request to the "
        "first streamed piece of text (it includes the connection, the prompt's processing and, "
        "on a cold model, its loading). *Decode tok/s* counts the tokens after the first piece "
        "over the time from the first piece to the last. Token counts are the server's "
        "(`usage`) where it sent them; ≈ marks a count of streamed pieces instead. *Total* is "
        "request to end of stream. Each run streams; runs are interleaved across targets.",
    ]
    failures = [(s, f) for s in rows for f in s.failures]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- **{s.prompt}** on {s.target}, {_cell(f)}" for s, f in failures]
    if result.judge_route:
        lines += _judgement_section(result)
    lines += ["", "## Answers", "", "The first complete answer of each prompt and target."]
    prompts = {p.name: p for p in result.prompts}
    for cell in result.cells:
        p = prompts[cell.prompt.name]
        first = next(
            (
                r
                for r in result.runs
                if r.prompt == p.name and r.target == cell.target.label and r.status == OK
            ),
            None,
        )
        lines += ["", f"### {p.name} · {cell.target.label}", ""]
        if first is None:
            lines.append("*No complete answer.*")
            continue
        lines += [
            f"*{p.title}* — run {first.run}, answered by {first.model or cell.target.name}, "
            f"{ms(first.total_ms)}.",
            "",
        ]
        lines += [f"> {line}".rstrip() for line in first.answer.strip().splitlines()]
    lines += ["", "## Prompts", ""]
    for p in result.prompts:
        material = f"; material: {', '.join(n for n, _ in p.material)}" if p.material else ""
        lines += [
            f"- **{p.name}** ({p.source}): task `{p.task}`{material}. {_cell(p.title)}.",
        ]
    return "\n".join(lines) + "\n"


def _judgement_section(result: BenchResult) -> list[str]:
    judges = sorted({j.judge_model for j in result.judgements if j.judge_model})
    lines = [
        "",
        "## Quality notes — a model's judgement, not a measurement",
        "",
        f"Route `{result.judge_route}` on Apex"
        + (f" (answered by {', '.join(judges)})" if judges else "")
        + " scored the first complete answer of each prompt and target from 1 to 5 against "
        "the prompt's rubric. Read the answers below before trusting these.",
        "",
    ]
    if not result.judgements:
        return [*lines, "*Nothing to judge: no run answered completely.*"]
    lines += ["| prompt | target | scores | overall | note |", "|---|---|---|---:|---|"]
    for j in result.judgements:
        if j.error:
            lines.append(f"| {j.prompt} | {j.target} | — | — | {_cell(j.error)} |")
            continue
        scores = ", ".join(f"{k} {v}" for k, v in j.scores.items())
        overall = "—" if j.overall is None else str(j.overall)
        lines.append(f"| {j.prompt} | {j.target} | {_cell(scores)} | {overall} | {_cell(j.note)} |")
    return lines


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _duration(delta: dt.timedelta) -> str:
    s = delta.total_seconds()
    if s < 60:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


# ----- SVG ------------------------------------------------------------------------------------
COLOURS = {APEX: "#3b6ea8", "local": "#c7762b"}


def svg_chart(result: BenchResult) -> str:
    """Horizontal bars of the median decode tok/s per prompt and target, range as a whisker."""
    rows = summarise(result)
    label_w, bar_w, row_h, top, pad = 300, 420, 24, 48, 16
    peak = max((s.decode_tps.high for s in rows if s.decode_tps), default=0.0) or 1.0
    scale = bar_w / (peak * 1.08)
    height = top + row_h * len(rows) + 8 * len({s.prompt for s in rows}) + 40
    width = label_w + bar_w + 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<title>Decode tokens per second (median, range)</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{pad}" y="22" font-size="15" font-weight="bold">Decode tokens per second'
        f" — {escape(result.started.date().isoformat())}</text>",
        f'<text x="{pad}" y="38" fill="#555">median of {result.runs_per_cell} run(s); '
        "whisker: lowest–highest</text>",
    ]
    y = top
    last_prompt = None
    for s in rows:
        if last_prompt is not None and s.prompt != last_prompt:
            y += 8
        last_prompt = s.prompt
        label = escape(f"{s.prompt} · {s.target}")
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{label}</text>')
        if s.decode_tps is None:
            reason = "no complete answer" if not s.failures else "failed"
            out.append(f'<text x="{label_w + 4}" y="{y + 16}" fill="#a33">{reason}</text>')
        else:
            d = s.decode_tps
            w = max(1.0, d.median * scale)
            colour = COLOURS.get(s.backend, "#666")
            out.append(
                f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{colour}" data-median="{d.median}"/>'
            )
            if d.n > 1 and d.high > d.low:
                x1, x2, cy = label_w + d.low * scale, label_w + d.high * scale, y + row_h / 2
                out.append(
                    f'<line x1="{x1:.1f}" y1="{cy}" x2="{x2:.1f}" y2="{cy}" stroke="#222"/>'
                    f'<line x1="{x1:.1f}" y1="{cy - 5}" x2="{x1:.1f}" y2="{cy + 5}" stroke="#222"/>'
                    f'<line x1="{x2:.1f}" y1="{cy - 5}" x2="{x2:.1f}" y2="{cy + 5}" stroke="#222"/>'
                )
            end = label_w + max(w, d.high * scale)
            out.append(f'<text x="{end + 6:.1f}" y="{y + 16}">{d.median:.1f}</text>')
        y += row_h
    ly = y + 20
    for i, (backend, colour) in enumerate(COLOURS.items()):
        x = label_w + i * 110
        out.append(f'<rect x="{x}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 18}" y="{ly}">{"Apex" if backend == APEX else "local"}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ----- JSON -----------------------------------------------------------------------------------
def as_json(
    result: BenchResult, report: Path | None = None, chart: Path | None = None
) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "started": result.started.isoformat(timespec="seconds"),
        "finished": result.finished.isoformat(timespec="seconds") if result.finished else None,
        "interrupted": result.interrupted,
        "machine": result.machine,
        "setup": result.setup,
        "runs_per_cell": result.runs_per_cell,
        "warmup": result.warmup,
        "prompts": [
            {"name": p.name, "task": p.task, "title": p.title, "source": p.source}
            for p in result.prompts
        ],
        "summary": [asdict(s) for s in summarise(result)],
        "runs": [r.as_json() for r in result.runs],
        "judge_route": result.judge_route,
        "judgements": [j.as_json() for j in result.judgements],
        "notes": result.notes,
        "report": str(report) if report else None,
        "chart": str(chart) if chart else None,
    }


__all__ = ["Judgement", "Run", "Summary", "as_json", "markdown", "summarise", "svg_chart"]
