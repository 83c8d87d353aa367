"""brain's own files (issue 31, items 8, 10, 12, 13): `config set` edits the user's file in
place (comments, layout, a symlink kept); a config path that is a directory or a device is a
clear 78; numbers that would overflow or never end are refused; directories are 0700 and
files 0600 whatever the umask; a damaged cache file is no cache, never a crash."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from fakes import FakeApex


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ----- item 8: config set edits in place ---------------------------------------------------

USER_FILE = """\
# brain on my laptop — read by brain, edited by me
[apex]
url = "http://apex:4000"   # Apex over Tailscale

# the patio model
[local]
model = "gemma4:e4b"  # small enough for 8 GB

[tasks.lesson]
# my own task
route = "draft"
"""


def test_config_set_keeps_comments_order_and_layout(brain, write_config) -> None:
    path = write_config(USER_FILE)
    assert brain("config", "set", "local.model", "gemma3:4b").code == 0
    assert brain("config", "set", "apex.first_token_timeout", "30").code == 0
    assert brain("config", "set", "tasks.lesson.temperature", "0.3").code == 0
    assert brain("config", "set", "premium.daily_usd", "2").code == 0
    text = path.read_text()
    for line in USER_FILE.splitlines():
        if "gemma4:e4b" not in line:
            assert line in text, line  # every other line, comments included, is still there
    assert 'model = "gemma3:4b"  # small enough for 8 GB' in text
    # A new key goes after the last key of its table, not under the next table's comment.
    assert text.index("first_token_timeout") < text.index("# the patio model")
    data = tomllib.loads(text)
    assert data["apex"]["first_token_timeout"] == 30.0
    assert data["tasks"]["lesson"] == {"route": "draft", "temperature": 0.3}
    assert data["premium"]["daily_usd"] == 2.0
    assert mode(path) == 0o600


def test_config_set_keeps_a_symlink_a_symlink(brain, home, monkeypatch) -> None:
    dotfiles = home.root / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "brain.toml"
    real.write_text(USER_FILE)
    link = home.config / "brain" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert brain("config", "set", "local.model", "qwen3:8b").code == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert 'model = "qwen3:8b"' in real.read_text() and "# the patio model" in real.read_text()
    assert sorted(p.name for p in dotfiles.iterdir()) == ["brain.toml"]  # no temp file left


def test_config_set_refused_leaves_the_file_byte_for_byte(brain, write_config) -> None:
    path = write_config(USER_FILE)
    before = path.read_bytes()
    assert brain("config", "set", "apex.first_token_timeout", "inf").code == 78
    assert brain("config", "set", "tasks.lesson.fallback", "cloud").code == 78
    assert path.read_bytes() == before


# ----- item 13: a config path that is not a file ---------------------------------------------


def test_a_config_toml_that_is_a_directory_is_78(brain, home) -> None:
    (home.config / "brain" / "config.toml").mkdir(parents=True)
    r = brain("dump", "x")
    assert r.code == 78 and "is a directory" in r.stderr


@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_config_that_is_a_device_is_78_and_never_read(brain, how: str) -> None:
    if how == "env":
        r = brain("status", env={"BRAIN_CONFIG": "/dev/zero"})
    else:
        r = brain("--config", "/dev/zero", "status")
    assert r.code == 78, r.stderr
    assert "/dev/zero is not a regular file" in r.stderr and "does not exist" not in r.stderr


def test_a_config_that_is_a_pipe_is_78_and_never_read(brain, home) -> None:
    fifo = home.root / "config.fifo"
    os.mkfifo(fifo)
    r = brain("--config", str(fifo), "status")  # reading it would block forever
    assert r.code == 78 and "not a regular file" in r.stderr


def test_a_dangling_config_symlink_says_where_it_points(brain, home) -> None:
    link = home.config / "brain" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(home.root / "gone.toml")
    r = brain("status")
    assert r.code == 78 and "gone.toml" in r.stderr and "does not exist" in r.stderr


def test_an_explicit_config_that_is_missing_says_so(brain, home) -> None:
    r = brain("--config", str(home.root / "nope.toml"), "status")
    assert r.code == 78 and "does not exist" in r.stderr


def test_a_huge_config_is_refused_not_read(brain, write_config) -> None:
    write_config("# x\n" * 400_000)  # 1.6 MB
    r = brain("status")
    assert r.code == 78 and "larger than" in r.stderr


# ----- item 10: numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[apex]\nfirst_token_timeout = inf\n",
        "[apex]\nfirst_token_timeout = nan\n",
        "[apex]\nfirst_token_timeout = 1e308\n",
        "[apex]\nconnect_timeout = inf\n",
        "[apex]\nprobe_ttl = 1e400\n",
        "[local]\ncontext_tokens = 1e400\n",
        "[local]\ncontext_tokens = 99999999999999999999999999\n",
        "[premium]\ndaily_usd = -1\n",
        "[premium]\ndaily_usd = nan\n",
        "[premium]\ndaily_usd = inf\n",
        "[tasks.x]\nmax_tokens = 1e400\n",
        "[tasks.x]\ntemperature = nan\n",
    ],
)
def test_numbers_that_overflow_or_never_end_are_78(brain, write_config, text: str) -> None:
    write_config(text)
    r = brain("dump", "x")
    assert r.code == 78, (text, r.stderr)
    assert "is not valid" in r.stderr


def test_deeply_nested_toml_is_78(brain, write_config) -> None:
    write_config("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    r = brain("status")
    assert r.code == 78, r.stderr


@pytest.mark.parametrize(
    "content",
    [
        '{"url": 1, "ok": "yes", "at": "now"}',
        "[1, 2, 3]",
        '{"url": "x", "ok": true, "at": 1e999}',
        "[" * 50_000 + "]" * 50_000,
        "\x00\xff garbage",
        '{"url": null}',
    ],
)
def test_a_damaged_cache_file_is_no_cache(apex: FakeApex, brain, home, content: str) -> None:
    apex.answer("brain_dump", ["fine"])
    cache = home.cache / "brain"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("apex-probe.json", "apex-model-info.json", "ollama-show.json", "local-kind.json"):
        (cache / name).write_text(content)
    r = brain("dump", "x")
    assert r.code == 0 and r.stdout == "fine\n", r.stderr
    assert brain("status").code in (0, 69, 77)  # whatever it finds, not a crash


def test_a_cache_file_that_is_a_directory_or_endless_is_no_cache(
    apex: FakeApex, brain, home
) -> None:
    apex.answer("brain_dump", ["fine"])
    cache = home.cache / "brain"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "apex-probe.json").mkdir()
    (cache / "local-kind.json").symlink_to("/dev/zero")
    r = brain("dump", "x")
    assert r.code == 0 and r.stdout == "fine\n", r.stderr


# ----- item 12: permissions ----------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_brain_dirs_are_0700_and_files_0600_whatever_the_umask(
    apex: FakeApex, brain, home, umask: int
) -> None:
    apex.answer("brain_dump", ["fine"])
    old = os.umask(umask)
    try:
        assert brain("config", "init", "--no-input", "--apex-url", apex.url).code == 0
        assert brain("dump", "x").code == 0
        assert brain("config", "set", "local.model", "x:1").code == 0
    finally:
        os.umask(old)
    dirs = [home.config / "brain", home.data / "brain", home.cache / "brain"]
    for d in dirs:
        assert mode(d) == 0o700, d
        for f in d.iterdir():
            assert mode(f) == 0o600, f
    names = {f.name for d in dirs for f in d.iterdir()}
    assert {"config.toml", "brain.db", "apex-probe.json"} <= names


def test_a_loose_brain_dir_from_an_older_brain_is_tightened(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["fine"])
    for d in (home.data / "brain", home.cache / "brain"):
        d.mkdir(parents=True)
        d.chmod(0o755)
    assert brain("dump", "x").code == 0
    assert mode(home.data / "brain") == 0o700 and mode(home.cache / "brain") == 0o700


def test_the_notify_lock_is_private(home, monkeypatch) -> None:
    from brain import notify

    monkeypatch.setenv("BRAIN_SLACK_WEBHOOK", "http://127.0.0.1:9/hook")
    old = os.umask(0)
    try:
        notify.main()
    finally:
        os.umask(old)
    assert mode(home.data / "brain" / "notify.lock") == 0o600


def test_a_cache_write_is_atomic_and_private(tmp_path: Path) -> None:
    from brain.files import load_cache, save_cache

    (tmp_path / "cache").mkdir()
    path = tmp_path / "cache" / "c.json"
    old = os.umask(0)
    try:
        assert save_cache(path, {"a": 1})
    finally:
        os.umask(old)
    assert mode(path) == 0o600 and load_cache(path) == {"a": 1}
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]


def test_a_loose_brain_db_from_an_older_brain_is_tightened(apex: FakeApex, brain, home) -> None:
    apex.answer("brain_dump", ["fine"])
    assert brain("dump", "x").code == 0
    db = home.data / "brain" / "brain.db"
    db.chmod(0o644)
    assert brain("dump", "y").code == 0
    assert mode(db) == 0o600
    for extra in db.parent.glob("brain.db-*"):
        assert mode(extra) == 0o600, extra
