"""`brain config init|show|path|set`: config.toml in the user config dir (keys never in it)."""

from __future__ import annotations

import sys
from typing import Any

import click

from brain.commands.common import Group, global_options, opts
from brain.commands.complete import config_keys, config_values


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def config() -> None:
    """config.toml: where Apex is, the local model, user tasks. Keys live in the keyring."""


def _path(ctx: click.Context) -> Any:
    from brain import settings

    return settings.config_path(opts(ctx).config)


@config.command("path")
@global_options("config")
@click.pass_context
def path(ctx: click.Context) -> int:
    """Print where config.toml is (it may not exist yet)."""
    from brain.render import Output

    Output().write(str(_path(ctx)))
    return 0


@config.command("show")
@global_options("json", "config")
@click.pass_context
def show(ctx: click.Context) -> int:
    """The configuration brain uses: defaults, then config.toml, then environment."""
    import tomli_w

    from brain import secrets, settings
    from brain.render import Output

    o = opts(ctx)
    conf = settings.load(o.config)
    out = Output(json_mode=o.json)
    key_state = {k.name: (k.source or "not set") for k in secrets.listing()}
    if o.json:
        out.json(
            {
                "path": str(conf.path),
                "exists": conf.file_exists,
                "values": conf.values,
                "tasks": conf.tasks,
                "digest_sources": conf.digest_sources,
                "keys": key_state,
            }
        )
        return 0
    state = "" if conf.file_exists else " (does not exist: defaults shown; `brain config init`)"
    out.write(f"# {conf.path}{state}")
    for (section, key), var in settings.ENV.items():
        import os

        if os.environ.get(var):
            out.write(f"# [{section}] {key} comes from ${var}")
    body: dict[str, Any] = {s: dict(v) for s, v in conf.values.items()}
    if conf.tasks:
        body["tasks"] = conf.tasks
    if conf.digest_sources:
        body["digest"]["sources"] = conf.digest_sources
    out.write(tomli_w.dumps(body).rstrip())
    out.write(
        "\n# keys (OS keyring; values never shown): "
        + ", ".join(f"{k} {v}" for k, v in key_state.items())
    )
    return 0


@config.command("set")
@click.argument("key", shell_complete=config_keys)
@click.argument("value", shell_complete=config_values)
@global_options("config")
@click.pass_context
def set_(ctx: click.Context, key: str, value: str) -> int:
    """Set KEY (section.key, or tasks.NAME.field) to VALUE in config.toml."""
    from brain import settings
    from brain.errors import ConfigError
    from brain.render import Output

    target = _path(ctx)
    parts = key.split(".")
    raw = settings.read_raw(target)
    if parts[0] == "tasks" and len(parts) == 3:
        name, field = parts[1], parts[2]
        trial = {name: {**raw.get("tasks", {}).get(name, {}), field: value}}
        checked = settings.validate_tasks(target, trial)[name]
        raw.setdefault("tasks", {}).setdefault(name, {})[field] = checked[field]
        converted = checked[field]
    elif len(parts) == 2:
        section, field = parts
        if field in ("key", "api_key", "token", "webhook"):
            raise ConfigError(
                f"`{key}` is a secret and never goes in config.toml.",
                "Store it in the keyring: `brain keys set apex` (or slack, anthropic).",
            )
        converted = settings.validate(target, section, field, value)
        raw.setdefault(section, {})[field] = converted
    else:
        valid = ", ".join(f"{s}.{k}" for s, keys in settings.SCHEMA.items() for k in keys)
        raise ConfigError(
            f"`{key}` is not a config key.", f"Use section.key ({valid}) or tasks.NAME.field."
        )
    # Check the whole file as it would stand before writing it, so a bad combination (say, a
    # task named like a command) is refused here and the file stays as it was.
    from brain.tasks import from_settings

    from_settings(settings.from_raw(target, raw))
    settings.edit(target, parts, converted)  # in place: the user's comments and layout stay
    Output().notice(f"set {key} = {raw_value(raw, parts)!r} in {target}")
    return 0


def raw_value(raw: dict[str, Any], parts: list[str]) -> Any:
    node: Any = raw
    for p in parts:
        node = node[p]
    return node


@config.command("init")
@click.option("--apex-url", metavar="URL", help="Apex's LiteLLM URL, e.g. http://apex:4000.")
@click.option("--local-url", metavar="URL", help="The local server (default Ollama on 11434).")
@click.option("--local-model", metavar="NAME", help="The local model (default gemma4:e4b).")
@click.option("--no-input", is_flag=True, help="Ask nothing; use the options and defaults.")
@click.option("--force", is_flag=True, help="Start from defaults instead of the existing file.")
@click.option(
    "--fetch-whisper",
    is_flag=True,
    help="Fetch the Whisper model for voice memos on this laptop (asked when interactive).",
)
@global_options("config")
@click.pass_context
def init(
    ctx: click.Context,
    apex_url: str | None,
    local_url: str | None,
    local_model: str | None,
    no_input: bool,
    force: bool,
    fetch_whisper: bool,
) -> int:
    """Create config.toml: asks Apex's URL, checks it, stores the key in the keyring.

    Each answer is checked as it is given: a URL that is not one is asked again; a key is
    shown to Apex before it is stored. With no usable keyring (SSH, WSL) no key is asked for:
    it says how to give it through the environment instead.
    """
    # long: the first-run dialogue in the order it asks, each answer checked as it comes.
    from brain import settings
    from brain.app import App
    from brain.render import Output

    out = Output()
    target = _path(ctx)
    # Run again, it updates what is there (current values are the defaults); --force starts over.
    raw = {} if force else settings.read_raw(target)
    interactive = not no_input and sys.stdin.isatty()
    defaults = settings.defaults()
    current = {s: {**defaults[s], **raw.get(s, {})} for s in defaults}
    apex = raw.setdefault("apex", {})
    local = raw.setdefault("local", {})
    reachable: bool | None = None  # Apex answered at the URL asked (None: not probed yet)
    if apex_url is not None:
        apex["url"] = settings.validate(target, "apex", "url", apex_url.strip().rstrip("/"))
    elif interactive:
        default = current["apex"]["url"] or "http://apex:4000"
        apex["url"], reachable = _ask_apex_url(out, target, default)
    if local_url is not None:
        local["url"] = settings.validate(target, "local", "url", local_url.strip().rstrip("/"))
    elif interactive:
        local["url"] = _ask_url(target, "local", "Local server URL", current["local"]["url"])
    if local_model is None and interactive:
        local_model = click.prompt("Local model", default=current["local"]["model"], err=True)
    if local_model is not None:
        local["model"] = settings.validate(target, "local", "model", local_model.strip())
    for section in ("apex", "local"):
        if not raw[section]:
            raw.pop(section)
    settings.write(target, raw)
    out.notice(f"wrote {target}")
    url = apex.get("url") or current["apex"]["url"]
    if not url:
        asked = (
            "" if interactive or no_input else " (stdin is not a terminal, so nothing was asked)"
        )
        out.notice(
            f"apex: no URL set{asked}; until one is, brain answers on this laptop. "
            "Set it with `brain config init --apex-url http://apex:4000` (your Apex's address)."
        )
    if reachable is None:
        reachable = bool(url) and _probe(out, url)
    with App.load(str(target)) as written:
        _apex_key(out, written, reachable, interactive)
        local_check = written.backend("local").checks(written.local_model)[0]
    out.notice(f"local: {local_check.detail}." + (f" {local_check.fix}" if local_check.fix else ""))
    _whisper(out, str(target), interactive, fetch_whisper)
    out.notice("next: `brain status` shows everything brain can reach.")
    return 0


def _ask_url(target: Any, section: str, question: str, default: str) -> str:
    """Ask until the answer is a URL brain can use (click says why and asks again)."""
    from brain import settings
    from brain.errors import ConfigError

    def check(value: str) -> str:
        try:
            return str(settings.validate(target, section, "url", value.strip().rstrip("/")))
        except ConfigError as exc:  # its message names config.toml, not written yet
            raise click.BadParameter(f"{value!r} is not a URL brain can use. {exc.fix}") from None

    return str(click.prompt(question, default=default, err=True, value_proc=check))


def _ask_apex_url(out: Any, target: Any, default: str) -> tuple[str, bool]:
    """Apex's URL, asked until it is a URL; checked at once, and asked again if it does not
    answer and the user would rather fix it than keep it. (url, Apex answered)."""
    while True:
        url = _ask_url(target, "apex", "Apex URL (the LiteLLM proxy over Tailscale)", default)
        if _probe(out, url):
            return url, True
        if click.confirm("Keep it anyway (Apex may just be off)?", default=True, err=True):
            return url, False
        default = url


def _probe(out: Any, url: str) -> bool:
    from brain import settings
    from brain.offline import probe

    verdict = probe.probe(url, timeout=2.0)
    probe.remember(settings.cache_dir(), verdict)
    if verdict.ok:
        out.notice(f"Apex answers at {url} ({verdict.latency_ms} ms).")
    else:
        out.notice(
            f"Apex does not answer at {url}: {verdict.reason}. Check Tailscale and the URL; "
            "until it answers, brain answers on this laptop."
        )
    return verdict.ok


def _apex_key(out: Any, app: Any, reachable: bool, interactive: bool) -> None:
    """The Apex key: one from the environment is checked; with no usable keyring none is
    asked for (it could not be kept); else asked, shown to Apex, and stored once Apex takes
    it (or unchecked while Apex is away)."""
    import os

    from brain import secrets
    from brain.errors import BrainError, ConfigError

    apex = app.backend("apex")
    if os.environ.get("BRAIN_APEX_KEY"):
        told = _verdict(apex, os.environ["BRAIN_APEX_KEY"]) if reachable else "not checked now"
        out.notice(f"the Apex key comes from BRAIN_APEX_KEY: {told}.")
        return
    if not interactive:
        try:
            stored = secrets.get("apex") is not None
        except ConfigError:  # no usable keyring: `brain keys set apex` says what to do then
            stored = False
        except BrainError as exc:  # a key stored damaged: say so, the file is written all the same
            out.notice(f"the Apex key: {exc.message}", (exc.fix or "").splitlines())
            return
        if not stored:
            out.notice(
                "the Apex key: none given (nothing is asked without a terminal). "
                "`brain keys set apex` stores it, or set BRAIN_APEX_KEY."
            )
        return
    try:
        secrets.require_keyring()
    except ConfigError as exc:
        told = exc.message.replace(" Nothing was stored.", " So no key is asked for here.")
        out.notice(told, (exc.fix or "").splitlines())
        return
    has = secrets.get("apex") is not None
    if secrets.plaintext():
        out.notice(f"the keyring here is {secrets.backend_name()}.")
    question = "Apex key (LiteLLM key; Enter " + ("keeps the current one)" if has else "to skip)")
    for _ in range(3):
        value = click.prompt(question, default="", show_default=False, hide_input=True, err=True)
        if not value.strip():
            return
        secrets.mask(value)
        told = _verdict(apex, value.strip()) if reachable else "not checked (Apex is away)"
        if told.startswith("rejected"):
            out.notice(f"Apex {told}; it was not stored. Type it again, or Enter to skip.")
            continue
        secrets.set_key("apex", value)
        out.notice(f"the Apex key: {told}; stored in the keyring: {secrets.backend_name()}.")
        return


def _verdict(apex: Any, key: str) -> str:
    """What Apex says of `key` (its /v1/models, asked with that key)."""
    apex.key = lambda: key  # this one key, before it is kept anywhere
    try:
        state, _, why = apex.models()
    finally:
        del apex.key
    if state == "ok":
        return "accepted by Apex"
    if state in ("rejected", "missing"):
        return f"rejected by Apex ({why})"
    return f"not checked ({why})"


# Rough download sizes, for the question (faster-whisper's CTranslate2 models).
_SIZES_MB = {"tiny.en": 75, "tiny": 75, "base.en": 145, "base": 145, "small.en": 485, "small": 485}


def _whisper(out: Any, config: str, interactive: bool, fetch: bool) -> None:
    """Voice memos on the patio need the Whisper model on disk before: offer to fetch it."""
    from brain.app import App
    from brain.errors import BrainError
    from brain.voice import local

    with App.load(config) as written:
        check = local.check(written)
        name = local.spec(written)
        if check.ok is not False or local.is_path(name):
            out.notice(f"voice: {check.detail}." + (f" {check.fix}" if check.fix else ""))
            return
        size = _SIZES_MB.get(name)
        if interactive and not fetch:
            fetch = click.confirm(
                f"Fetch the Whisper model {name} now"
                + (f" (~{size} MB)" if size else "")
                + ", so voice memos are transcribed on this laptop without internet?",
                default=True,
                err=True,
            )
        if not fetch:
            out.notice(f"voice: {check.detail}. {check.fix}")
            return
        out.notice(f"fetching Whisper {name}…")
        try:
            path = local.fetch(written, name)
        except BrainError as exc:  # the rest of the set-up stands; say what to do later
            out.notice(f"voice: {exc.message} {exc.fix or ''}".strip())
            return
        out.notice(f"voice: fetched Whisper {name} ({path}).")
