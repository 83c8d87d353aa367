"""brain.xdg works out brain's directories on Linux without importing platformdirs (issue 32:
~5 ms of every command); here it must give what platformdirs gives, in a fresh interpreter for
each environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.name != "posix" or sys.platform == "darwin", reason="the XDG rule: Linux and the BSDs"
)

ASK = (
    "import json, platformdirs\n"
    "from brain import xdg\n"
    "print(json.dumps([[xdg.user_dir(k), getattr(platformdirs, f'user_{k}_dir')('brain',"
    " appauthor=False)] for k in ('config', 'data', 'cache')]))"
)


@pytest.mark.parametrize(
    "env",
    [
        {},  # nothing set: ~/.config, ~/.local/share, ~/.cache
        {"XDG_CONFIG_HOME": "/x/conf", "XDG_DATA_HOME": "/x/data/", "XDG_CACHE_HOME": "/x/c"},
        {"XDG_CONFIG_HOME": "", "XDG_DATA_HOME": "  ", "XDG_CACHE_HOME": ""},
        {"HOME": "/home/elsewhere"},
    ],
)
def test_brains_directories_are_platformdirs_answers(env: dict[str, str], tmp_path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    base["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", ASK],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for ours, theirs in json.loads(out):
        assert ours == theirs


def test_an_answer_does_not_import_platformdirs(tmp_path) -> None:
    code = (
        "import sys\nfrom brain import paths\n"
        "paths.config_path(); paths.data_dir(); paths.cache_dir()\n"
        "print('platformdirs' in sys.modules)"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith(("XDG_", "BRAIN_CONFIG"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_relative_xdg_variable_or_home_is_not_used(tmp_path, monkeypatch) -> None:
    # The XDG spec: a relative path is invalid and ignored (platformdirs 4.14 agrees; earlier
    # releases, which pyproject allows, used it as given, relative to wherever brain ran).
    from brain import xdg

    monkeypatch.setenv("HOME", str(tmp_path))
    for var, value in (("XDG_CONFIG_HOME", "rel/conf"), ("XDG_DATA_HOME", "./data")):
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("XDG_CACHE_HOME", "~/c")
    assert xdg.user_dir("config") == str(tmp_path / ".config" / "brain")
    assert xdg.user_dir("data") == str(tmp_path / ".local" / "share" / "brain")
    assert xdg.user_dir("cache") == str(tmp_path / ".cache" / "brain")
    monkeypatch.setenv("HOME", "relative/home")  # no home: the account's (pwd)
    import pwd

    assert xdg.user_dir("cache") == os.path.join(
        pwd.getpwuid(os.getuid()).pw_dir, ".cache", "brain"
    )
