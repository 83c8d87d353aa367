"""`brain apex render`: what the files say (read as LiteLLM, docker compose and systemd read
them), the rules of the cascade, options, determinism and no clobbering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from brain.apex import catalog
from brain.apex import render as apex_render
from brain.tasks import PREMIUM_ROUTE, all_tasks, builtin_tasks


def _config(files: dict[str, str]) -> dict:
    return yaml.safe_load(files["config.yaml"])


def _render(**options) -> tuple[apex_render.Plan, dict[str, str]]:
    return apex_render.render_files(builtin_tasks(), apex_render.Options(**options))


def _groups(config: dict) -> dict[str, dict]:
    return {m["model_name"]: m for m in config["model_list"]}


def _fallbacks(config: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in config["router_settings"].get("fallbacks") or []:
        out.update(item)
    return out


def test_a_model_group_per_route_of_the_task_table():
    config = _config(_render()[1])
    groups = _groups(config)
    for task in builtin_tasks().values():
        assert task.route in groups, task.route
        if task.long_route:
            assert task.long_route in groups
    # Every fallback names a group that exists.
    for route, targets in _fallbacks(config).items():
        assert route in groups
        assert all(t in groups for t in targets), targets


def test_the_plans_cascade_is_the_fallback_block():
    config = _config(_render()[1])
    fallbacks = _fallbacks(config)
    groups = _groups(config)
    assert groups["brain_dump"]["litellm_params"]["model"] == "ollama_chat/gemma3:27b-it-qat"
    assert fallbacks["default"] == [
        "cerebras-llama-3.3-70b",
        "groq-llama-3.3-70b",
        "gemini-flash-lite",
        "cloudflare-llama-3.3-70b",
    ]
    assert fallbacks["long_context_summary"] == ["gemini-2.5-flash", "apex-gemma3-27b"]
    # Too long for a step: the task's long-input route, else the route's own next steps (once
    # the list exists LiteLLM returns a context error for any route missing from it).
    too_long = {
        k: v for d in config["router_settings"]["context_window_fallbacks"] for k, v in d.items()
    }
    assert too_long["daily_digest"] == ["long_context_summary"]
    assert too_long["brain_dump"] == fallbacks["brain_dump"]
    assert set(too_long) == set(fallbacks)


def test_premium_has_no_fallback_and_code_never_reaches_paid_claude():
    config = _config(_render()[1])
    groups = _groups(config)
    fallbacks = _fallbacks(config)
    assert PREMIUM_ROUTE not in fallbacks
    assert "code" not in fallbacks
    assert groups[PREMIUM_ROUTE]["litellm_params"]["model"].startswith("anthropic/")
    paid = {
        name for name, m in groups.items() if m["litellm_params"]["model"].startswith("anthropic/")
    }
    assert paid == {PREMIUM_ROUTE}
    assert not any(p in targets for targets in fallbacks.values() for p in paid)


def test_user_routes_cascade_like_default_and_never_to_paid(tmp_path):
    tasks = all_tasks(
        {"lesson": {"route": "lesson_plan"}, "deep": {"route": PREMIUM_ROUTE, "fallback": "none"}}
    )
    plan, files = apex_render.render_files(tasks, apex_render.Options())
    config = _config(files)
    assert _fallbacks(config)["lesson_plan"] == _fallbacks(config)["default"]
    assert "lesson" in files["config.yaml"]  # the comment names the task using the route
    assert [r.route for r in plan.routes].count(PREMIUM_ROUTE) == 1


def test_no_secret_every_key_and_base_from_the_environment():
    _plan, files = _render(slack=True)
    config = _config(files)
    env_names = re.findall(r"^([A-Z_]+)=", files[".env.example"], re.M)
    for m in config["model_list"]:
        params = m["litellm_params"]
        for field in ("api_key", "api_base"):
            assert params[field].startswith("os.environ/"), (m["model_name"], field)
            assert params[field].removeprefix("os.environ/") in env_names
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "SLACK_WEBHOOK_URL" in env_names and "TAILSCALE_IP" in env_names
    # No value in .env.example is a key: only addresses, the placeholders of the servers on
    # Apex that need none (Ollama, Whisper), flags.
    for line in files[".env.example"].splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            if name.endswith("_KEY") or name in ("SLACK_WEBHOOK_URL", "LITELLM_MASTER_KEY"):
                assert value in ("", "ollama", "whisper"), line


def test_measured_proxy_settings_and_timeouts():
    config = _config(_render()[1])
    settings = config["litellm_settings"]
    assert settings["use_chat_completions_url_for_anthropic_messages"] is True
    assert settings["disable_hf_tokenizer_download"] is True
    assert settings["redact_messages_in_exceptions"] is True
    assert config["router_settings"]["num_retries"] == 0
    for m in config["model_list"]:
        params = m["litellm_params"]
        # A fallback happens in seconds: the first chunk is awaited at most this long.
        if not params["model"].startswith("anthropic/"):
            assert params["stream_timeout"] <= 20, m["model_name"]


def test_free_tier_limits_are_per_deployment_limits():
    groups = _groups(_config(_render()[1]))
    groq = groups["groq-llama-3.3-70b"]["litellm_params"]
    assert (groq["rpm"], groq["tpm"]) == (30, 12000)
    assert groups["cerebras-llama-3.3-70b"]["litellm_params"]["rpm"] == 5
    assert (
        "enforce_model_rate_limits"
        in _config(_render()[1])["router_settings"]["optional_pre_call_checks"]
    )
    assert "rpm" not in groups["brain_dump"]["litellm_params"]  # Apex's own GPU: no quota


def test_slack_only_when_asked():
    assert "alerting" not in _config(_render(slack=False)[1])["general_settings"]
    config = _config(_render(slack=True)[1])
    assert config["general_settings"]["alerting"] == ["slack"]


def test_model_ids_are_unique():
    ids = [m["model_info"]["id"] for m in _config(_render()[1])["model_list"]]
    assert len(ids) == len(set(ids))


def test_options_leave_providers_and_models_out():
    plan, files = _render(providers=frozenset({"cerebras"}), local_models=frozenset({"qwen-32b"}))
    config = _config(files)
    models = {m["litellm_params"]["model"] for m in config["model_list"]}
    assert models == {"ollama_chat/qwen2.5-coder:32b", "cerebras/llama-3.3-70b"}
    assert dict(plan.omitted) == {
        PREMIUM_ROUTE: "the paid provider (anthropic) is not included",
        "transcribe": "no Whisper is included (whisper, groq)",
    }
    assert "GROQ_API_KEY" not in files[".env.example"]
    # brain_dump lost its local first step: it starts on Cerebras, and says why.
    assert _groups(config)["brain_dump"]["litellm_params"]["model"] == "cerebras/llama-3.3-70b"


def test_upstream_overrides_a_model():
    groups = _groups(_config(_render(upstream={"apex-gemma3-27b": "gemma3:27b"})[1]))
    assert groups["brain_dump"]["litellm_params"]["model"] == "ollama_chat/gemma3:27b"


def test_render_twice_same_bytes_and_no_clobber(brain, home):
    out = home.root / "apex"
    first = brain("apex", "render", str(out))
    assert first.code == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(apex_render.FILES)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = brain("apex", "render", str(out))
    assert again.code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert again.stdout.count("unchanged") == len(apex_render.FILES)

    (out / "config.yaml").write_text("# my edits\n")
    refused = brain("apex", "render", str(out), "--no-slack", "--providers", "groq")
    assert refused.code == 2
    assert "--force" in refused.stderr and "config.yaml" in refused.stderr
    assert (out / "config.yaml").read_text() == "# my edits\n"

    forced = brain("apex", "render", str(out), "--force")
    assert forced.code == 0
    assert (out / "config.yaml").read_bytes() == before["config.yaml"]
    assert "replaced" in forced.stdout


def test_render_json_and_bad_options(brain, home):
    r = brain("--json", "apex", "render", str(home.root / "a"), "--local-models", "none")
    assert r.code == 0, r.stderr
    j = r.json
    assert {f["status"] for f in j["files"]} == {"written"}
    code = next(x for x in j["routes"] if x["route"] == "code")
    assert code["steps"] == catalog.CHAINS["default"][1:]  # no local model: free cloud only
    bad = brain("apex", "render", str(home.root / "b"), "--providers", "openai")
    assert bad.code == 2 and "cerebras" in bad.stderr
    assert not (home.root / "b").exists()


def test_slack_defaults_to_on_when_brain_has_a_webhook(brain, home):
    r = brain(
        "apex",
        "render",
        str(home.root / "s"),
        env={"BRAIN_SLACK_WEBHOOK": "https://hooks.slack.com/services/T000/B000/XyzzyWebhookToken"},
    )
    assert r.code == 0, r.stderr
    text = (home.root / "s" / "config.yaml").read_text()
    assert "alerting: [slack]" in text
    assert "XyzzyWebhookToken" not in text
    assert "XyzzyWebhookToken" not in (home.root / "s" / ".env.example").read_text()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
def test_compose_file_passes_docker_compose_config(tmp_path):
    _plan, files = _render()
    apex_render.write_files(tmp_path, files, force=False)
    env = files[".env.example"].replace("TAILSCALE_IP=\n", "TAILSCALE_IP=100.101.102.103\n")
    (tmp_path / ".env").write_text(env)
    r = subprocess.run(
        ["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    parsed = yaml.safe_load(r.stdout)
    service = parsed["services"]["litellm"]
    assert service["ports"] == ["100.101.102.103:4000:4000/tcp"]
    assert service["restart"] == "unless-stopped"
    # Without the Tailscale address, compose refuses to start and says what to set.
    (tmp_path / ".env").write_text(files[".env.example"])
    r = subprocess.run(
        ["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "set TAILSCALE_IP in .env" in r.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not here")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    _plan, files = _render()
    units = tmp_path / "units"
    units.mkdir()
    # docker is not a systemd service on this machine: stub the units and the binary it names
    # so that verify checks the unit's own directives (it warns on any unknown one).
    unit = files["brain-apex.service"].replace("/usr/bin/docker", "/bin/true")
    assert unit != files["brain-apex.service"]
    (units / "brain-apex.service").write_text(unit)
    for stub in ("docker.service", "tailscaled.service"):
        (units / stub).write_text("[Unit]\nDescription=stub\n[Service]\nExecStart=/bin/true\n")
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:")
    r = subprocess.run(
        ["systemd-analyze", "verify", str(units / "brain-apex.service")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_templates_are_filled_and_powershell_names_the_task():
    _plan, files = _render(linux_dir="/srv/apex")
    for name, text in files.items():
        assert "@@" not in text, name
    assert "WorkingDirectory=/srv/apex" in files["brain-apex.service"]
    ps1 = files["apex-autostart.ps1"]
    assert "Register-ScheduledTask" in ps1 and "docker compose up -d" in ps1
    assert "TAILSCALE_IP" in ps1


def test_paths_in_files_do_not_depend_on_where_rendered(tmp_path: Path):
    a = apex_render.render_files(builtin_tasks(), apex_render.Options())[1]
    b = apex_render.render_files(builtin_tasks(), apex_render.Options())[1]
    assert a == b
    assert str(tmp_path) not in "".join(a.values())


def test_the_kit_runs_offline_and_sets_ollamas_context():
    # Issue 29 item 9: without LITELLM_LOCAL_MODEL_COST_MAP the proxy fetches its price list
    # from the internet at every start; Ollama's default context silently cuts long input.
    _plan, files = _render()
    env = dict(
        line.split("=", 1)
        for line in files[".env.example"].splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["LITELLM_TELEMETRY"] == "False"
    assert not env["OLLAMA_API_BASE"].endswith("/v1")  # ollama_chat/ adds /api/chat itself
    config = _config(files)
    assert config["router_settings"]["enable_pre_call_checks"] is True
    for m in config["model_list"]:
        params, info = m["litellm_params"], m["model_info"]
        if params["model"].startswith("ollama_chat/"):
            assert params["num_ctx"] >= 8192, m["model_name"]
            assert 0 < info["max_input_tokens"] < params["num_ctx"], m["model_name"]
        else:
            assert "num_ctx" not in params and "max_input_tokens" not in info, m["model_name"]
