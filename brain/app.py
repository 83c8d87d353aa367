"""What one run of brain works with, built once: the settings (config.toml loaded once, its
errors raised, never swallowed), the task table, the mode, the global flags' overrides, the
store (opened on first use, closed with the run) and the backends (made on first use).

Every front end (the task commands, `queue run`, the REPL, MCP, bench, status) takes an App;
none re-derives what is here. No click, rich or prompt-toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brain.errors import UsageError
from brain.settings import Settings

if TYPE_CHECKING:
    from brain.backends.base import Backend
    from brain.store import Store
    from brain.tasks import Task

AUTO, ONLINE, OFFLINE = "auto", "online", "offline"


@dataclass
class App:
    settings: Settings
    mode: str = AUTO
    route: str | None = None  # --route: ask this route instead of the task's
    model: str | None = None  # --model: this local model instead of local.model
    verbose: bool = False
    json: bool = False
    _store: Any = field(default=None, repr=False)
    _backends: dict[str, Backend] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        config: str | None = None,
        *,
        offline: bool = False,
        online: bool = False,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> App:
        """Settings from `config` (or the default place); the mode from the flags and
        BRAIN_OFFLINE. UsageError when both --offline and --online are given."""
        from brain import settings as settings_mod

        conf = settings or settings_mod.load(config)
        if offline and online:
            raise UsageError("--offline and --online contradict each other; give one.")
        mode = OFFLINE if offline or (conf.offline_env and not online) else AUTO
        mode = ONLINE if online else mode
        return cls(conf, mode, **overrides)

    @cached_property
    def tasks(self) -> dict[str, Task]:
        from brain.tasks import from_settings

        return from_settings(self.settings)

    def task(self, name: str) -> Task:
        task = self.tasks.get(name)
        if task is None:
            raise UsageError(
                f"no task `{name}`.",
                f"Tasks: {', '.join(self.tasks)} (add your own as [tasks.NAME] in config.toml).",
            )
        return task

    @property
    def local_model(self) -> str:
        return self.model or self.settings.local_model

    @cached_property
    def cache_dir(self) -> Path:
        from brain.settings import cache_dir

        return cache_dir()

    @cached_property
    def data_dir(self) -> Path:
        from brain.settings import data_dir

        return data_dir()

    def key(self, name: str) -> str | None:
        from brain import secrets

        return secrets.get(name)

    def store(self) -> Store:
        if self._store is None:
            from brain.store import Store

            self._store = Store(self.data_dir / "brain.db")
        return self._store

    def backend(self, name: str) -> Backend:
        """apex, local or anthropic (brain.backends), made once per run."""
        found = self._backends.get(name)
        if found is None:
            from brain import backends

            found = self._backends[name] = backends.make(self, name)
        return found

    def fork(self) -> App:
        """The same flags and settings with a store and backends of its own (for a thread:
        an SQLite connection belongs to the thread that opened it)."""
        return App(self.settings, self.mode, self.route, self.model, self.verbose, self.json)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
