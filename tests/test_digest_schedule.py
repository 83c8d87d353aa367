"""`brain digest --schedule HH:MM`: the scheduler entry for every morning without typing.

systemctl and crontab are stand-ins on PATH (a test must not touch the real user's crontab or
user manager); what they are given is checked, the systemd units are checked by the real
`systemd-analyze verify` when it is installed, and the crontab line is run by a real `sh`
with cron's bare environment, against the fake Apex. launchd and Task Scheduler entries are
built and read back (plistlib), not run: this machine is Linux.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeApex

from brain.digest import schedule

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
if [ "$1 $2" = "--user show-environment" ]; then
  [ -n "$FAKE_SYSTEMD" ] && exit 0
  echo "Failed to connect to bus: No medium found" >&2; exit 1
fi
exit 0
"""
FAKE_CRONTAB = """#!/bin/sh
echo "crontab $*" >> "$FAKE_LOG"
case "$1" in
  -l) if [ -f "$FAKE_CRONTAB" ]; then cat "$FAKE_CRONTAB"; else echo "no crontab for $USER" >&2; exit 1; fi ;;
  -) cat > "$FAKE_CRONTAB" ;;
esac
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("crontab", FAKE_CRONTAB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_CRONTAB", str(tmp_path / "crontab.txt"))
    return tmp_path


def calls(tools: Path) -> list[str]:
    log = tools / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


SOURCE = '[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n'


def test_systemd_user_timer(
    tools: Path, brain, write_config, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SYSTEMD", "1")
    write_config(SOURCE)
    out = home.root / "digest.md"
    r = brain(
        "digest",
        "--post",
        "--out",
        "digest.md",
        "--schedule",
        "07:30",
        env={"BRAIN_SLACK_WEBHOOK": "https://hooks.slack.example/T/B/secret-hook"},
    )
    assert r.code == 0, r.stderr
    units = home.config / "systemd" / "user"
    service = (units / "brain-digest.service").read_text()
    timer = (units / "brain-digest.timer").read_text()
    brain_exe = Path(sys.executable).parent / "brain"
    assert f"ExecStart={brain_exe} digest --out {out} --post" in service
    assert f"Environment=XDG_CONFIG_HOME={home.config}" in service
    assert "Environment=PATH=" in service or 'Environment="PATH=' in service
    assert "OnCalendar=*-*-* 07:30:00" in timer and "Persistent=true" in timer
    assert "secret-hook" not in service + timer  # a key never goes into an entry
    assert "BRAIN_SLACK_WEBHOOK is set in this shell but not written" in r.stderr
    assert calls(tools)[-2:] == [
        "--user daemon-reload",
        "--user enable --now brain-digest.timer",
    ]
    assert "with a systemd user timer" in r.stdout and "brain digest --schedule off" in r.stdout
    assert "loginctl enable-linger" in r.stderr
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(
            ["systemd-analyze", "verify", str(units / "brain-digest.timer")],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    r = brain("digest", "--schedule", "off")
    assert r.code == 0 and not (units / "brain-digest.timer").exists()
    assert "--user disable --now brain-digest.timer" in calls(tools)


def test_cron_line_replaces_its_own_and_runs_the_digest(
    tools: Path, brain, write_config, home, apex: FakeApex
) -> None:
    (tools / "crontab.txt").write_text("0 1 * * * /usr/bin/backup # someone else's\n")
    write_config(SOURCE)
    (home.root / "notes").mkdir()
    (home.root / "notes" / "mon.md").write_text("monday: 50% of the essays graded\n")
    r = brain("digest", "--schedule", "6:05")
    assert r.code == 0, r.stderr
    r = brain("digest", "--schedule", "06:15")  # again: replaced, not added
    assert r.code == 0, r.stderr
    lines = (tools / "crontab.txt").read_text().splitlines()
    assert lines[0] == "0 1 * * * /usr/bin/backup # someone else's"
    assert len(lines) == 2 and lines[1].startswith("15 6 * * * cd ")
    assert lines[1].endswith(" # brain-digest") and "digest.log" in lines[1]
    assert "missed while the laptop slept" in r.stderr
    # The line works as cron runs it: sh, a bare environment, from HOME.
    apex.answer("daily_digest", ["digest from cron"])
    command = lines[1].split(" ", 5)[5].replace("\\%", "%")
    # cron's HOME comes from the password file, not from the shell that scheduled the job.
    assert f" HOME={home.root} " in lines[1]
    bare = {"HOME": "/", "LOGNAME": "u", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["sh", "-c", command], env=bare, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    log = (home.data / "brain" / "digest.log").read_text()
    assert "digest from cron" in log and "notes (glob ~/notes/*.md): 1 file" in log
    assert "50% of the essays" in apex.requests[-1]["messages"][1]["content"]
    r = brain("digest", "--schedule", "off")
    assert r.code == 0
    assert (tools / "crontab.txt").read_text() == "0 1 * * * /usr/bin/backup # someone else's\n"


def test_schedule_refuses_what_would_fail_every_morning(tools: Path, brain, write_config):
    r = brain("digest", "--schedule", "07:30")
    assert r.code == 2 and "no [[digest.sources]]" in r.stderr
    write_config(SOURCE)
    assert brain("digest", "--schedule", "7.30").code == 2
    assert brain("digest", "--schedule", "24:00").code == 2
    r = brain("digest", "--schedule", "07:30", "--post")
    assert r.code == 77 and "brain keys set slack" in r.stderr
    r = brain("digest", "--schedule", "07:30", "--since", "2024-01-01")
    assert r.code == 2 and "same date every day" in r.stderr
    assert not (tools / "crontab.txt").exists()


def test_no_scheduler_here_names_the_fix(
    tools: Path, brain, write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tools / "fakebin" / "crontab").unlink()
    monkeypatch.setenv("PATH", str(tools / "fakebin"))  # no crontab, no user manager
    write_config(SOURCE)
    r = brain("digest", "--schedule", "07:30")
    assert r.code == 69 and "apt-get install cron" in r.stderr and "digest" in r.stderr


def test_launchd_and_windows_entries_read_back(tmp_path: Path) -> None:
    argv = ["/Users/u/.local/bin/brain", "digest", "--post"]
    env = {"PATH": "/usr/bin:/bin", "BRAIN_CONFIG": "/Users/u/50% off.toml"}
    log = tmp_path / "digest.log"
    entry = schedule.build("launchd", 7, 5, argv, env, config_home=tmp_path, home=tmp_path, log=log)
    ((path, text),) = entry.files.items()
    plist = plistlib.loads(text.encode())
    assert path.name == "com.brain.digest.plist"
    assert plist["ProgramArguments"] == argv and plist["EnvironmentVariables"] == env
    assert plist["StartCalendarInterval"] == {"Hour": 7, "Minute": 5}
    assert entry.run[-1][:2] == ["launchctl", "bootstrap"]
    entry = schedule.build(
        "windows",
        7,
        5,
        [r"C:\u\brain.exe", "digest"],
        env,
        config_home=tmp_path,
        home=tmp_path,
        log=log,
    )
    ((path, text),) = entry.files.items()
    assert path.suffix == ".cmd" and "\r\n" in text
    assert 'set "BRAIN_CONFIG=/Users/u/50%% off.toml"' in text  # % doubled in a .cmd file
    script = entry.run[0][-1]
    assert "New-ScheduledTaskTrigger -Daily -At '07:05'" in script
    assert (
        "-StartWhenAvailable" in script
        and "Register-ScheduledTask -TaskName 'brain-digest'" in script
    )


def test_systemd_quoting() -> None:
    entry = schedule.build(
        "systemd",
        7,
        30,
        ["/opt/my brain/brain", "digest", "--", 'say "hi" 100% $HOME'],
        {"PATH": "/a b:/usr/bin"},
        config_home=Path("/c"),
        home=Path("/h"),
        log=Path("/l"),
    )
    service = entry.files[Path("/c/systemd/user/brain-digest.service")]
    assert 'ExecStart="/opt/my brain/brain" digest -- "say \\"hi\\" 100%% $$HOME"' in service
    assert 'Environment="PATH=/a b:/usr/bin"' in service
