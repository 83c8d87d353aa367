"""`brain bench`: the three-prompt benchmark (docs/bench.md). Arguments in, brain.bench out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from brain import install
from brain.commands.common import SafePath, global_options, opts


def _names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@click.command(
    name="bench",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=r"""\b
Examples:
  brain bench                      each prompt on its task's route, 3 runs
  brain bench --routes brain_dump,draft --local --runs 5
  brain bench --offline --warmup 1    this laptop's model only
  brain bench --prompts mine.toml --only my-test --judge premium_reasoning

Docs: """
    + install.doc("bench.md")
    + ".",
)
@click.option(
    "--routes",
    "routes",
    multiple=True,
    metavar="A,B",
    help="Routes on Apex to measure (default: each prompt's own task route).",
)
@click.option("--local", is_flag=True, help="Measure the local model too (local.model, --model).")
@click.option(
    "--runs",
    type=click.IntRange(min=1, max=100),
    default=3,
    show_default=True,
    help="Timed runs of each prompt on each target.",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0, max=10),
    default=0,
    show_default=True,
    help="Untimed runs per target first (loads a cold model).",
)
@click.option(
    "--prompts",
    "prompt_files",
    multiple=True,
    type=SafePath(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Add your own prompts from a TOML file ([prompts.NAME] tables).",
)
@click.option("--only", multiple=True, metavar="NAME,…", help="Run only these prompts.")
@click.option(
    "--judge",
    metavar="ROUTE",
    help="Ask this route on Apex to score each answer against the prompt's rubric.",
)
@click.option(
    "--out",
    type=SafePath(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="The Markdown report (default: Gemma_Benchmark_YYYY-MM-DD.md here; the SVG beside it).",
)
@click.option("--no-report", is_flag=True, help="Write no files; print the table (or --json) only.")
@global_options("offline", "online", "json", "config", "model")
@click.pass_context
def bench(
    ctx: click.Context,
    routes: tuple[str, ...],
    local: bool,
    runs: int,
    warmup: int,
    prompt_files: tuple[Path, ...],
    only: tuple[str, ...],
    judge: str | None,
    out: Path | None,
    no_report: bool,
) -> int:
    """Measure first-token time and tokens per second of Apex routes and the local model.

    Runs the prompts that ship with brain (a classroom brain dump, a digest of overnight notes,
    a web-page rewrite) and any of your own, streaming, and writes a Markdown report with the
    answers and an SVG chart of tokens per second.
    """
    from brain.bench import measure
    from brain.commands.common import app
    from brain.render import Output

    o = opts(ctx)
    output = Output(json_mode=o.json, verbose=o.verbose)
    the_app = app(ctx)
    use_apex, use_local, route_list = _targets(the_app, output, routes, local, judge)
    cells = measure.plan(
        the_app.settings,
        the_app.tasks,
        _prompts(prompt_files, only),
        routes=route_list or None,
        apex=use_apex,
        local=use_local,
        local_model=the_app.local_model,
    )
    result = _measure(the_app, output, cells, runs, warmup, judge)
    _show(output, result, None if no_report else _write_report(result, out))
    return _conclude(output, result)


def _targets(
    the_app: Any, output: Any, routes: tuple[str, ...], local: bool, judge: str | None
) -> tuple[bool, bool, list[str]]:
    """(measure Apex, measure the laptop, the routes asked for), or the usage error."""
    from brain.errors import UsageError

    conf = the_app.settings
    if the_app.mode == "online" and local:
        raise UsageError("--online and --local contradict each other; give one.")
    offline = the_app.mode == "offline"
    route_list = _names(routes) or ([the_app.route] if the_app.route else [])
    if offline and (route_list or judge):
        raise UsageError(
            "--routes and --judge ask Apex, and --offline (or BRAIN_OFFLINE) keeps brain on "
            "this laptop.",
            "Drop --offline, or drop --routes/--judge.",
        )
    use_local = local or offline
    use_apex = not offline
    if use_apex and not conf.apex_url and use_local and not route_list and not judge:
        output.notice("Apex is not configured (apex.url); measuring the local model only.")
        use_apex = False
    if judge and not conf.apex_url:
        raise UsageError("--judge asks a route on Apex, and apex.url is not set.")
    return use_apex, use_local, route_list


def _prompts(prompt_files: tuple[Path, ...], only: tuple[str, ...]) -> list[Any]:
    """The shipped prompts, the user's, narrowed by --only; names are unique."""
    from brain.bench import prompts
    from brain.errors import UsageError

    chosen = prompts.shipped()
    for file in prompt_files:
        chosen += prompts.from_file(file)
    wanted = _names(only)
    if wanted:
        known = {p.name for p in chosen}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise UsageError(
                f"no prompt named {', '.join(missing)}.", f"Prompts: {', '.join(sorted(known))}."
            )
        chosen = [p for p in chosen if p.name in wanted]
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UsageError(
            f"two prompts are named `{dup}`.", "Rename one in your prompts file (names are unique)."
        )
    return chosen


def _measure(
    the_app: Any, output: Any, cells: list[Any], runs: int, warmup: int, judge: str | None
) -> Any:
    from brain.bench import judge as judge_mod
    from brain.bench import measure

    progress = _Progress(output)
    try:
        result = measure.run_bench(
            the_app,
            cells,
            runs=runs,
            warmup=warmup,
            on_progress=progress.update,
            notice=progress.notice,
        )
        if judge:
            result.judge_route = judge
        if judge and result.ok_runs() and not result.interrupted:
            progress.notice(f"asking {judge} on Apex to judge the answers (a model's opinion)…")
            try:
                result.judgements = judge_mod.judge_all(
                    result,
                    the_app.backend("apex"),
                    judge,
                    on_progress=lambda d, t, label: progress.update(d, t, label, None),
                )
            except KeyboardInterrupt:
                result.interrupted = True
                result.notes.append("Judging was interrupted; the judgements are incomplete.")
    finally:
        progress.stop()
    return result


def _write_report(result: Any, out: Path | None) -> tuple[Path, Path]:
    import datetime as dt

    from brain.bench import report

    report_path = out or report.default_path(Path.cwd(), dt.date.today())
    chart_path = report_path.with_suffix(".svg")
    _write(chart_path, report.svg_chart(result))
    _write(report_path, report.markdown(result, chart_path.name))
    return report_path, chart_path


def _show(output: Any, result: Any, written: tuple[Path, Path] | None) -> None:
    from brain.bench import report

    report_path, chart_path = written or (None, None)
    if output.json_mode:
        output.json(report.as_json(result, report_path, chart_path))
    else:
        columns, rows = report.table_rows(report.summarise(result), result.judgements)
        output.table(None, columns, rows)
    if report_path and chart_path:
        output.notice(f"wrote {report_path} and {chart_path.name}.")
    unscored = [j for j in result.judgements if j.error]
    if unscored:
        output.notice(
            f"the judge scored {len(result.judgements) - len(unscored)} of "
            f"{len(result.judgements)} answers; {unscored[0].prompt} on {unscored[0].target}: "
            f"{unscored[0].error}"
        )


def _conclude(output: Any, result: Any) -> int:
    """0, or the error that says why the benchmark did not measure what it was asked to."""
    from brain.bench import measure
    from brain.errors import Interrupted, Unreachable

    failed = [r for r in result.runs if r.status != measure.OK]
    if result.interrupted:
        raise Interrupted(
            "Interrupted; the report has the runs that finished.",
            "Run `brain bench` again for the full set.",
        )
    if result.runs and len(failed) == len(result.runs):
        first = failed[0]
        fix = first.fix
        if not fix and first.backend == measure.LOCAL:
            fix = (
                f"Start Ollama (`ollama serve`) and pull the model once "
                f"(`ollama pull {first.name}`), or point local.url at your local server."
            )
        raise Unreachable(
            f"No run answered completely. First reason: {first.reason}",
            (fix + " " if fix else "")
            + "`brain status` shows what brain can reach; the report lists every failure.",
        )
    if failed:
        output.notice(
            f"{len(failed)} of {len(result.runs)} runs did not answer completely; "
            "the report's Failures section says why."
        )
    return 0


def _write(path: Path, text: str) -> None:
    from brain.errors import BadInput

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(
            f"cannot write {path}: {exc.strerror}", "Give another place with --out PATH."
        ) from exc


class _Progress:
    """A rich progress bar on a terminal's stderr; one plain line per finished run otherwise."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.bar: Any = None
        self.task: Any = None

    def update(self, done: int, total: int, label: str, run: Any) -> None:
        if self.output.stderr_tty:
            if self.bar is None:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.bar = Progress(
                    TextColumn("[bold]bench[/]"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    TextColumn("{task.description}"),
                    console=self.output.err_console(),
                    transient=True,
                )
                self.bar.start()
                self.task = self.bar.add_task(label, total=total)
            self.bar.update(self.task, completed=done, total=total, description=label)
        elif run is not None:
            self.output.notice(f"bench {done}/{total}: {label}: {_brief(run)}")

    def notice(self, message: str) -> None:
        # Same console as the bar: rich prints the line above it.
        self.output.notice(message)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _brief(run: Any) -> str:
    if run.status != "ok":
        return f"{run.status}: {run.reason}"
    rate = f"{run.decode_tps:.1f} tok/s" if run.decode_tps else "no rate"
    return f"first token {run.first_token_ms:.0f} ms, {rate}"
