"""What brain can reach right now, gathered into one report (rendered by commands/status).

Asks the backends themselves (brain.backends): Apex's liveness, whether it takes the key and
which routes it offers, the local server and what it serves; plus the config and the keyring.
Never prints.

Exit status (DESIGN.md): 0 only when a question would be answered as configured; a rejected or
missing key 77; nothing reachable 69; a configuration error 78 (raised before this runs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from brain.backends.base import Check
from brain.errors import NOPERM, OK, UNAVAILABLE

if TYPE_CHECKING:
    from brain.app import App

__all__ = ["Check", "Report", "gather"]


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    routes_needed: list[str] = field(default_factory=list)
    routes_offered: list[str] | None = None
    apex_reachable: bool = False
    key_ok: bool | None = None  # None: not known (Apex away, or not configured)
    local_ready: bool = False
    offline: bool = False

    @property
    def answering(self) -> str | None:
        if self.apex_reachable and self.key_ok is not False and not self.offline:
            return "apex"
        return "local" if self.local_ready else None

    @property
    def exit_code(self) -> int:
        if self.apex_reachable and self.key_ok is False and not self.offline:
            return NOPERM
        return OK if self.answering else UNAVAILABLE

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": [asdict(c) for c in self.checks],
            "routes_needed": self.routes_needed,
            "routes_offered": self.routes_offered,
            "apex_reachable": self.apex_reachable,
            "key_ok": self.key_ok,
            "local_ready": self.local_ready,
            "answering": self.answering,
        }


def gather(app: App) -> Report:
    from brain.offline.ladder import OFFLINE

    conf = app.settings
    report = Report(offline=app.mode == OFFLINE)
    report.checks.append(
        Check(
            "config",
            conf.file_exists or None,
            str(conf.path) + ("" if conf.file_exists else " (not created; defaults in use)"),
            "" if conf.file_exists else "`brain config init` creates it.",
        )
    )
    tasks = app.tasks.values()
    report.routes_needed = sorted(
        {t.route for t in tasks} | {t.long_route for t in tasks if t.long_route}
    )
    _apex(app, report)
    _local(app, report)
    _voice(app, report)
    _keyring(report)
    mode = {"offline": "offline", "online": "online (Apex only)"}.get(app.mode, "auto")
    if conf.offline_env and app.mode == OFFLINE:
        mode = "offline (BRAIN_OFFLINE)"
    report.checks.append(Check("mode", None, mode))
    return report


def _apex(app: App, report: Report) -> None:
    from brain import secrets

    if not app.settings.apex_url:
        report.checks.append(
            Check("apex", False, "apex.url is not set", "`brain config init` (or BRAIN_APEX_URL).")
        )
        return
    apex = app.backend("apex")
    checks = apex.checks("")
    report.checks += checks
    report.apex_reachable = bool(checks and checks[0].ok)
    source = next((k.source for k in secrets.listing() if k.name == "apex"), "")
    if source == "keyring":  # which one holds it
        source = f"keyring: {secrets.backend_name()}"
    if not report.apex_reachable:
        set_ = bool(source)
        report.checks.append(
            Check(
                "key",
                None if set_ else False,
                f"set (from {source})" if set_ else "not set",
                "" if set_ else "`brain keys set apex` (or BRAIN_APEX_KEY).",
            )
        )
        return
    _key_and_routes(apex, report, source)


def _key_and_routes(apex: Any, report: Report, source: str) -> None:
    """Whether Apex takes the key (its /v1/models), and whether it has every route brain uses."""
    state, offered, why = apex.models()
    if state in ("rejected", "missing"):
        report.key_ok = False
        detail = (
            f"rejected by Apex (from {source}; {why})"
            if state == "rejected"
            else "not set, and Apex needs one"
        )
        fix = "`brain keys set apex` with the LiteLLM key (or BRAIN_APEX_KEY)."
        report.checks.append(Check("key", False, detail, fix))
        return
    if state != "ok":
        report.checks.append(Check("key", None, why))
        return
    report.key_ok = True
    report.routes_offered = offered
    report.checks.append(
        Check("key", True, f"accepted (from {source or 'nowhere: Apex needs none'})")
    )
    missing = [r for r in report.routes_needed if r not in (offered or [])]
    if missing:
        report.checks.append(
            Check(
                "routes",
                False,
                f"missing on Apex: {', '.join(missing)}",
                "Add them to Apex's LiteLLM config (`brain apex render` writes one).",
            )
        )
    else:
        report.checks.append(Check("routes", True, "all routes the tasks use are on Apex"))


def _local(app: App, report: Report) -> None:
    from brain.backends import discover

    local = app.backend("local")
    checks = local.checks(app.local_model)
    report.checks += checks
    report.local_ready = bool(checks and checks[0].ok)
    url = app.settings.local_url
    found = discover()
    others = [f for f in found if f.url != url]
    if found:
        listing = "; ".join(
            f"{f.kind} at {f.url}" + (f" ({', '.join(f.models[:3])})" if f.models else "")
            for f in found
        )
        fix = ""
        if others and not report.local_ready:
            fix = f"Use one: `brain config set local.url {others[0].url}`."
        report.checks.append(Check("local servers", None, f"{listing}; brain uses {url}", fix))
    else:
        report.checks.append(
            Check("local servers", None, "none on the usual ports (11434, 8080, 1234, 8000)")
        )


def _voice(app: App, report: Report) -> None:
    """Who would transcribe a voice memo (brain.voice): informative only, never the exit code
    (voice is optional; a question still gets its answer without it)."""
    from brain.voice import local

    route = str(app.settings.get("voice", "route"))
    whisper = local.check(app)
    if report.routes_offered is not None:
        has = route in report.routes_offered
        where = (
            "voice memos are transcribed on this laptop"
            if whisper.ok
            else "nor has this laptop a Whisper: voice memos wait in the queue"
        )
        report.checks.append(
            Check(
                "voice route",
                True if has else None,
                f"Apex transcribes on `{route}`"
                if has
                else f"Apex has no `{route}` route; {where}",
                "" if has else "`brain apex render` adds it (docs/voice.md).",
            )
        )
    report.checks.append(whisper)


def _keyring(report: Report) -> None:
    from brain import secrets

    name = secrets.backend_name()
    if "none" not in name:
        report.checks.append(Check("keyring", True, name))
        return
    from_env = any(k.source.startswith("env") for k in secrets.listing())
    fix = (
        ""
        if from_env
        else "Keys from the environment work without one (export BRAIN_APEX_KEY); "
        "`brain keys set apex` names the other ways."
    )
    report.checks.append(Check("keyring", None if from_env else False, name, fix))
