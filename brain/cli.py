"""The root command: global flags, lazy subcommands, and the one place errors become exit codes.

Importing this module costs click and nothing else: every subcommand lives in
brain/commands and is imported only when it runs (or when --help lists it by name).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from brain import __version__

# name -> (module in brain.commands, attribute, one line for --help without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": (
        "status",
        "status",
        "What brain can reach: Apex, its routes, the key, local Ollama.",
    ),
    "routes": ("routes", "routes", "Which route on Apex each task uses, and its fallback."),
    "history": ("history", "history", "Past questions and answers."),
    "queue": ("queue", "queue", "Inputs nothing could answer yet: list, run, drop."),
    "keys": ("keys", "keys", "Keys in the OS keyring: set, list, delete."),
    "config": ("config", "config", "config.toml: init, show, path, set."),
    "mcp": ("mcp", "mcp", "Serve the tasks as MCP tools on stdio (Claude Desktop, …)."),
    "claude": (
        "claude",
        "claude",
        "Start Claude Code; --local: a model on Apex answers it.",
    ),
    "apex": ("apex", "apex", "Apex's side: render its LiteLLM config; check every route."),
    "bench": (
        "bench",
        "bench",
        "Benchmark Apex routes and the local model: first token, tokens/s, a report.",
    ),
    "repl": ("repl", "repl", "Talk with brain: a conversation with /commands (also `brain`)."),
    "completion": ("completion", "completion", "Print the shell completion script."),
}


@dataclass
class Opts:
    offline: bool = False
    online: bool = False
    json: bool = False
    config: str | None = None
    route: str | None = None
    model: str | None = None
    verbose: bool = False


def opts(ctx: click.Context) -> Opts:
    root = ctx.find_root()
    return root.meta.setdefault("brain.opts", Opts())


def _store(name: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            setattr(opts(ctx), name, value)
        return value

    return callback


def global_options(func: Any) -> Any:
    """The global flags, accepted before or after the subcommand (`brain --json dump x`)."""
    decorators = [
        click.option(
            "--offline",
            is_flag=True,
            expose_value=False,
            callback=_store("offline"),
            help="Answer on this laptop only (local model).",
        ),
        click.option(
            "--online",
            is_flag=True,
            expose_value=False,
            callback=_store("online"),
            help="Answer on Apex only; never fall back.",
        ),
        click.option(
            "--json",
            "json_",
            is_flag=True,
            expose_value=False,
            callback=_store("json"),
            help="Print one JSON object on stdout.",
        ),
        click.option(
            "--config",
            metavar="PATH",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_store("config"),
            help="Use this config.toml (default: BRAIN_CONFIG or the user config dir).",
        ),
        click.option(
            "--route",
            metavar="NAME",
            expose_value=False,
            callback=_store("route"),
            help="Ask this route on Apex instead of the task's own.",
        ),
        click.option(
            "--model",
            metavar="NAME",
            expose_value=False,
            callback=_store("model"),
            help="Use this local model instead of local.model.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_store("verbose"),
            help="Say more: who answered, timings; tracebacks on errors.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


class LazyGroup(click.Group):
    """Subcommands are imported on use; task commands come from the task table."""

    def _task_names(self, ctx: click.Context) -> list[str]:
        from brain.tasks import BUILTIN_NAMES

        names = list(BUILTIN_NAMES)
        try:
            from brain import settings

            user = settings.load(opts(ctx).config).tasks
        except Exception:
            user = {}
        names += [n for n in user if n not in names]
        return names

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._task_names(ctx) + sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr, _ = COMMANDS[name]
            import importlib

            return getattr(importlib.import_module(f"brain.commands.{module}"), attr)
        if name in self._task_names(ctx):
            from brain.commands.ask import task_command

            return task_command(name)
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text without importing every command module (startup time is a feature).
        from brain.tasks import builtin_tasks

        tasks = builtin_tasks()
        rows = []
        for name in self._task_names(ctx):
            task = tasks.get(name)
            rows.append((name, task.description if task else "Your task from config.toml."))
        with formatter.section("Ask (one task each; text, piped stdin or files)"):
            formatter.write_dl(rows)
        with formatter.section("Other commands"):
            formatter.write_dl([(n, COMMANDS[n][2]) for n in sorted(COMMANDS)])


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nExamples:\n"
    '  brain dump "grade essays by fri, call Sam"\n'
    "  cat notes/*.md | brain digest\n"
    '  git diff | brain code "review this"\n'
    '  brain --offline dump "..."     (patio: this laptop only)\n'
    "  brain status                   (what brain can reach)",
)
@click.version_option(__version__, "--version", prog_name="brain")
@global_options
@click.pass_context
def cli(ctx: click.Context) -> int | None:
    """brain — ask Apex (LiteLLM over Tailscale); the laptop's local model answers when Apex is away."""
    if ctx.invoked_subcommand is not None:
        return None
    if not sys.stdin.isatty():
        from brain.commands.ask import run_task

        return run_task(ctx, "ask", ())
    if sys.stdout.isatty():
        from brain.commands.repl import open_repl

        return open_repl(ctx, "ask")
    click.echo(ctx.get_help())
    return 0


def main(argv: list[str] | None = None) -> None:
    """Run brain; every exception becomes a message and a sysexits code here, and only here."""
    sys.exit(run(argv))


def _quiet_pipe() -> int:
    # `brain ... | head`: the reader left. Point stdout at /dev/null so the interpreter's
    # final flush does not complain, and end as a finished command would.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def run(argv: list[str] | None = None) -> int:
    from brain.errors import BrainError, PipeClosed

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        rv = cli.main(args=args, prog_name="brain", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Abort:
        sys.stderr.write("brain: interrupted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("\nbrain: interrupted\n")
        return 130
    except click.ClickException as exc:
        exc.show()
        if isinstance(exc, click.NoSuchOption) and not exc.option_name.startswith("--"):
            where = exc.ctx.command_path if exc.ctx else "brain dump"
            sys.stderr.write(
                f"  → to send text that starts with '-', put -- before it: "
                f'{where} -- "{exc.option_name} ..."\n'
            )
        return 2 if isinstance(exc, click.UsageError) else 65
    except PipeClosed:
        return _quiet_pipe()
    except BrainError as exc:
        from brain.render import Output

        if verbose:
            import traceback

            from brain.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        Output(verbose=verbose).error(exc)
        return exc.exit_code
    except BrokenPipeError:
        return _quiet_pipe()
    except Exception as exc:
        from brain.secrets import redact

        if verbose:
            import traceback

            sys.stderr.write(redact(traceback.format_exc()))
        sys.stderr.write(
            f"brain: internal error: {redact(f'{type(exc).__name__}: {exc}')}\n"
            "  → this is a bug in brain; run again with -v for the details.\n"
        )
        return 70
