"""What brain can reach right now: gathered into one plain report (rendered by commands/status).

Owns the checks: config, Apex liveliness (fresh probe, timed), whether Apex accepts the key
and which routes it offers (/v1/models), the local server and its model, the keyring. Never
prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from brain.settings import Settings


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable / unknown
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    routes_needed: list[str] = field(default_factory=list)
    routes_offered: list[str] | None = None
    apex_reachable: bool = False
    local_ready: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": [asdict(c) for c in self.checks],
            "routes_needed": self.routes_needed,
            "routes_offered": self.routes_offered,
            "apex_reachable": self.apex_reachable,
            "local_ready": self.local_ready,
            "answering": "apex" if self.apex_reachable else ("local" if self.local_ready else None),
        }


def gather(
    conf: Settings, tasks: dict[str, Any], cache_dir: Any, local_model: str | None = None
) -> Report:
    import httpx

    from brain import secrets
    from brain.client import describe_transport
    from brain.offline import local as local_mod
    from brain.offline import probe

    report = Report()
    report.checks.append(
        Check(
            "config",
            conf.file_exists or None,
            str(conf.path) + ("" if conf.file_exists else " (not created; defaults in use)"),
            "" if conf.file_exists else "`brain config init` creates it.",
        )
    )
    needed = sorted(
        {t.route for t in tasks.values()} | {t.long_route for t in tasks.values() if t.long_route}
    )
    report.routes_needed = needed
    url = conf.apex_url
    if not url:
        report.checks.append(
            Check("apex", False, "apex.url is not set", "`brain config init` (or BRAIN_APEX_URL).")
        )
    else:
        verdict = probe.probe(url, float(conf.get("apex", "connect_timeout")))
        probe.remember(cache_dir, verdict)
        report.apex_reachable = verdict.ok
        if verdict.ok:
            report.checks.append(Check("apex", True, f"{url} answers ({verdict.latency_ms} ms)"))
        else:
            report.checks.append(
                Check(
                    "apex",
                    False,
                    f"{url}: {verdict.reason}",
                    "Is Apex on, and Tailscale connected (`tailscale status`)?",
                )
            )
    try:
        key = secrets.get("apex")
    except Exception:
        key = None
    key_source = next((k.source for k in secrets.listing() if k.name == "apex"), "")
    if report.apex_reachable:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = httpx.get(url + "/v1/models", headers=headers, timeout=5.0, trust_env=False)
            body = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
        except (httpx.HTTPError, ValueError) as exc:
            report.checks.append(
                Check("key", None, f"could not ask /v1/models: {describe_transport(exc)}")
            )
        else:
            etype = (
                body.get("error", {}).get("type") if isinstance(body.get("error"), dict) else None
            )
            if response.status_code == 200:
                report.checks.append(
                    Check(
                        "key", True, f"accepted (from {key_source or 'nowhere: Apex needs none'})"
                    )
                )
                report.routes_offered = sorted(
                    m.get("id", "") for m in body.get("data", []) if isinstance(m, dict)
                )
            elif response.status_code in (401, 403) or etype == "no_db_connection":
                state = f"rejected (from {key_source})" if key else "missing"
                report.checks.append(
                    Check("key", False, state, "`brain keys set apex` with the LiteLLM key.")
                )
            else:
                report.checks.append(
                    Check("key", None, f"/v1/models answered HTTP {response.status_code}")
                )
    else:
        report.checks.append(
            Check(
                "key",
                None if key else False,
                f"set (from {key_source})" if key else "not set",
                "" if key else "`brain keys set apex` (or BRAIN_APEX_KEY).",
            )
        )
    if report.routes_offered is not None:
        missing = [r for r in needed if r not in report.routes_offered]
        report.checks.append(
            Check(
                "routes",
                not missing,
                "all routes the tasks use are on Apex"
                if not missing
                else f"missing on Apex: {', '.join(missing)}",
                ""
                if not missing
                else "Add them to Apex's LiteLLM config (`brain apex render` writes one).",
            )
        )
    model = local_model or conf.local_model
    state = local_mod.inspect(conf.local_url, model)
    report.local_ready = state.running and state.pulled is not False
    report.checks.append(Check("local", report.local_ready, state.summary(), state.fix()))
    found = local_mod.discover()
    others = [f for f in found if f.url != conf.local_url]
    if found:
        listing = "; ".join(
            f"{f.kind} at {f.url}" + (f" ({', '.join(f.models[:3])})" if f.models else "")
            for f in found
        )
        fix = ""
        if others and not report.local_ready:
            fix = f"Use one: `brain config set local.url {others[0].url}`."
        report.checks.append(
            Check("local servers", None, f"{listing}; brain uses {conf.local_url}", fix)
        )
    else:
        report.checks.append(
            Check("local servers", None, "none on the usual ports (11434, 8080, 1234, 8000)")
        )
    report.checks.append(
        Check(
            "keyring",
            "none" not in secrets.backend_name(),
            secrets.backend_name(),
            ""
            if "none" not in secrets.backend_name()
            else "Install a Secret Service or `pip install keyrings.alt`, or use BRAIN_APEX_KEY.",
        )
    )
    mode = "offline (BRAIN_OFFLINE)" if conf.offline_env else "auto"
    report.checks.append(Check("mode", None, mode))
    return report
