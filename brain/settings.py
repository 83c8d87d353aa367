"""config.toml and brain's directories: where things live, the defaults, and validation.

Owns: the paths (platformdirs, or BRAIN_CONFIG / --config), the schema of every config key,
environment overrides, and reading/writing the file. Knows nothing of click or rich.
A key is never a config value: secrets live in the keyring (brain.secrets).

What must stay true (issue 31):
- A config path that is not a regular file (a directory, /dev/zero, a pipe) is a
  configuration error (78) naming it, never silently ignored and never read; a file is read
  with a bound, and any TOML it holds (deeply nested, huge numbers, inf, nan) ends as a value
  or a ConfigError, never as a crash.
- A number brain waits on is finite and at most a day; a count is at most 2**31 - 1.
- `config set` edits the file in place (tomlkit): comments, order and layout stay, a symlink
  stays a symlink (its target is replaced atomically), the mode stays 0600.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain import paths
from brain.errors import ConfigError
from brain.paths import APP

__all__ = ["APP", "cache_dir", "config_path", "data_dir"]
MAX_CONFIG = 1 << 20  # bytes of config.toml brain reads; a larger file is refused
MAX_SECONDS = 86_400.0  # a timeout longer than a day is a mistake (and 1e308 overflows time)
MAX_COUNT = (1 << 31) - 1

# section -> key -> (type, default, what is valid). One table drives defaults, validation,
# `config show`, `config set` and the completion of config keys.
SCHEMA: dict[str, dict[str, tuple[type, Any, str]]] = {
    "apex": {
        "url": (
            str,
            "",
            "the LiteLLM proxy's base URL with a host, e.g. http://apex:4000 (no /v1)",
        ),
        "connect_timeout": (
            float,
            1.0,
            "seconds to wait for a TCP connection, > 0 and at most 86400",
        ),
        "first_token_timeout": (
            float,
            20.0,
            "seconds to wait for the first token, > 0 and at most 86400 (keep it above "
            "Apex's stream_timeout)",
        ),
        "probe_ttl": (
            float,
            30.0,
            "seconds a reachability verdict is reused, >= 0 and at most 86400",
        ),
        "context_tokens": (
            int,
            32768,
            "tokens of a REPL conversation sent to Apex, > 0 (older turns are left out)",
        ),
    },
    "local": {
        "url": (
            str,
            "http://127.0.0.1:11434",
            "the base URL of an OpenAI-compatible server on this laptop, e.g. "
            "http://127.0.0.1:11434 (no /v1)",
        ),
        "model": (str, "gemma4:e4b", "the local model's name, as `ollama list` shows it"),
        "keep_alive": (str, "30m", "how long Ollama keeps the model loaded, e.g. 30m, 1h, -1"),
        "kind": (
            str,
            "auto",
            "what serves local.url: auto (ask it), ollama, or openai (llama-server, LM Studio, "
            "vLLM)",
        ),
        "context_tokens": (
            int,
            0,
            "the most tokens of context brain asks of the local model, >= 0; 0 = as much as "
            "the server says the model holds",
        ),
        "first_token_timeout": (
            float,
            120.0,
            "seconds to wait for the local model's first token (a cold load is slow), > 0 and "
            "at most 86400",
        ),
    },
    "notify": {
        "slack": (
            bool,
            True,
            "true to post Slack notices when a webhook is set (`brain keys set slack`)",
        ),
        "events": (
            list,
            ["fallback", "apex_fallback", "recovered"],
            "a list of: fallback (brain answered on the laptop), apex_fallback (LiteLLM fell "
            "back on Apex), recovered (Apex answers again)",
        ),
    },
    "digest": {
        "parallel": (int, 3, "how many parts of a long digest are asked at once on Apex, 1 to 8"),
    },
    "premium": {
        "daily_usd": (float, 0.0, "a daily cap on premium spending in USD, 0 = no cap"),
        "direct": (bool, False, "true lets `brain premium` call Anthropic when Apex is away"),
        "model": (str, "claude-sonnet-4-5", "the Claude model `brain premium` asks when direct"),
        "anthropic_url": (
            str,
            "https://api.anthropic.com",
            "Anthropic's API base URL (only for [premium] direct)",
        ),
    },
    "voice": {
        "route": (
            str,
            "transcribe",
            "the route on Apex that transcribes speech (`brain apex render` adds it)",
        ),
        "local_model": (
            str,
            "base.en",
            "the laptop's Whisper model: a size name (tiny.en, base.en, small.en, base, …) or "
            "a directory holding a CTranslate2 Whisper model",
        ),
    },
}

TASK_KEYS: dict[str, tuple[type, str]] = {
    "route": (str, "the route name on Apex"),
    "prompt": (str, "a system prompt: text, or a path to a .md file"),
    "fallback": (str, '"local" or "none"'),
    "temperature": (float, "a number from 0 to 2"),
    "max_tokens": (int, "a positive whole number"),
    "long_route": (str, "the route for input past the local context"),
    "description": (str, "one line for --help"),
}

# [[digest.sources]]: where `brain digest` gathers its own material (docs/digest.md). Each has a
# `name` and exactly one of glob, command, url.
SOURCE_KINDS = ("glob", "command", "url")
SOURCE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a name of letters, digits, - and _ (what labels its material)"),
    "glob": ((str,), 'a file pattern, e.g. "~/notes/**/*.md" (relative: to config.toml\'s folder)'),
    "command": (
        (str, list),
        'a shell command line, or a list of program and arguments, e.g. "git log --since=1.day"',
    ),
    "url": ((str,), "an http(s) URL that answers text (GET)"),
    "timeout": ((int, float), "seconds a command or a URL may take, > 0 (default 60)"),
    "max_bytes": (
        (int,),
        f"the most bytes read from the source, 1 to {16 << 20} (default {1 << 20})",
    ),
}
SOURCE_DEFAULTS = {"timeout": 60.0, "max_bytes": 1 << 20}

ENV = {
    ("apex", "url"): "BRAIN_APEX_URL",
    ("local", "url"): "BRAIN_LOCAL_URL",
    ("local", "model"): "BRAIN_LOCAL_MODEL",
    ("voice", "local_model"): "BRAIN_WHISPER_MODEL",
}


# Where things live: brain.paths (secrets needs the cache dir, and settings needs secrets).
config_path, data_dir, cache_dir = paths.config_path, paths.data_dir, paths.cache_dir


@dataclass
class Settings:
    """The merged configuration: defaults, then config.toml, then environment."""

    path: Path
    values: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_exists: bool = False
    digest_sources: list[dict[str, Any]] = field(default_factory=list)
    offline_env: bool = False

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def apex_url(self) -> str:
        return str(self.values["apex"]["url"]).rstrip("/")

    @property
    def local_url(self) -> str:
        return str(self.values["local"]["url"]).rstrip("/")

    @property
    def local_model(self) -> str:
        return str(self.values["local"]["model"])


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: spec[1] for k, spec in keys.items()} for s, keys in SCHEMA.items()}


def load(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = config_path(explicit)
    exists = present(path)
    if not exists and explicit:
        raise ConfigError(f"{path} does not exist", "Run `brain config init` to create it.")
    raw = read_raw(path) if exists else {}
    return from_raw(path, raw, exists)


def present(path: Path) -> bool:
    """Whether a config file is at `path`; ConfigError when something else is (a directory,
    a device such as /dev/zero, a pipe): it would be silently ignored or read forever."""
    try:
        info = path.stat()
    except ValueError:  # a NUL in the name
        raise ConfigError(
            f"{str(path)!r} is not a valid path", "Name a config.toml file."
        ) from None
    except OSError as exc:
        if path.is_symlink():  # a dotfiles link whose target moved: not "no config"
            raise ConfigError(
                f"{path} is a symlink to {os.readlink(path)}, which does not exist",
                "Point the link at your config.toml, or remove it and run `brain config init`.",
            ) from exc
        if isinstance(exc, FileNotFoundError):
            return False
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if stat.S_ISREG(info.st_mode):
        return True
    what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device or pipe)"
    raise ConfigError(
        f"{path} is {what}; brain reads its configuration from a TOML file there.",
        "Name a config.toml file (BRAIN_CONFIG or --config), or move that away and run "
        "`brain config init`.",
    )


def from_raw(path: Path, raw: dict[str, Any], exists: bool = True) -> Settings:
    """Validate a parsed config (as read from `path`) over the defaults and the environment."""
    values = defaults()
    tasks: dict[str, dict[str, Any]] = {}
    sources: list[dict[str, Any]] = []
    for section, body in raw.items():
        if section == "tasks":
            tasks = validate_tasks(path, body)
            continue
        if section == "digest" and isinstance(body, dict) and "sources" in body:
            sources = validate_sources(path, body["sources"])
            body = {k: v for k, v in body.items() if k != "sources"}
        if section not in SCHEMA:
            valid = ", ".join(f"[{s}]" for s in [*SCHEMA, "tasks.NAME", "[digest.sources]"])
            raise ConfigError(f"{path}: unknown section [{section}]", f"Valid sections: {valid}.")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: `{section}` must be a table [{section}]")
        for key, value in body.items():
            values[section][key] = validate(path, section, key, value)
    for (section, key), var in ENV.items():
        env = os.environ.get(var)
        if env:
            values[section][key] = validate(Path(f"${var}"), section, key, env)
    from brain import secrets

    for section, key in (("apex", "url"), ("local", "url"), ("premium", "anthropic_url")):
        secrets.remember_url(str(values[section][key]))  # a password in a URL is masked
    offline = os.environ.get("BRAIN_OFFLINE", "") not in ("", "0", "false", "no")
    return Settings(
        path=path,
        values=values,
        tasks=tasks,
        file_exists=exists,
        offline_env=offline,
        digest_sources=sources,
    )


def validate(path: Path, section: str, key: str, value: Any) -> Any:
    """Check one value against SCHEMA; strings (from `config set` or env) are converted."""
    keys = SCHEMA.get(section)
    if keys is None or key not in keys:
        where = f"[{section}]" if keys is not None else "this file"
        valid = ", ".join(keys) if keys else ", ".join(f"[{s}]" for s in SCHEMA)
        raise ConfigError(f"{path}: unknown key `{key}` in {where}", f"Valid keys there: {valid}.")
    typ, _, what = keys[key]
    converted = _convert(value, typ)
    if converted is None or not _in_range(section, key, converted):
        raise ConfigError(
            f"{path}: [{section}] {key} = {value!r} is not valid", f"Expected {what}."
        )
    return converted


def _convert(value: Any, typ: type) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        return None
    if typ in (int, float):
        if isinstance(value, bool):
            return None
        try:
            number = typ(value)
            if typ is int and isinstance(value, float) and value != int(value):
                return None
        except (TypeError, ValueError, OverflowError):  # "x", inf, nan, 1e400
            return None
        if typ is float and not math.isfinite(number):
            return None
        return number
    if typ is str:
        return value if isinstance(value, str) else None
    if typ is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        return None
    return None


def _in_range(section: str, key: str, value: Any) -> bool:
    if section == "apex" and key == "url":
        return value == "" or _is_base_url(value)
    if (section == "local" and key == "url") or key == "anthropic_url":
        return _is_base_url(value)
    if section == "premium" and key == "model":
        return bool(value.strip())
    if section == "local" and key == "kind":
        return value in ("auto", "ollama", "openai")
    if section == "local" and key == "context_tokens":
        return 0 <= value <= MAX_COUNT
    if key == "context_tokens":
        return 0 < value <= MAX_COUNT
    if key in ("connect_timeout", "first_token_timeout"):
        return 0 < value <= MAX_SECONDS
    if section == "digest" and key == "parallel":
        return 1 <= value <= 8
    if key == "probe_ttl":
        return 0 <= value <= MAX_SECONDS
    if key == "daily_usd":
        return value >= 0
    if section == "local" and key == "model":
        return bool(value.strip())
    if section == "voice":
        return bool(value.strip())
    if section == "notify" and key == "events":
        return set(value) <= {"fallback", "apex_fallback", "recovered"}
    return True


def _is_base_url(value: str) -> bool:
    """http(s)://host[:port][/prefix], with a host and a valid port; not ending in /v1
    (brain adds /v1/chat/completions itself)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port_ok
        and not parts.path.rstrip("/").endswith("/v1")
        and not parts.query
    )


def validate_tasks(path: Path, body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: `tasks` must be tables like [tasks.NAME]")
    tasks: dict[str, dict[str, Any]] = {}
    for name, fields in body.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: [tasks.{name}] must be a table")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"{path}: task name `{name}` is not valid",
                "Use letters, digits, - and _ only.",
            )
        clean: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in TASK_KEYS:
                raise ConfigError(
                    f"{path}: unknown key `{key}` in [tasks.{name}]",
                    f"Valid keys there: {', '.join(TASK_KEYS)}.",
                )
            typ, what = TASK_KEYS[key]
            converted = _convert(value, typ)
            ok = converted is not None
            if ok and key == "fallback":
                ok = converted in ("local", "none")
            elif ok and key == "temperature":
                ok = 0 <= converted <= 2
            elif ok and key == "max_tokens":
                ok = 0 < converted <= MAX_COUNT
            if not ok:
                raise ConfigError(
                    f"{path}: [tasks.{name}] {key} = {value!r} is not valid", f"Expected {what}."
                )
            clean[key] = converted
        tasks[name] = clean
    return tasks


def validate_sources(path: Path, body: Any) -> list[dict[str, Any]]:
    """[[digest.sources]]: a list of tables, each with a unique `name` and exactly one of
    glob, command, url; `timeout` and `max_bytes` optional (defaults filled in)."""
    where = "[[digest.sources]]"
    if not isinstance(body, list) or not all(isinstance(t, dict) for t in body):
        raise ConfigError(
            f"{path}: `digest.sources` must be tables written as {where}",
            'For example:\n[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"',
        )
    sources: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, table in enumerate(body, 1):
        name = table.get("name")
        label = f"{where} #{number}" + (f" ({name})" if isinstance(name, str) else "")
        for key, value in table.items():
            if key not in SOURCE_KEYS:
                raise ConfigError(
                    f"{path}: unknown key `{key}` in {label}",
                    f"Valid keys there: {', '.join(SOURCE_KEYS)}.",
                )
            types, what = SOURCE_KEYS[key]
            if not _source_value_ok(key, value, types):
                raise ConfigError(
                    f"{path}: {label} {key} = {value!r} is not valid", f"Expected {what}."
                )
        if not isinstance(name, str):
            raise ConfigError(
                f"{path}: {label} needs a `name`", f"Expected {SOURCE_KEYS['name'][1]}."
            )
        if name in seen:
            raise ConfigError(
                f"{path}: two {where} are named `{name}`",
                "Give each source its own name (it labels its material and keeps its own "
                '"since the last digest").',
            )
        seen.add(name)
        kinds = [k for k in SOURCE_KINDS if k in table]
        if len(kinds) != 1:
            found = f"it has {' and '.join(kinds)}" if kinds else "it has none"
            raise ConfigError(
                f"{path}: {label} needs exactly one of glob, command, url ({found})",
                "Write one source per [[digest.sources]] table.",
            )
        source = {"name": name, kinds[0]: table[kinds[0]], **SOURCE_DEFAULTS, **table}
        source["timeout"] = float(source["timeout"])
        sources.append(source)
    return sources


def _source_value_ok(key: str, value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) or not isinstance(value, types):
        return False
    if key == "name":
        return bool(value) and value.replace("-", "").replace("_", "").isalnum()
    if key in ("glob", "url") or (key == "command" and isinstance(value, str)):
        if not value.strip():
            return False
        return key != "url" or _is_url(value)
    if key == "command":
        return bool(value) and all(isinstance(v, str) and v for v in value)
    if key == "timeout":
        return 0 < value <= 86_400
    if key == "max_bytes":
        return 1 <= value <= 16 << 20
    return True


def _is_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def write(path: Path, data: dict[str, Any]) -> None:
    """Write a new config.toml atomically, readable by the user only."""
    import tomli_w

    write_text(path, tomli_w.dumps(data))


def write_text(path: Path, text: str) -> None:
    """Replace config.toml's text atomically (0600; a symlink's target, the link kept)."""
    from brain import files

    try:
        parent = Path(os.path.realpath(path)).parent
        if not parent.exists():
            files.private_dir(parent)
        files.write_private(path, text)
    except OSError as exc:
        raise files.storage_error(exc, path, "write") from exc


def edit(path: Path, keys: list[str], value: Any) -> None:
    """Set one value in config.toml in place: comments, order and layout stay (tomlkit), a
    new key goes after the last key of its table, not after a comment meant for the next."""
    import tomlkit

    text = read_text(path) or ""
    try:
        doc = tomlkit.parse(text)
    except Exception as exc:  # tomlkit's own errors; tomllib read the same file already
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    node: Any = doc
    for depth, key in enumerate(keys[:-1]):
        if key not in node:
            node[key] = tomlkit.table(is_super_table=depth == 0 and len(keys) > 2)
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: `{'.'.join(keys[: depth + 1])}` is not a table")
    _set(node, keys[-1], value)
    write_text(path, tomlkit.dumps(doc))


def _set(table: Any, key: str, value: Any) -> None:
    body = getattr(getattr(table, "value", None), "body", None)
    if key in table or not body:
        table[key] = value
        return
    last = max((i for i, (k, _) in enumerate(body) if k is not None), default=-1)
    try:
        if last + 1 >= len(body):
            raise ValueError("at the end")
        table.value._insert_at(last + 1, key, value)  # tomlkit has no public "insert after"
    except (AttributeError, ValueError):
        table[key] = value


def read_text(path: Path) -> str | None:
    """config.toml's text (None when there is none), read with a bound."""
    if not present(path):
        return None
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG:
        raise ConfigError(
            f"{path} is larger than {MAX_CONFIG >> 20} MiB; a config.toml is a few lines.",
            "Is it the right file? Move it away and run `brain config init`.",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start})",
            "Save it as UTF-8, or move it away and run `brain config init`.",
        ) from exc


def read_raw(path: Path) -> dict[str, Any]:
    text = read_text(path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            f"{path} nests tables or arrays too deeply to read.",
            "Fix the file, or move it away and run `brain config init`.",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            "Fix the file, or move it away and run `brain config init`.",
        ) from exc
