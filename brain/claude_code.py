"""Handing the terminal to Claude Code (`brain claude`): finding `claude`, and the environment
that points it at Apex so a route there (a local model behind LiteLLM) answers it.

Owns the variables Claude Code reads for its endpoint, key and models (research/litellm.md,
"Anthropic format"; code.claude.com/docs/en/env-vars) and the checks made before handing
over: `claude` installed, Apex configured and reachable, the key accepted, the route known.
Imports neither click nor rich; `brain.commands.claude` does the exec.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from brain import install, premium
from brain.errors import ConfigError, KeyProblem, NotInstalled, Unreachable, UsageError

if TYPE_CHECKING:
    from brain.app import App

PROGRAM = "claude"
INSTALL = "npm install -g @anthropic-ai/claude-code"

# Every model name Claude Code may ask for: its main model, the opus/sonnet/haiku aliases its
# /model menu and its own background calls use, the older small/fast name, and subagents.
# Without ANTHROPIC_MODEL it asks for its default model by name and Apex answers 400.
MODEL_VARS = (
    "ANTHROPIC_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "CLAUDE_CODE_SUBAGENT_MODEL",
)
NO_KEY = "no-key"  # an Apex without a master key takes any token; Claude Code needs one


@dataclass
class Handoff:
    """What to run: `program` with `args` in `env`. `route` and `apex_url` only with --local."""

    program: str
    args: list[str]
    env: dict[str, str]
    route: str | None = None
    apex_url: str | None = None
    notes: list[str] = field(default_factory=list)


def find(env: Mapping[str, str]) -> str:
    found = shutil.which(PROGRAM, path=env.get("PATH"))
    if not found:
        raise NotInstalled(
            "Claude Code (`claude`) is not installed, or not on PATH.",
            f"Install it with `{INSTALL}` (Node.js 18 or newer), open a new terminal, and run "
            f"`brain claude` again. See {install.doc('claude.md')}.",
        )
    return found


def local_env(
    base: Mapping[str, str], apex_url: str, key: str | None, route: str
) -> dict[str, str]:
    """`base` with Claude Code pointed at Apex, every model name set to `route`."""
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = apex_url
    env["ANTHROPIC_AUTH_TOKEN"] = key or NO_KEY
    # A real Anthropic key must not travel to Apex, nor win over the token (as `ollama
    # launch claude` does, set it empty rather than leave the user's).
    env["ANTHROPIC_API_KEY"] = ""
    for var in MODEL_VARS:
        env[var] = route
    return env


def prepare_plain(args: list[str], base_env: Mapping[str, str]) -> Handoff:
    """`brain claude` without --local: Claude Code as it is, on the user's Anthropic login."""
    return Handoff(find(base_env), args, dict(base_env))


def prepare_local(
    app: App, *, route: str | None, args: list[str], base_env: Mapping[str, str]
) -> Handoff:
    """Everything `brain claude --local` checks before it hands over; raises what would fail."""
    program = find(base_env)
    tasks = app.tasks
    route = route or tasks["code"].route
    if route in premium.routes(tasks):
        raise UsageError(
            f"`{route}` is the paid premium lane; Claude Code sends many requests and brain's "
            "daily cap cannot see them.",
            "For Claude itself, run `brain claude` without --local (your Anthropic account).",
        )
    url = app.settings.apex_url
    if not url:
        raise ConfigError(
            "Apex is not configured (apex.url is empty), so Claude Code has nowhere to go.",
            "Set it with `brain config set apex.url http://apex:4000` (or BRAIN_APEX_URL).",
        )
    apex = app.backend("apex")
    # A fresh probe, not a remembered verdict: a whole session depends on it.
    check = apex.checks("")[0]
    if not check.ok:
        raise Unreachable(
            f"Apex cannot be reached ({check.detail}), so Claude Code on a local route would "
            "fail on its first request.",
            "Check that Apex is on and Tailscale is connected (`brain status`). Without Apex, "
            "`brain claude` (no --local) uses your Anthropic account, and `ollama launch "
            "claude` points Claude Code at Ollama on this laptop.",
        )
    key = app.key("apex")
    handoff = Handoff(program, args, local_env(base_env, url, key, route), route, url)
    handoff.notes += check_route(apex, route)
    if not key:
        handoff.notes.append(
            "no `apex` key is set; Claude Code sends a placeholder, which only an Apex "
            "without a master key accepts (`brain keys set apex`)."
        )
    return handoff


def check_route(apex: Any, route: str) -> list[str]:
    """Whether Apex offers `route` (its /v1/models); raise when it clearly does not.

    Returns notes for what could not be checked (the session may still work).
    """
    state, names, why = apex.models(timeout=10.0)
    if state in ("rejected", "missing"):
        raise KeyProblem(
            f"Apex rejected the key ({why}), so it would reject every request of Claude Code too.",
            "Set the LiteLLM key with `brain keys set apex` (or BRAIN_APEX_KEY), then retry.",
        )
    if state != "ok" or names is None:
        return [f"could not list Apex's routes ({why}); starting anyway."]
    if route in names or any("*" in n for n in names):
        return []
    offered = ", ".join(names) or "none"
    raise ConfigError(
        f"Apex has no route `{route}` (it offers: {offered}).",
        "Pick one with `brain claude --local --route NAME`, or add the route to Apex's "
        "LiteLLM config (`brain apex render`).",
    )


def run(handoff: Handoff) -> int:
    """Become Claude Code (the exit code is then its own); on Windows, wait for it instead."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    argv = [handoff.program, *handoff.args]
    if os.name == "nt":  # Windows has no exec: os.exec* would return to the shell early
        import subprocess

        return subprocess.call(argv, env=handoff.env)
    os.execvpe(handoff.program, argv, handoff.env)
    return 0  # not reached
