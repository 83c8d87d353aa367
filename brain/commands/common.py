"""What the commands share: the global flags, the App built once per run from them, and how a
finished answer is reported. brain.cli imports this; nothing here imports brain.cli.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from brain.app import App
    from brain.exchange import Result
    from brain.settings import Settings

CONTEXT = {"help_option_names": ["-h", "--help"]}


class Opts:
    """The global flags as given (a plain class: `dataclasses` costs `brain --help` ~15 ms)."""

    def __init__(self) -> None:
        self.offline = False
        self.online = False
        self.json = False
        self.config: str | None = None
        self.route: str | None = None
        self.model: str | None = None
        self.verbose = False


def opts(ctx: click.Context) -> Opts:
    root = ctx.find_root()
    return root.meta.setdefault("brain.opts", Opts())


def _store(name: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            setattr(opts(ctx), name, value)
        return value

    return callback


# (flags, attribute, is a flag, metavar, help)
_GLOBAL = [
    (("--offline",), "offline", True, None, "Answer on this laptop only (local model)."),
    (("--online",), "online", True, None, "Answer on Apex only; never fall back."),
    (("--json", "json_"), "json", True, None, "Print one JSON object on stdout."),
    (
        ("--config",),
        "config",
        False,
        "PATH",
        "Use this config.toml (default: BRAIN_CONFIG or the user config dir).",
    ),
    (("--route",), "route", False, "NAME", "Ask this route on Apex instead of the task's own."),
    (("--model",), "model", False, "NAME", "Use this local model instead of local.model."),
    (
        ("-v", "--verbose"),
        "verbose",
        True,
        None,
        "Say more: who answered, timings; tracebacks on errors.",
    ),
]


class SafePath(click.Path):
    """click.Path, with a NUL in the name a usage error (os.stat raises ValueError on it).
    Every path option and argument of brain uses it."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if "\x00" in str(value):
            self.fail("a path cannot contain a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


def global_options(*only: Any) -> Any:
    """The global flags, accepted before the subcommand (`brain --json dump x`) and after a
    command that uses them. `@global_options` gives a command all of them;
    `@global_options("json", "config")` only those (and -v, which every command takes), so its
    --help lists only the flags it takes."""
    if len(only) == 1 and callable(only[0]):
        return _with_flags(only[0], None)
    names = set(only)
    unknown = names - {attr for _, attr, *_ in _GLOBAL}
    assert not unknown, f"no global flag {unknown}"
    return lambda func: _with_flags(func, names)


def _with_flags(func: Any, names: set[str] | None) -> Any:
    for flags, attr, is_flag, metavar, text in reversed(_GLOBAL):
        if names is not None and attr not in names and attr != "verbose":
            continue
        extra: dict[str, Any] = {"type": SafePath(dir_okay=False)} if attr == "config" else {}
        func = click.option(
            *flags,
            is_flag=is_flag,
            metavar=metavar,
            expose_value=False,
            callback=_store(attr),
            help=text,
            **extra,
        )(func)
    return func


class Group(click.Group):
    """A command group whose mistyped subcommand gets "did you mean" (`brain queue lsit`)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        known = not name or name.startswith("-") or ctx.resilient_parsing
        if not known and self.get_command(ctx, name) is None:
            ctx.fail(no_such_command(name, self.list_commands(ctx)))
        return super().resolve_command(ctx, args)


def no_such_command(name: str, names: list[str], ask: list[str] | None = None) -> str:
    """'No such command' with the closest name; for `brain "what is …"` (`ask`: the words
    given), the command that asks it."""
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"No such command '{name}'. Did you mean '{close[0]}'?"
    if ask is not None:
        import shlex

        return (
            f"No such command '{name}'. To ask a question, name a task: "
            f"brain ask {shlex.quote(' '.join(ask))}"
        )
    return f"No such command '{name}'. Commands: {', '.join(names)}."


def settings(ctx: click.Context) -> Settings:
    """config.toml, loaded once per run (the App reuses it); its errors are raised."""
    from brain import settings as settings_mod

    root = ctx.find_root()
    path = opts(ctx).config
    cached = root.meta.get("brain.settings")
    if cached is None or cached[0] != path:
        try:
            cached = (path, settings_mod.load(path))
        except Exception as exc:  # kept, so every caller sees the same error
            cached = (path, exc)
        root.meta["brain.settings"] = cached
    if isinstance(cached[1], Exception):
        raise cached[1]
    return cached[1]


def app(ctx: click.Context) -> App:
    """The App for this run, built once the command's own flags are parsed."""
    from brain.app import App

    root = ctx.find_root()
    built = root.meta.get("brain.app")
    if built is None:
        o = opts(ctx)
        built = App.load(
            offline=o.offline,
            online=o.online,
            settings=settings(ctx),
            route=o.route,
            model=o.model,
            verbose=o.verbose,
            json=o.json,
        )
        root.meta["brain.app"] = built
        root.call_on_close(built.close)
    return built


def require_stdout() -> None:
    """Refuse, before anything is sent, to ask a question whose answer has nowhere to go:
    stdout was closed when brain started (`>&-`; brain.cli.ClosedStream)."""
    import sys

    if getattr(sys.stdout, "brain_closed", False):
        from brain.errors import OutputError

        raise OutputError(
            "stdout is closed (`>&-`), so an answer would have nowhere to go; nothing was sent.",
            "Send the answer somewhere: `> FILE`, `| less`, or nothing (the terminal).",
        )


def report(out: Any, result: Result) -> int:
    """Print the JSON object or the closing notices; the exit code for this answer."""
    from brain.render import money

    a = result.answer
    if out.json_mode:
        try:
            out.json(result.as_json())
        except OSError as exc:
            from brain.errors import OutputError

            raise OutputError(
                f"could not write the answer to stdout: {exc.strerror or exc}. The answer is "
                f"kept in the history as #{result.row}.",
                f"See it with `brain history {result.row}` once stdout can be written.",
            ) from None
    elif not a.text:
        out.notice("the model answered with no text.")
    who = f"{a.backend} {a.model or ''}".strip()
    usage = a.usage
    out.info(
        f"answered by {who} (route {result.outcome.route}); first token "
        f"{a.first_token_ms} ms, total {a.total_ms} ms; tokens in/out "
        f"{usage.get('prompt_tokens', '?')}/{usage.get('completion_tokens', '?')}"
        + (f"; cost {money(a.cost)}" if a.cost is not None else "")
    )
    for note in result.notes():
        out.notice(note)
    if result.notify_pending:
        from brain import notify

        notify.spawn_sender()
    return result.exit_code
