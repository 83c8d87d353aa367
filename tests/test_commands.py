"""keys, config, status, routes, history, queue: the commands beyond asking."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import ClassVar

import pytest
from fakes import FakeApex, FakeOllama, refused_url


def test_keys_set_list_delete_never_show_values(brain, home) -> None:
    assert brain("keys", "set", "apex", "--stdin", input="sk-abc-123456789\n").code == 0
    listed = brain("keys", "list", "--json")
    keys = {k["name"]: k for k in listed.json["keys"]}
    assert keys["apex"]["set"] and keys["apex"]["source"] == "keyring"
    assert not keys["slack"]["set"]
    assert "sk-abc" not in listed.stdout
    env = brain("keys", "list", "--json", env={"BRAIN_SLACK_WEBHOOK": "https://hooks.example/x"})
    assert {k["name"]: k for k in env.json["keys"]}["slack"]["source"] == "env BRAIN_SLACK_WEBHOOK"
    assert brain("keys", "delete", "apex").code == 0
    assert not {k["name"]: k for k in brain("keys", "list", "--json").json["keys"]}["apex"]["set"]


def test_keys_set_unknown_name_is_usage_error(brain) -> None:
    r = brain("keys", "set", "openai", "--stdin", input="x\n")
    assert r.code == 2 and "apex" in r.stderr


@pytest.mark.parametrize(
    "backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]
)
def test_no_usable_keyring_names_the_fixes(brain, backend: str) -> None:
    r = brain(
        "keys",
        "set",
        "apex",
        "--stdin",
        input="sk-x-1234\n",
        env={"PYTHON_KEYRING_BACKEND": backend},
    )
    assert r.code == 78
    assert (
        "keyrings.alt" in r.stderr and "BRAIN_APEX_KEY" in r.stderr and "Secret Service" in r.stderr
    )


def test_keys_set_without_terminal_or_stdin_flag(brain) -> None:
    r = brain("keys", "set", "apex")
    assert r.code == 2 and "--stdin" in r.stderr


def test_config_init_set_show_path(brain, home) -> None:
    path = brain("config", "path").stdout.strip()
    assert path == str(home.config / "brain" / "config.toml")
    r = brain("config", "init", "--no-input", "--apex-url", "http://apex.invalid:4000/")
    assert r.code == 0 and "does not answer" in r.stderr
    data = tomllib.loads(Path(path).read_text())
    assert data["apex"]["url"] == "http://apex.invalid:4000"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert brain("config", "set", "apex.first_token_timeout", "12").code == 0
    assert brain("config", "set", "tasks.lesson.route", "lesson_plan").code == 0
    shown = brain("config", "show", "--json").json
    assert shown["values"]["apex"]["first_token_timeout"] == 12.0
    assert shown["tasks"]["lesson"]["route"] == "lesson_plan"
    assert "lesson" in brain("routes").stdout


def test_config_init_with_no_url_and_no_terminal_says_how_to_give_one(brain, home) -> None:
    r = brain("config", "init", input="http://apex:4000\n")  # piped: nothing is asked
    assert r.code == 0
    assert "no URL set (stdin is not a terminal, so nothing was asked)" in r.stderr
    assert "--apex-url" in r.stderr and "`brain keys set apex` stores it" in r.stderr


def test_config_init_without_a_terminal_names_a_damaged_stored_key(brain, home) -> None:
    home.keyring.write_text(json.dumps({"brain/apex": "sk-two words"}))
    r = brain("config", "init", "--no-input", "--apex-url", "http://apex.invalid:4000")
    assert r.code == 0, r.stderr  # the file is written; the key is named, not used
    assert "holds characters no key has" in r.stderr and "brain keys set apex" in r.stderr
    assert "next: `brain status`" in r.stderr
    assert "sk-two words" not in r.stderr


def test_config_set_bad_values_exit_78(brain) -> None:
    r = brain("config", "set", "apex.probe_ttl", "soon")
    assert r.code == 78 and "probe_ttl" in r.stderr and ">= 0" in r.stderr
    r = brain("config", "set", "apex.colour", "blue")
    assert r.code == 78 and "Valid keys there" in r.stderr and "first_token_timeout" in r.stderr
    r = brain("config", "set", "apex.key", "sk-123")
    assert r.code == 78 and "brain keys set apex" in r.stderr
    r = brain("config", "set", "tasks.x.fallback", "cloud")
    assert r.code == 78 and '"local" or "none"' in r.stderr


def test_unknown_section_and_reserved_task_name(brain, write_config) -> None:
    write_config("[apexx]\nurl = 'http://x'\n")
    r = brain("routes")
    assert r.code == 78 and "[apexx]" in r.stderr and "[apex]" in r.stderr
    write_config("[tasks.status]\nroute = 'x'\n")
    r = brain("routes")
    assert r.code == 78 and "own commands" in r.stderr


def test_invalid_toml_exit_78(brain, write_config) -> None:
    path = write_config("[apex\nurl=")
    r = brain("dump", "x")
    assert r.code == 78 and str(path) in r.stderr


def test_status_json_all_green(apex: FakeApex, ollama: FakeOllama, brain) -> None:
    for route in [
        "brain_dump",
        "daily_digest",
        "long_context_summary",
        "draft",
        "code",
        "premium_reasoning",
        "default",
    ]:
        apex.answer(route, ["x"])
    r = brain("status", "--json")
    assert r.code == 0, r.stderr
    checks = {c["name"]: c for c in r.json["checks"]}
    assert (
        checks["apex"]["ok"]
        and checks["key"]["ok"]
        and checks["routes"]["ok"]
        and checks["local"]["ok"]
    )
    assert r.json["answering"] == "apex"


def test_status_names_missing_routes_and_rejected_key(
    apex: FakeApex, ollama: FakeOllama, brain
) -> None:
    apex.answer("brain_dump", ["x"])
    r = brain("status", "--json")
    checks = {c["name"]: c for c in r.json["checks"]}
    assert not checks["routes"]["ok"] and "daily_digest" in checks["routes"]["detail"]
    apex.key = "sk-right-one"
    r = brain("status", "--json", env={"BRAIN_APEX_KEY": "sk-wrong-one"})
    checks = {c["name"]: c for c in r.json["checks"]}
    assert checks["key"]["ok"] is False and "brain keys set apex" in checks["key"]["fix"]
    assert "sk-wrong-one" not in r.stdout


def test_status_nothing_reachable_exit_69(brain) -> None:
    r = brain("status", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69
    assert "refused" in r.stdout and "ollama serve" in r.stdout


def test_routes_lists_every_task(brain) -> None:
    r = brain("routes", "--json")
    rows = {t["task"]: t for t in r.json["tasks"]}
    assert rows["premium"]["fallback"] == "none" and rows["premium"]["local_model"] is None
    assert rows["digest"]["long_route"] == "long_context_summary"
    assert [rows[n]["route"] for n in ("dump", "draft", "code", "ask")] == [
        "brain_dump",
        "draft",
        "code",
        "default",
    ]


def test_history_n_and_json(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["a1"])
    for i in range(3):
        assert brain("dump", f"q{i}").code == 0
    r = brain("history", "-n", "2", "--json")
    lines = [json.loads(line) for line in r.stdout.splitlines()]  # one object per line
    assert [e["input"] for e in lines] == ["q1", "q2"]
    assert lines[-1]["backend"] == "apex" and lines[-1]["status"] == "answered"
    text = brain("history", "-n", "1").stdout
    assert "q2" in text and "a1" in text
    db = home.data / "brain" / "brain.db"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_queue_drop(brain) -> None:
    assert brain("dump", "forget me", env={"BRAIN_APEX_URL": refused_url()}).code == 69
    q = brain("queue", "list", "--json").json["queued"]
    assert brain("queue", "drop", str(q[0]["id"])).code == 0
    assert brain("queue", "list", "--json").json["queued"] == []
    assert brain("queue", "drop", "999").code == 2


def test_help_and_version(brain) -> None:
    r = brain("--help")
    assert r.code == 0
    for name in ("dump", "digest", "draft", "code", "premium", "ask", "status", "keys", "config"):
        assert name in r.stdout
    assert brain("--version").stdout.startswith("brain, version")
    assert brain("no-such-command").code == 2


def test_python_m_brain(brain) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "brain", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "brain" in r.stdout


def test_a_refused_config_set_leaves_the_file_as_it_was(brain, write_config) -> None:
    path = write_config('[apex]\nurl = "http://apex:4000"\n')
    before = path.read_text()
    r = brain("config", "set", "tasks.status.route", "foo")
    assert r.code == 78 and str(path) in r.stderr and "own commands" in r.stderr
    assert path.read_text() == before
    assert brain("routes").code == 0  # brain still works


@pytest.mark.parametrize(
    "value",
    ["http://[::1", "http://", "https://", "apex:4000", "http://apex:4000/v1", "http://apex:99999"],
)
def test_bad_urls_are_config_errors(brain, value: str) -> None:
    r = brain("config", "set", "apex.url", value)
    assert r.code == 78 and "apex.url" not in r.stdout and "base URL" in r.stderr
    r = brain("dump", "x", env={"BRAIN_APEX_URL": value})
    assert r.code == 78 and "Traceback" not in r.stderr


def test_non_utf8_config_is_a_config_error(brain, write_config) -> None:
    path = write_config("")
    path.write_bytes(b'[apex]\nurl = "http://caf\xe9:4000"\n')
    r = brain("dump", "x")
    assert r.code == 78 and "UTF-8" in r.stderr and str(path) in r.stderr


def test_a_slip_gets_did_you_mean(brain) -> None:
    r = brain("dupm", "call Sam")
    assert r.code == 2 and "No such command 'dupm'. Did you mean 'dump'?" in r.stderr
    r = brain("queue", "lsit")
    assert r.code == 2 and "Did you mean 'list'?" in r.stderr
    r = brain("keys", "sett", "apex")
    assert r.code == 2 and "Did you mean 'set'?" in r.stderr


def test_a_bare_question_points_at_brain_ask(brain) -> None:
    r = brain("what is a good soil pH?")
    assert r.code == 2
    assert "brain ask 'what is a good soil pH?'" in r.stderr
    r = brain("what", "is", "this")
    assert r.code == 2 and "brain ask 'what is this'" in r.stderr


@pytest.mark.parametrize(
    ("command", "takes", "not_taken"),
    [
        (("keys", "set"), [], ["--offline", "--online", "--route", "--model", "--json"]),
        (("keys", "delete"), [], ["--offline", "--route", "--json", "--config"]),
        (("keys", "list"), ["--json"], ["--offline", "--route", "--model"]),
        (("queue", "drop"), [], ["--offline", "--route", "--model", "--json"]),
        (("queue", "list"), ["--json"], ["--offline", "--route", "--model"]),
        (("queue", "run"), ["--offline", "--json", "--route"], []),
        (("history",), ["--json", "-q", "--task"], ["--offline", "--route", "--model"]),
        (("config", "path"), ["--config"], ["--offline", "--json", "--route"]),
        (("status",), ["--offline", "--json"], ["--route"]),
        (("dump",), ["--offline", "--online", "--json", "--route", "--model"], []),
    ],
)
def test_each_command_lists_only_the_flags_it_takes(brain, command, takes, not_taken) -> None:
    r = brain(*command, "--help")
    assert r.code == 0
    for flag in takes:
        assert f"{flag} " in r.stdout, flag
    for flag in not_taken:
        assert f"{flag} " not in r.stdout and f"{flag}," not in r.stdout, flag
    assert "-v, --verbose" in r.stdout


def test_global_flags_still_work_before_the_command(brain) -> None:
    assert brain("--offline", "queue", "list").code == 0
    assert brain("--json", "keys", "list").json["keys"]


def test_config_is_read_once_per_command(apex, brain, monkeypatch, write_config) -> None:
    from brain import settings

    write_config('[tasks.lesson]\nroute = "lesson_plan"\n')
    apex.answer("lesson_plan", ["planned"])
    calls: list[object] = []
    real = settings.load
    monkeypatch.setattr(settings, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert brain("lesson", "photosynthesis").stdout == "planned\n"
    assert len(calls) == 1


def test_a_broken_config_is_said_not_swallowed(brain, write_config) -> None:
    write_config("[apex]\nurl = 7\n")
    r = brain("dump", "x")
    assert r.code == 78 and "[apex] url = 7 is not valid" in r.stderr
    help_text = brain("--help")
    assert help_text.code == 0 and "Your own tasks are not listed" in help_text.stdout
    assert brain("lesson", "x").code == 78  # a name only config.toml could define: its error


def test_the_keyring_backend_found_once_is_tried_alone_next_time(home, monkeypatch) -> None:
    import keyring
    import keyring.core

    from brain import secrets

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)  # no keyringrc here

    def searching(search):  # keyring.get_keyring is core.get_keyring, under two names
        monkeypatch.setattr(keyring.core, "get_keyring", search)
        monkeypatch.setattr(keyring, "get_keyring", search)

    searching(lambda: __import__("brain_test_keyring").FileKeyring())
    secrets.set_key("apex", "sk-found-once")
    remembered = home.cache / "brain" / "keyring-backend"
    assert remembered.read_text().strip() == "brain_test_keyring.FileKeyring"

    # Next process: keyring's search of every backend is not run; the one kept is loaded.
    monkeypatch.setattr(secrets, "_chosen", None)
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)

    def no_search() -> None:
        raise AssertionError("keyring searched every backend again")

    searching(no_search)
    assert secrets.get("apex") == "sk-found-once"
    assert "sk-found-once" not in remembered.read_text()  # a class name, never a key

    # A kept name that no longer loads: keyring's own search again.
    remembered.write_text("no_such_module.Keyring\n")
    monkeypatch.setattr(secrets, "_chosen", None)
    searched: list[bool] = []

    def search():
        searched.append(True)
        return __import__("brain_test_keyring").FileKeyring()

    searching(search)
    assert secrets.get("apex") == "sk-found-once" and searched == [True]

    # Storing a key (and `brain status`) asks keyring afresh: a keyring set up since is seen.
    secrets.set_key("apex", "sk-stored-again")
    assert searched == [True, True]
    assert secrets.get("apex") == "sk-stored-again" and searched == [True, True]
    assert secrets.backend_name() and searched == [True, True, True]


def test_a_kept_keyring_backend_is_dropped_when_keyring_finds_several_or_the_user_chose(
    home, monkeypatch
) -> None:
    import keyring
    import keyring.core
    from keyring.backend import KeyringBackend

    from brain import secrets

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)
    kept = home.cache / "brain" / "keyring-backend"

    def searching(found: object) -> None:
        monkeypatch.setattr(keyring.core, "get_keyring", lambda: found)
        monkeypatch.setattr(keyring, "get_keyring", lambda: found)

    def next_process() -> None:
        monkeypatch.setattr(secrets, "_chosen", None)
        monkeypatch.setattr(keyring.core, "_keyring_backend", None)

    low = __import__("brain_test_keyring").FileKeyring()
    searching(low)
    secrets.set_key("apex", "sk-old")
    assert kept.read_text().strip() == "brain_test_keyring.FileKeyring"

    class Memory(KeyringBackend):
        priority = 5  # type: ignore[assignment]
        store: ClassVar[dict[str, str]] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get(username)

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[username] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop(username)

    class Chain:  # keyring's chainer: several backends, the highest priority first
        def __init__(self, *backends: KeyringBackend) -> None:
            self.backends = list(backends)

        def get_password(self, service: str, username: str) -> str | None:
            found = (b.get_password(service, username) for b in self.backends)
            return next((v for v in found if v is not None), None)

        def set_password(self, service: str, username: str, password: str) -> None:
            self.backends[0].set_password(service, username, password)

    # A second keyring appears (a desktop session's Secret Service): keyring chains both.
    searching(Chain(Memory(), low))
    secrets.set_key("apex", "sk-new")
    assert not kept.exists()  # order matters among several: nothing is picked alone
    next_process()
    assert secrets.get("apex") == "sk-new"  # not the old backend's sk-old

    # The user's own choice (keyringrc) is keyring's to read; brain keeps nothing beside it.
    searching(low)
    secrets.set_key("apex", "sk-low")
    assert kept.exists()
    monkeypatch.setattr(keyring.core, "load_config", lambda: low)
    next_process()
    secrets.set_key("apex", "sk-chosen")
    assert not kept.exists()
