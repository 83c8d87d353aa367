"""The scheduler entry that runs `brain digest` every day at a chosen time, for the system it
is on: a systemd user timer (Linux, when a user manager answers) or a crontab line (Linux
otherwise), a launchd agent (macOS), a Task Scheduler task (Windows). Nothing of brain runs in
the background otherwise: the system's own scheduler starts brain, which exits when done.

What must stay true:
- The entry runs the same brain (this interpreter's `brain` script) with the flags given, the
  PATH of the shell that scheduled it (a `command` source finds its programs), and brain's
  non-secret environment (BRAIN_CONFIG, BRAIN_APEX_URL, XDG_* …). A key is never written into
  an entry: the job reads the keyring, like any brain run.
- Scheduling again replaces the entry (one per user, named `brain-digest`); `--schedule off`
  removes it.
- A missed time (the laptop asleep at 07:30) runs when the machine wakes, where the system
  allows it (systemd Persistent=, launchd, Task Scheduler StartWhenAvailable; cron cannot).
Prints nothing; returns what was done for the command to show.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from brain.errors import BrainError, NotInstalled, UsageError

NAME = "brain-digest"
LABEL = "com.brain.digest"  # launchd
SYSTEMS = ("systemd", "cron", "launchd", "windows")
MARK = f"# {NAME}"  # ends brain's crontab line, so that it can be found and replaced
# Environment brain reads that a scheduled run must see as the shell that scheduled it does.
CARRIED = (
    "BRAIN_CONFIG",
    "BRAIN_APEX_URL",
    "BRAIN_LOCAL_URL",
    "BRAIN_LOCAL_MODEL",
    "BRAIN_OFFLINE",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
)
SECRET_ENV = ("BRAIN_APEX_KEY", "BRAIN_SLACK_WEBHOOK", "BRAIN_ANTHROPIC_KEY")


class SchedulerFailed(BrainError):
    exit_code = 69


@dataclass
class Entry:
    """What scheduling writes and runs, and how the user sees, tries and removes it."""

    system: str
    when: str  # "07:30"
    argv: list[str]  # the command it runs
    files: dict[Path, str] = field(default_factory=dict)
    run: list[list[str]] = field(default_factory=list)  # commands run after writing the files
    cron_line: str = ""
    see: str = ""
    log: str = ""
    now: str = ""  # how to run it once now, as the scheduler would
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return {
            "systemd": "a systemd user timer",
            "cron": "a line in your crontab",
            "launchd": "a launchd agent",
            "windows": "a Task Scheduler task",
        }[self.system]


def parse_time(text: str) -> tuple[int, int]:
    found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not found:
        raise UsageError(
            f"--schedule {text!r} is not a time of day.",
            "Give HH:MM in 24-hour local time, e.g. --schedule 07:30 (or --schedule off).",
        )
    return int(found.group(1)), int(found.group(2))


def default_system() -> str:
    """The scheduler for this machine: Windows, macOS, or on Linux systemd's user manager when
    it answers, else cron."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "launchd"
    if _systemd_user_answers():
        return "systemd"
    if shutil.which("crontab"):
        return "cron"
    return ""


def installed_here() -> list[str]:
    """Every scheduler an entry of brain's may be in on this machine (`--schedule off` looks in
    all of them: a laptop that gained a systemd session may still have brain's cron line)."""
    if sys.platform == "win32":
        return ["windows"]
    if sys.platform == "darwin":
        return ["launchd"]
    return ["systemd", *(["cron"] if shutil.which("crontab") else [])]


def _systemd_user_answers() -> bool:
    if not shutil.which("systemctl"):
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def program() -> list[str]:
    """This brain: the `brain` script beside this interpreter (a venv, pipx), else `python -m
    brain` with this interpreter."""
    scripts = Path(sys.executable).parent
    for name in ("brain.exe", "brain") if os.name == "nt" else ("brain",):
        if (scripts / name).is_file():
            return [str(scripts / name)]
    return [sys.executable, "-m", "brain"]


def environment(system: str) -> tuple[dict[str, str], list[str]]:
    """(what the entry sets, the secret variables set here that it leaves out)."""
    # HOME too: brain finds its config, history and keyring from it, and a scheduler may
    # start the job with another (cron takes it from the password file).
    env = {"HOME": str(Path.home()), "PATH": os.environ.get("PATH", os.defpath)}
    env.update({k: os.environ[k] for k in CARRIED if os.environ.get(k)})
    bus = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if system == "cron" and bus.startswith("unix:path=/run/user/"):
        # cron gives no session bus, and the Secret Service (the keyring) is reached over it;
        # this address stays the same for as long as the user has a session (systemd-logind).
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    return env, [k for k in SECRET_ENV if os.environ.get(k)]


def build(
    system: str,
    hour: int,
    minute: int,
    argv: list[str],
    env: dict[str, str],
    *,
    config_home: Path,
    home: Path,
    log: Path,
) -> Entry:
    """The entry for `system` (no side effects: a test or a user can read it first)."""
    # long: one entry per scheduler, each written out whole so it reads like the file it makes.
    when = f"{hour:02d}:{minute:02d}"
    entry = Entry(system, when, argv)
    if system == "systemd":
        unit_dir = config_home / "systemd" / "user"
        lines = [
            "[Unit]",
            "Description=brain digest (written by `brain digest --schedule`)",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={_systemd_escape(str(home))}",
            *(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in env.items()),
            "ExecStart=" + " ".join(_systemd_quote(a) for a in argv),
        ]
        timer = [
            "[Unit]",
            f"Description=brain digest every day at {when}",
            "",
            "[Timer]",
            f"OnCalendar=*-*-* {when}:00",
            "Persistent=true",  # a morning missed asleep runs when the laptop wakes
            "",
            "[Install]",
            "WantedBy=timers.target",
        ]
        entry.files = {
            unit_dir / f"{NAME}.service": "\n".join(lines) + "\n",
            unit_dir / f"{NAME}.timer": "\n".join(timer) + "\n",
        }
        entry.run = [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", f"{NAME}.timer"],
        ]
        entry.see = f"systemctl --user list-timers {NAME}.timer"
        entry.log = f"journalctl --user -u {NAME}"
        entry.now = f"systemctl --user start {NAME}.service"
        entry.notes.append(
            "A user timer runs while you are logged in; to run it when you are not: "
            "`loginctl enable-linger $USER`."
        )
    elif system == "cron":
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = " ".join(shlex.quote(a) for a in argv)
        line = (
            f"{minute} {hour} * * * cd {shlex.quote(str(home))} && {assignments} {command} "
            f">> {shlex.quote(str(log))} 2>&1 {MARK}"
        )
        entry.cron_line = line.replace("%", "\\%")  # cron reads % as a line break
        entry.see = "crontab -l"
        entry.log = str(log)
        entry.now = command
        entry.notes.append(
            "cron does not run a time it missed while the laptop slept; a systemd user timer "
            "does (`--scheduler systemd`, when your session has one)."
        )
    elif system == "launchd":
        import plistlib

        plist = {
            "Label": LABEL,
            "ProgramArguments": argv,
            "EnvironmentVariables": env,
            "StartCalendarInterval": {"Hour": hour, "Minute": minute},
            "WorkingDirectory": str(home),
            "StandardOutPath": str(log),
            "StandardErrorPath": str(log),
        }
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        entry.files = {path: plistlib.dumps(plist).decode("utf-8")}
        target = f"gui/{os.getuid() if hasattr(os, 'getuid') else 0}"
        entry.run = [
            ["launchctl", "bootout", f"{target}/{LABEL}"],  # the earlier one, if any
            ["launchctl", "bootstrap", target, str(path)],
        ]
        entry.see = f"launchctl print {target}/{LABEL}"
        entry.log = str(log)
        entry.now = f"launchctl kickstart {target}/{LABEL}"
    elif system == "windows":
        script = log.parent / f"{NAME}.cmd"
        body = [
            "@echo off",
            f"rem Written by `brain digest --schedule`; run by the scheduled task {NAME}.",
            *(f'set "{k}={_cmd_escape(v)}"' for k, v in env.items() if k != "PATH"),
            f'cd /d "{home}"',
            f'{_cmd_escape(subprocess.list2cmdline(argv))} >> "{log}" 2>&1',
        ]
        entry.files = {script: "\r\n".join(body) + "\r\n"}
        ps = (
            f"$action = New-ScheduledTaskAction -Execute {_ps(str(script))}; "
            f"$trigger = New-ScheduledTaskTrigger -Daily -At {_ps(when)}; "
            "$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable "
            "-AllowStartIfOnBatteries -DontStopIfGoingOnBatteries "
            "-ExecutionTimeLimit (New-TimeSpan -Hours 2); "
            f"Register-ScheduledTask -TaskName {_ps(NAME)} -Action $action -Trigger $trigger "
            "-Settings $settings -Description 'brain digest (brain digest --schedule)' -Force "
            "| Out-Null"
        )
        entry.run = [["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", ps]]
        entry.see = f"schtasks /Query /TN {NAME}"
        entry.log = str(log)
        entry.now = f"schtasks /Run /TN {NAME}"
    else:  # pragma: no cover - the choice is checked by the command
        raise UsageError(f"no scheduler `{system}`", f"Choose one of {', '.join(SYSTEMS)}.")
    return entry


def _systemd_quote(arg: str) -> str:
    """One word of a systemd ExecStart= or Environment= line ($ and % are systemd's own)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[\w./:=@+,-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_escape(value: str) -> str:
    return value.replace("%", "%%")


def _cmd_escape(value: str) -> str:
    return value.replace("%", "%%")


def _ps(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def install(entry: Entry) -> list[str]:
    """Write the entry's files and run its commands; what was done, one line each.
    SchedulerFailed (69) names the command that failed and what it said."""
    done: list[str] = []
    for path, text in entry.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
        done.append(f"wrote {path}")
    if entry.system == "cron":
        current = _crontab_lines()
        kept = [ln for ln in current if not ln.rstrip().endswith(MARK)]
        _write_crontab([*kept, entry.cron_line])
        done.append("added to your crontab: " + entry.cron_line)
    for i, command in enumerate(entry.run):
        may_fail = entry.system == "launchd" and i == 0  # bootout of an entry not loaded
        try:
            _run(command, may_fail=may_fail)
        except BrainError as exc:
            written = "; ".join(done) or "nothing was written"
            rest = " && ".join(_shown(c) for c in entry.run[i:])
            exc.fix = f"So far: {written}. Once that is fixed, run `{rest}` yourself."
            raise
        if not may_fail:
            done.append("ran " + _shown(command))
    return done


def remove(system: str, *, config_home: Path, home: Path, log: Path) -> list[str]:
    """Remove brain's entry for `system`; what was removed ([] when there was none)."""
    done: list[str] = []
    if system == "cron":
        current = _crontab_lines()
        kept = [ln for ln in current if not ln.rstrip().endswith(MARK)]
        if kept != current:
            _write_crontab(kept)
            done.append("removed brain's line from your crontab")
        return done
    if system == "systemd":
        unit_dir = config_home / "systemd" / "user"
        files = [unit_dir / f"{NAME}.timer", unit_dir / f"{NAME}.service"]
        if not any(f.exists() for f in files):
            return done
        _run(["systemctl", "--user", "disable", "--now", f"{NAME}.timer"], may_fail=True)
        for f in files:
            if f.exists():
                f.unlink()
                done.append(f"removed {f}")
        _run(["systemctl", "--user", "daemon-reload"], may_fail=True)
        return done
    if system == "launchd":
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        if not path.exists():
            return done
        target = f"gui/{os.getuid() if hasattr(os, 'getuid') else 0}"
        _run(["launchctl", "bootout", f"{target}/{LABEL}"], may_fail=True)
        path.unlink()
        return [f"removed {path}"]
    script = log.parent / f"{NAME}.cmd"
    ps = f"Unregister-ScheduledTask -TaskName {_ps(NAME)} -Confirm:$false"
    if _run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", ps], may_fail=True):
        done.append(f"removed the scheduled task {NAME}")
    if script.exists():
        script.unlink()
        done.append(f"removed {script}")
    return done


def _crontab_lines() -> list[str]:
    try:
        shown = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NotInstalled(
            "crontab is not installed here.",
            "Install cron (Debian/Ubuntu: `sudo apt-get install cron`), or choose another "
            "scheduler with --scheduler.",
        ) from None
    if shown.returncode != 0:
        if "no crontab" in shown.stderr.lower():
            return []
        raise SchedulerFailed(f"`crontab -l` failed: {shown.stderr.strip() or shown.returncode}")
    return shown.stdout.splitlines()


def _write_crontab(lines: list[str]) -> None:
    text = "\n".join(lines).strip("\n") + "\n" if lines else ""
    written = subprocess.run(
        ["crontab", "-"], input=text, capture_output=True, text=True, timeout=30
    )
    if written.returncode != 0:
        raise SchedulerFailed(
            f"`crontab -` refused the new crontab: {written.stderr.strip() or written.returncode}",
            "Your crontab is as it was. Check it with `crontab -l`.",
        )


def _run(command: list[str], *, may_fail: bool = False) -> bool:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        if may_fail:
            return False
        raise NotInstalled(f"`{command[0]}` is not installed here.") from None
    except subprocess.TimeoutExpired:
        if may_fail:
            return False
        raise SchedulerFailed(f"`{_shown(command)}` did not finish within 60 s.") from None
    if done.returncode != 0 and not may_fail:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise SchedulerFailed(
            f"`{_shown(command)}` failed (exit {done.returncode})"
            + (f": {said[-1]}" if said else "")
        )
    return done.returncode == 0


def _shown(command: list[str]) -> str:
    if command[0] == "powershell.exe":
        return "powershell.exe Register-ScheduledTask …"
    return " ".join(shlex.quote(c) for c in command)
