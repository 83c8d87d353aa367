"""config.toml and brain's directories: where things live, the defaults, and validation.

Owns: the paths (platformdirs, or BRAIN_CONFIG / --config), the schema of every config key,
environment overrides, and reading/writing the file. Knows nothing of click or rich.
A key is never a config value: secrets live in the keyring (brain.secrets).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brain.errors import ConfigError

APP = "brain"

# section -> key -> (type, default, what is valid). One table drives defaults, validation,
# `config show`, `config set` and the completion of config keys.
SCHEMA: dict[str, dict[str, tuple[type, Any, str]]] = {
    "apex": {
        "url": (
            str,
            "",
            "the LiteLLM proxy's base URL with a host, e.g. http://apex:4000 (no /v1)",
        ),
        "connect_timeout": (float, 1.0, "seconds to wait for a TCP connection, > 0"),
        "first_token_timeout": (
            float,
            20.0,
            "seconds to wait for the first token, > 0 (keep it above Apex's stream_timeout)",
        ),
        "probe_ttl": (float, 30.0, "seconds a reachability verdict is reused, >= 0"),
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
            "seconds to wait for the local model's first token (a cold load is slow), > 0",
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


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("BRAIN_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False)) / "config.toml"


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return _private_dir(Path(user_data_dir(APP, appauthor=False)))


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return _private_dir(Path(user_cache_dir(APP, appauthor=False)))


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


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
    exists = path.is_file()
    if not exists and explicit:
        raise ConfigError(f"{path} does not exist", "Run `brain config init` to create it.")
    raw = read_raw(path) if exists else {}
    return from_raw(path, raw, exists)


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
        except (TypeError, ValueError):
            return None
        if typ is int and isinstance(value, float) and value != int(value):
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
        return value >= 0
    if key in ("connect_timeout", "first_token_timeout", "context_tokens"):
        return value > 0
    if section == "digest" and key == "parallel":
        return 1 <= value <= 8
    if key in ("probe_ttl", "daily_usd"):
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
                ok = converted > 0
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
    """Write config.toml atomically, readable by the user only."""
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(data, fh)
    os.replace(tmp, path)


def read_raw(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            "Fix the file, or move it away and run `brain config init`.",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start})",
            "Save it as UTF-8, or move it away and run `brain config init`.",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
