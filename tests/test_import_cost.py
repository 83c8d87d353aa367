"""What the request path imports: the things that cost start-up time must stay away from it.

Checked in a fresh interpreter, since this test process has imported everything already.
The time itself is measured in bench/ (bench/README.md), never here.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_httpx_does_not_drag_in_rich_or_pygments():
    # httpx/__init__ imports its CLI (rich, pygments) unless brain marks it absent.
    mods = _modules_after("import brain, httpx; httpx.Client")
    assert "httpx" in mods
    assert not {m for m in mods if m.split(".")[0] in ("rich", "pygments")}


def test_httpx_still_works_after_brain_is_imported():
    mods = _modules_after(
        "import brain, httpx\n"
        "assert callable(httpx.main)\n"  # the stub httpx defines when its CLI is missing
        "httpx.Request('GET', 'http://127.0.0.1/')"
    )
    assert "httpx" in mods


def test_help_path_imports_click_only():
    mods = _modules_after("import brain.cli")
    heavy = {"httpx", "httpcore", "rich", "prompt_toolkit", "keyring", "sqlite3", "h11"}
    # "httpx._main" is only brain's marker (None in sys.modules), not an import of httpx.
    assert not heavy & {m.split(".")[0] for m in mods if m != "httpx._main"}


def test_help_does_not_load_package_resource_machinery():
    # `brain --help` reads the task table; importlib.resources (with zipfile) costs ~8 ms.
    mods = _modules_after(
        "import contextlib, io\n"
        "from brain.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['--help'])"
    )
    assert "brain.tasks" in mods
    assert not {"importlib.resources", "zipfile"} & mods


def _help(home, env_extra: dict | None = None, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "COLUMNS": "100", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "brain", "--help", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.root,
        check=True,
    )


def _imported(run: subprocess.CompletedProcess) -> set[str]:
    return {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}


def test_a_second_help_needs_no_click_and_says_the_same(home) -> None:
    first = _help(home)
    assert "click" in _imported(first)  # rendered by click, and kept
    second = _help(home)
    assert "click" not in _imported(second) and "brain.cli" not in _imported(second)
    assert second.stdout == first.stdout and "dump" in second.stdout


def test_the_kept_help_follows_config_toml_and_the_width(home, write_config) -> None:
    _help(home)
    write_config('[tasks.lesson]\nroute = "lesson_plan"\n')
    changed = _help(home)
    assert "click" in _imported(changed) and "lesson" in changed.stdout  # rendered anew
    narrow = _help(home, {"COLUMNS": "60"})
    assert "click" in _imported(narrow)
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60
    assert narrow.stdout != changed.stdout


def _help_into(home, stdout, *, close: bool = False) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "brain", "--help"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        cwd=home.root,
        # `>&-`: the child starts with descriptor 1 closed
        preexec_fn=(lambda: os.close(1)) if close else None,
    )


def test_help_into_a_full_disk_or_a_closed_stdout_says_so_kept_or_not(home) -> None:
    for attempt in ("rendered by click", "the kept help"):
        with open("/dev/full", "w") as full:
            r = _help_into(home, full)
        assert r.returncode == 74, (attempt, r.stderr)
        assert "No space left on device" in r.stderr and "Traceback" not in r.stderr, attempt
        assert "Exception ignored" not in r.stderr, attempt
    closed = _help_into(home, None, close=True)
    assert closed.returncode == 74 and "stdout is closed" in closed.stderr, closed.stderr
    assert "Traceback" not in closed.stderr


def test_help_rendered_with_bad_settings_is_not_kept(home, write_config) -> None:
    write_config('[tasks.lesson]\nroute = "lesson_plan"\n')
    bad = _help(home, {"BRAIN_APEX_URL": "ftp://u:hunter2@apex:4000"})
    assert "lesson" not in bad.stdout and "not listed" in bad.stdout
    good = _help(home)
    assert "click" in _imported(good) and "lesson" in good.stdout  # rendered anew
    assert "hunter2" not in (home.cache / "brain" / "help.txt").read_text()


def test_the_kept_help_is_not_used_where_stdout_cannot_encode_it(home) -> None:
    _help(home)
    ascii_out = _help(home, {"PYTHONIOENCODING": "ascii"})
    # click renders it (for an ASCII stdout it writes UTF-8, taking ASCII as a misconfigured
    # locale) instead of the fast path failing on the first dash or arrow
    assert "click" in _imported(ascii_out)
    assert ascii_out.returncode == 0 and "dump" in ascii_out.stdout


def test_an_answer_from_a_plain_http_apex_imports_no_httpx_ssl_or_platformdirs(home, apex) -> None:
    # issue 32: httpx (with ssl, h11, httpcore) and platformdirs were ~55 ms of every answer.
    import os

    apex.answer("brain_dump", ["done"])
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "brain", "dump", "x"],
        capture_output=True,
        text=True,
        env={**os.environ, "BRAIN_APEX_KEY": "sk-import-cost"},  # the keyring is its own cost
        cwd=home.root,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    assert run.stdout == "done\n"
    loaded = {name.split(".")[0] for name in _imported(run)}
    heavy = {"httpx", "httpcore", "h11", "ssl", "certifi", "platformdirs", "keyring"}
    assert not heavy & loaded, sorted(heavy & loaded)
