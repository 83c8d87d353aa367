"""The root command: global flags, lazy subcommands, and the one place errors become exit codes.

Importing this module costs click and nothing else: every subcommand lives in
brain/commands and is imported only when it runs (or when --help lists it by name).
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any

import click

from brain import __version__
from brain.commands.common import CONTEXT, global_options, opts
from brain.commands.common import settings as load_settings

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
    "voice": ("voice", "voice", "Voice memos: fetch the Whisper model that transcribes them here."),
}


class LazyGroup(click.Group):
    """Subcommands are imported on use; task commands come from the task table."""

    def _task_names(self, ctx: click.Context, *, strict: bool = False) -> list[str]:
        """Built-in tasks and the user's. `strict`: a broken config.toml is raised (to resolve
        a name it may define); otherwise the built-ins are listed (for --help)."""
        from brain.errors import ConfigError
        from brain.tasks import BUILTIN_NAMES

        names = list(BUILTIN_NAMES)
        try:
            user = load_settings(ctx).tasks
        except ConfigError:
            if strict:
                raise
            user = {}
        names += [n for n in user if n not in names]
        return names

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # `brain lesson x --config my.toml`: a user task may come from a --config given after
        # its name, which click has not parsed yet.
        if opts(ctx).config is None:
            opts(ctx).config = _config_in(args)
        name = args[0] if args else ""
        known = not name or name.startswith("-") or ctx.resilient_parsing
        if not known and self.get_command(ctx, name) is None:  # a slip, or a bare question
            from brain.commands.common import no_such_command

            words = [a for a in args if not a.startswith("-")]
            ctx.fail(no_such_command(name, self.list_commands(ctx), ask=words))
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._task_names(ctx) + sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr, _ = COMMANDS[name]
            import importlib

            return getattr(importlib.import_module(f"brain.commands.{module}"), attr)
        if name in self._task_names(ctx, strict=name not in _builtin_names()):
            from brain.commands.ask import task_command

            return task_command(name)
        return None

    def get_help(self, ctx: click.Context) -> str:
        text = super().get_help(ctx)
        broken = ctx.find_root().meta.get("brain.settings")
        if broken is not None and isinstance(broken[1], Exception):
            return text  # not kept: it lacks the user's tasks, and may quote a bad value
        if ctx.parent is None and opts(ctx).config is None:
            # Kept for the next `brain --help`, which then needs no click (brain.quick).
            from brain import helpcache, settings

            helpcache.remember_help(
                text + "\n", str(settings.cache_dir()), str(settings.config_path(None))
            )
        return text

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
        broken = ctx.find_root().meta.get("brain.settings")
        if broken is not None and isinstance(broken[1], Exception):
            formatter.write_paragraph()
            formatter.write_text(
                f"Your own tasks are not listed: {broken[1]} (`brain config show` says more)."
            )


def _builtin_names() -> tuple[str, ...]:
    from brain.tasks import BUILTIN_NAMES

    return BUILTIN_NAMES


def _config_in(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings=CONTEXT,
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
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    _standard_streams()
    _lenient_output()
    restore = _on_signals()
    try:
        code = _run(args, verbose)
    finally:
        restore()
    return _flushed(code)


def _flushed(code: int) -> int:
    """What brain printed reaches stdout now, not in the interpreter's last flush: there, a
    full disk behind `>` would turn the exit code into 120 with a traceback-like line."""
    try:
        sys.stdout.flush()
        return code
    except (OSError, ValueError) as exc:
        return stdout_failed(exc, code)


def stdout_failed(exc: BaseException, code: int = 0) -> int:
    """stdout could not be written (`exc`): what is left goes nowhere, silently; the exit code
    is `code` when it already says why, 0 for a reader that left, else 74 with a line."""
    try:
        _quiet_pipe()
    except (OSError, ValueError):
        pass
    if code != 0 or isinstance(exc, BrokenPipeError):
        return code  # already said why (74 for an answer: it is kept, marked partial)
    why = getattr(exc, "strerror", None) or str(exc)
    _say(
        f"brain: error: could not write to stdout: {why}.\n"
        "  → Check where the output goes (a full disk behind `>`, a closed terminal).\n"
    )
    from brain.errors import IOERR

    return IOERR


def _run(args: list[str], verbose: bool) -> int:
    # long: the one table from exception to exit code; each branch is one line of policy.
    from brain.errors import BrainError, PipeClosed

    try:
        rv = cli.main(args=args, prog_name="brain", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Abort as exc:
        # click turns a KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP as Terminated) into Abort.
        cause = exc.__cause__ or exc.__context__
        name = getattr(cause, "name", "")
        _say(f"brain: {'stopped by ' + name if name else 'interrupted'}\n")
        return 128 + getattr(cause, "signum", 2)
    except KeyboardInterrupt as exc:
        name = getattr(exc, "name", "")
        _say(f"\nbrain: {'stopped by ' + name if name else 'interrupted'}\n")
        return 128 + getattr(exc, "signum", 2)
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
        return _error(exc, verbose)
    except BrokenPipeError:
        return _quiet_pipe()
    except OSError as exc:
        # The machine, not brain: a full disk, a read-only directory, a terminal that went away.
        from brain.errors import StorageError

        where = f" ({exc.filename})" if exc.filename else ""
        why = exc.strerror or str(exc)
        return _error(
            StorageError(
                f"a file or stream could not be read or written{where}: {why}.",
                "Check the disk (free space, permissions) and where the output goes.",
            ),
            verbose,
        )
    except UnicodeError:
        # A name or text that is not valid Unicode (a lone surrogate: a Windows file name, or
        # bytes no encoding reads) reached a place that must encode it: bad input, not a bug.
        from brain.errors import BadInput

        return _error(
            BadInput(
                "some text brain was given is not valid Unicode (it holds a lone surrogate, "
                "as a file name that is not valid text can), so it cannot be used.",
                "Rename the file, or give the text in UTF-8.",
            ),
            verbose,
        )
    except Exception as exc:
        if type(exc).__module__ == "sqlite3":  # raised outside brain.store's guards
            from brain.settings import data_dir
            from brain.store import fault

            return _error(fault(exc, data_dir() / "brain.db", "use"), verbose)
        from brain.secrets import redact

        if verbose:
            import traceback

            sys.stderr.write(redact(traceback.format_exc()))
        _say(
            f"brain: internal error: {redact(f'{type(exc).__name__}: {exc}')}\n"
            "  → this is a bug in brain; run again with -v for the details.\n"
        )
        return 70


def _error(exc: Any, verbose: bool) -> int:
    """Show a BrainError on stderr (if stderr still works) and return its exit code."""
    try:
        from brain.render import Output

        if verbose:
            import traceback

            from brain.secrets import redact

            sys.stderr.write(redact(traceback.format_exc()))
        Output(verbose=verbose).error(exc)
    except OSError:
        pass  # stderr is gone too (a closed terminal): the exit code still says it
    return exc.exit_code


def _say(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except OSError:
        pass


class ClosedStream(io.TextIOBase):
    """What sys.stdout is when brain was started with stdout closed (`>&-`): every write
    fails, so nothing ever lands in a file that happened to get descriptor 1."""

    brain_closed = True

    def write(self, _text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def _lenient_output() -> None:
    """Characters stdout's encoding lacks (a legacy code page, a file redirected on Windows,
    PYTHONIOENCODING=ascii) print as '?' instead of stopping brain mid-answer."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (AttributeError, OSError, ValueError):
                pass


def _standard_streams() -> None:
    """Descriptors 0, 1 and 2 that were closed at start get /dev/null, so that no file brain
    opens (brain.db!) becomes stdout; a closed stdout stays unwritable (ClosedStream)."""
    if os.name != "posix":
        return
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        opened = os.open(os.devnull, os.O_RDWR)
        if opened != fd:  # a lower descriptor was free after all
            os.dup2(opened, fd)
            os.close(opened)
        if fd == 0:
            sys.stdin = open(fd, closefd=False)  # noqa: SIM115 - the process's own stdin
        elif fd == 1:
            sys.stdout = ClosedStream()
        else:
            sys.stderr = open(fd, "w", closefd=False)  # noqa: SIM115 - nowhere to say anything


def _on_signals() -> Any:
    """SIGTERM and SIGHUP (a closed terminal) stop brain the way Ctrl-C does: a partial answer
    is kept, the input is not sent again (brain.exchange). POSIX only: Windows has neither
    signal in this sense, and Ctrl-C there is KeyboardInterrupt already. Returns the undo."""
    import signal
    import threading

    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return lambda: None
    from brain.errors import Terminated

    names = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
    before = {signum: signal.getsignal(signum) for signum in names}

    def stop(signum: int, _frame: Any) -> None:
        for other in names:  # a second signal must not cut short the keeping of the first
            signal.signal(other, signal.SIG_IGN)
        raise Terminated(signum, names.get(signum, str(signum)))

    for signum in names:
        if before[signum] is not signal.SIG_IGN:  # nohup: SIGHUP stays ignored
            signal.signal(signum, stop)

    def restore() -> None:
        for signum, handler in before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    return restore
