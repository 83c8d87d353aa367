"""`brain apex render DIR` and `brain apex check [--drill]`: thin click wrappers around
brain.apex.render and brain.apex.check."""

from __future__ import annotations

from typing import Any

import click

from brain import install
from brain.commands.common import Group, SafePath, global_options, opts

CTX = {"help_option_names": ["-h", "--help"]}


@click.group(
    cls=Group,
    context_settings=CTX,
    epilog=f"Set-up from an empty Windows box: {install.doc('apex.md')}.",
)
def apex() -> None:
    """Apex's side: write its LiteLLM config from brain's task table, and check it.

    \b
    brain apex render ./apex        the files to copy to Apex (config.yaml, .env.example, …)
    brain apex check                every route answers? who answered? (from the laptop)
    brain apex check --drill        stop Ollama on Apex: do routes cascade and flip back?
    """


@apex.command(context_settings=CTX)
@click.argument("directory", type=SafePath(file_okay=False, writable=True))
@click.option(
    "--providers",
    metavar="LIST",
    help="Cloud providers to include, comma-separated: cerebras,groq,gemini,cloudflare,"
    "anthropic (default: all; `none` for Apex's GPU only).",
)
@click.option(
    "--local-models",
    metavar="LIST",
    help="Models on Apex's GPU to include: gemma3-27b,gemma4-26b,gemma4-31b,qwen-32b (Ollama), "
    "whisper (speech) (default: all; `none` for cloud only).",
)
@click.option(
    "--upstream",
    metavar="STEP=MODEL",
    multiple=True,
    help="Use another model for a step, e.g. apex-gemma3-27b=gemma3:27b (repeatable).",
)
@click.option(
    "--slack/--no-slack",
    default=None,
    help="Wire LiteLLM's Slack alerts (default: on when brain has a `slack` key).",
)
@click.option("--image", metavar="IMAGE", help="The LiteLLM Docker image (default: pinned).")
@click.option(
    "--linux-dir",
    metavar="PATH",
    help="Where the files live on a Linux Apex, for the systemd unit (default /opt/brain-apex).",
)
@click.option("--force", is_flag=True, help="Replace files that differ (a .env is never touched).")
@global_options("json", "config")
@click.pass_context
def render(
    ctx: click.Context,
    directory: str,
    providers: str | None,
    local_models: str | None,
    upstream: tuple[str, ...],
    slack: bool | None,
    image: str | None,
    linux_dir: str | None,
    force: bool,
) -> int:
    """Write the files Apex runs into DIRECTORY, from brain's task table.

    \b
    config.yaml          LiteLLM: a model group per route, the fallback cascade, limits
    .env.example         every key and address the config reads (copy to .env on Apex)
    docker-compose.yml   the proxy on port 4000, bound to Apex's Tailscale address
    apex-autostart.ps1   registers a Windows scheduled task that starts it at logon
    brain-apex.service   the same for a Linux Apex (systemd)

    Rendering twice gives the same bytes; files that differ are replaced only with --force.
    """
    # long: option wiring and the two ways of reporting; the work is core.render_files.

    from brain import secrets
    from brain.apex import catalog
    from brain.apex import render as core
    from brain.commands.common import app
    from brain.files import expand
    from brain.render import Output

    o = opts(ctx)
    out = Output(json_mode=o.json, verbose=o.verbose)
    tasks = app(ctx).tasks
    speech_route = str(app(ctx).settings.get("voice", "route"))
    defaults = core.Options()
    if slack is None:
        slack = bool(secrets.get("slack"))
    chosen_providers = core.parse_list(providers, catalog.cloud_provider_names(), "provider")
    chosen_local = core.parse_list(local_models, catalog.local_short_names(), "local model")
    options = core.Options(
        providers=defaults.providers if chosen_providers is None else chosen_providers,
        local_models=defaults.local_models if chosen_local is None else chosen_local,
        upstream=core.parse_upstream(upstream),
        slack=slack,
        speech_route=speech_route,
        image=image or defaults.image,
        linux_dir=linux_dir or defaults.linux_dir,
    )
    plan, files = core.render_files(tasks, options)
    target = expand(directory)
    written = core.write_files(target, files, force=force)
    if o.json:
        out.json(
            {
                "version": 1,
                "dir": str(target),
                "files": [{"path": str(w.path), "status": w.status} for w in written],
                "routes": [
                    {"route": r.route, "tasks": r.tasks, "steps": [d.key for d in r.steps]}
                    for r in plan.routes
                ],
                "omitted": [{"route": r, "why": why} for r, why in plan.omitted],
                "slack": options.slack,
            }
        )
        return 0
    for w in written:
        out.write(f"{w.status:9}  {w.path}")
    for route, why in plan.omitted:
        out.notice(f"route {route} is left out: {why}.")
    first = {
        p.stream_timeout for r in plan.routes for p in [catalog.PROVIDERS[r.steps[0].provider]]
    }
    out.notice(
        "next: copy these files to Apex, copy .env.example to .env there and fill it in, then "
        f"`docker compose up -d` ({install.doc('apex.md')} walks through it); from this laptop, "
        "`brain apex check`."
    )
    out.info(
        f"Apex waits up to {max(first)} s for a first step's first token before moving on; "
        "keep apex.first_token_timeout above that."
    )
    return 0


@apex.command(context_settings=CTX)
@click.option("--drill", is_flag=True, help="The fallback drill: asks you to stop Ollama on Apex.")
@click.option("--premium", is_flag=True, help="Ask the paid route too (costs a few tokens).")
@click.option(
    "--only",
    "only",
    metavar="ROUTE",
    multiple=True,
    help="Check only this route (repeatable).",
)
@global_options("json", "config")
@click.pass_context
def check(ctx: click.Context, drill: bool, premium: bool, only: tuple[str, ...]) -> int:
    """Ask every route on Apex a tiny question and show who answered.

    Exit status: 0 when every route answered; 69 when some did not; 78 when Apex lacks a
    route brain uses (render the config again and redeploy it).
    """
    # long: the smoke test, then the drill with its pauses for the user, in the order run.
    from brain.apex import check as core
    from brain.apex.catalog import routes_of
    from brain.commands.common import app
    from brain.errors import UsageError
    from brain.render import Output

    o = opts(ctx)
    out = Output(json_mode=o.json, verbose=o.verbose)
    the_app = app(ctx)
    tasks = the_app.tasks
    endpoint = the_app.backend("apex")
    routes = routes_of(tasks)
    unknown = [r for r in only if r not in routes]
    if unknown:
        raise UsageError(
            f"brain uses no route named {', '.join(unknown)}",
            f"Routes brain uses: {', '.join(routes)}.",
        )
    core.ensure_reachable(endpoint)
    if not drill:
        if not o.json:
            out.waiting(f"asking {len(only or routes)} routes on {endpoint.url}…")
        results = core.smoke(endpoint, routes, premium=premium, only=only or None)
        out.stop()
        if o.json:
            out.json(core.as_json(endpoint, results))
        else:
            _table(out, f"Apex at {endpoint.url}", results)
            _advice(out, results)
        return core.exit_code(results)

    def pause(message: str) -> None:
        out.stop()
        click.echo(f"\n{message}", err=True)
        click.prompt(
            "Press Enter when done", default="", show_default=False, prompt_suffix=" ", err=True
        )

    def progress(phase: str, result: Any) -> None:
        if not o.json:
            who = result.model or result.error or result.skipped
            out.notice(f"[{phase}] {result.route}: {who}")

    if not o.json:
        out.notice("the fallback drill: first, every route as it is now.")
    report = core.drill(endpoint, routes, pause, progress=progress)
    if o.json:
        out.json(report.as_json())
    else:
        rows = [["ok" if v.ok else "FAIL", v.route, v.text] for v in report.verdicts]
        out.table("Fallback drill", ["", "route", "what happened"], rows)
        if report.flip_back_s is not None:
            out.notice(f"routes flipped back to Apex's GPU {report.flip_back_s} s after restart.")
    from brain.errors import OK, UNAVAILABLE

    return OK if report.ok else UNAVAILABLE


def _table(out: Any, title: str, results: list[Any]) -> None:
    rows = []
    for r in results:
        if r.skipped:
            rows.append([r.route, ", ".join(r.tasks), "skipped", "", "", r.skipped])
            continue
        if not r.ok:
            rows.append([r.route, ", ".join(r.tasks), "FAILED", "", "", _short(r.error)])
            continue
        where = {True: " (Apex GPU)", False: " (cloud)", None: ""}[r.on_apex_gpu]
        via = "Apex fell back: first step down" if r.fallbacks else ""
        ms = f"{r.first_token_ms} ms" if r.first_token_ms is not None else ""
        rows.append([r.route, ", ".join(r.tasks), "ok", f"{r.model}{where}", ms, via])
    out.table(title, ["route", "tasks", "status", "answered by", "first token", "note"], rows)


def _short(text: str, limit: int = 100) -> str:
    from brain.client import one_line

    return one_line(text, limit)


def _advice(out: Any, results: list[Any]) -> None:
    missing = [r.route for r in results if r.missing]
    from brain.apex.check import no_cloud_step

    down = [r for r in results if not r.ok and not r.skipped and not r.missing]
    failed = [r.route for r in down if not no_cloud_step(r.route)]
    local_only = [r.route for r in down if no_cloud_step(r.route)]
    fell = [r.route for r in results if r.ok and r.fallbacks]
    if missing:
        out.notice(
            f"Apex has no route {', '.join(missing)}: render the config again "
            "(`brain apex render DIR --force`), copy config.yaml to Apex and restart the proxy."
        )
    if failed:
        out.notice(
            f"{', '.join(failed)} did not answer: see the proxy's log on Apex "
            "(`docker compose logs --tail 50`) and check the keys in its .env."
        )
    if local_only:
        out.notice(
            f"{', '.join(local_only)} run only on Apex's GPU (no cloud step): is Ollama running "
            "on Apex with the model pulled? Meanwhile brain answers them on this laptop."
        )
    for route in fell:
        out.notice(_fell_advice(route, next(r for r in results if r.route == route)))
    if not (missing or failed or local_only or fell):
        out.notice("every route answered from its first step.")


def _fell_advice(route: str, result: Any) -> str:
    """Advice for a route that answered only after a fallback on Apex: it follows the route's
    own first step (Gemini for long_context_summary, Ollama for brain_dump)."""
    from brain.apex import catalog

    chain = catalog.CHAINS.get(route) or catalog.CHAINS[catalog.DEFAULT_CHAIN_ROUTE]
    first = catalog.DEPLOYMENTS[chain[0]]
    provider = catalog.PROVIDERS[first.provider]
    why = f" ({_short(result.fallback_reason, 120)})" if result.fallback_reason else ""
    head = (
        f"{route} answered only after a fallback on Apex: its first step, {first.key}, failed{why}."
    )
    if provider.local:
        return f"{head} Is Ollama running on Apex, with `{first.model}` pulled?"
    return (
        f"{head} Is {provider.key_env} set in Apex's .env, and {provider.title} within its "
        "limits? `docker compose logs --tail 50` on Apex shows the error."
    )
