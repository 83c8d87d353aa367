"""The real chain, no fake in it: the pinned LiteLLM proxy (1.106.12) with the config
`brain apex render` writes, in front of a real llama.cpp server (xllamacpp serving Gemma 3
270M, tests/llama_server.py); the same llama.cpp server is the laptop's local server.

Apex here has no GPU models (rendered with `--local-models none`, providers groq, gemini,
cloudflare): every step is an OpenAI-compatible "cloud" whose *_API_BASE is the llama.cpp
server. The first step of brain_dump and of default (Groq) goes through a TCP relay that can
be stopped on its own: one deployment down, the others up.

Needs BRAIN_TEST_LITELLM and BRAIN_TEST_LLAMACPP (scripts/install-litellm.sh,
scripts/install-llamacpp.sh); skipped with a message without them. One proxy and one
llama.cpp server for the module: they take seconds to start on 2 cores.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fakes import Relay, refused_url
from litellm_proxy import ProxyURL, require_litellm, start_proxy
from llama_server import LlamaServer, require_llamacpp

from brain.apex import catalog
from brain.apex import render as apex_render
from brain.tasks import builtin_tasks

KEY = "sk-brain-real-chain-key"
ALIAS = "gemma3-270m"  # what the llama.cpp server calls its model (not local.model's default)


@dataclass
class Chain:
    proxy: ProxyURL
    llama: LlamaServer
    relay: Relay  # Groq's api_base: the first step of brain_dump and default


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    require_litellm()
    require_llamacpp()
    llama = LlamaServer(alias=ALIAS)
    llama.start()
    llama.warm_up()
    relay = Relay(llama.url)
    directory = tmp_path_factory.mktemp("apex-real")
    options = apex_render.Options(
        providers=frozenset({"groq", "gemini", "cloudflare"}), local_models=frozenset()
    )
    _plan, files = apex_render.render_files(builtin_tasks(), options)
    # The one change to the kit: these "clouds" are a CPU model on 2 shared cores, whose first
    # token can take longer than a cloud's 5 s stream_timeout; a step timing out would turn
    # a test of the path into a test of the machine's load.
    files["config.yaml"] = re.sub(
        r"stream_timeout: \d+", "stream_timeout: 120", files["config.yaml"]
    )
    apex_render.write_files(directory, files, force=False)
    env = {
        "GROQ_API_BASE": relay.url + "/v1",
        "GEMINI_API_BASE": llama.url + "/v1",
        "CLOUDFLARE_API_BASE": llama.url + "/v1",
    }
    for name in ("groq", "gemini", "cloudflare"):
        env[catalog.PROVIDERS[name].key_env] = f"not-a-real-{name}-key"
    try:
        with start_proxy(directory / "config.yaml", env, master_key=KEY) as url:
            yield Chain(url, llama, relay)
    finally:
        relay.down()
        llama.stop()


@pytest.fixture
def real(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chain]:
    if chain.llama.process is None:
        chain.llama.start()
    chain.relay.up()
    monkeypatch.setenv("BRAIN_APEX_URL", chain.proxy)
    monkeypatch.setenv("BRAIN_APEX_KEY", KEY)
    monkeypatch.setenv("BRAIN_LOCAL_URL", chain.llama.url)
    yield chain
    chain.relay.up()


def test_dump_through_the_real_proxy_to_llamacpp(real: Chain, brain) -> None:
    r = brain("--json", "dump", "call Sam about the field trip")
    assert r.code == 0, r.stderr + real.proxy.log_text()[-3000:]
    j = r.json
    assert j["backend"] == "apex" and j["route"] == "brain_dump"
    assert j["model"] == "groq-llama-3.3-70b@brain_dump"
    assert j["answer"].strip() and j["fallbacks"] == []
    assert j["cost"] == 0.0  # only x-litellm-response-cost-original says it (issue 29 item 8)
    assert isinstance(j["usage"]["prompt_tokens"], int)


def test_one_deployment_down_litellm_falls_back(real: Chain, brain) -> None:
    real.relay.down()  # Groq's address refuses; Gemini (the same llama.cpp) answers
    r = brain("--json", "ask", "what is a greenhouse?")
    assert r.code == 0, r.stderr
    j = r.json
    assert j["backend"] == "apex" and j["model"] == "gemini-flash-lite"
    assert j["answer"].strip()
    (fb,) = j["fallbacks"]
    assert fb["backend"] == "apex" and fb["answered_by"] == "gemini-flash-lite"
    # LiteLLM's real reason, on one line (issue 29 item 4)
    assert "\n" not in fb["reason"] and fb["reason"], fb
    assert "ssl:<" not in fb["reason"] and "LiteLLM:" not in fb["reason"], fb["reason"]
    notes = [line for line in r.stderr.splitlines() if "fell back on its side" in line]
    assert len(notes) == 1 and "gemini-flash-lite" in notes[0], r.stderr


def test_apex_frozen_answers_locally_then_apex_again(
    real: Chain, brain_proc, write_config, home
) -> None:
    # Issue 29 item 1 on the real proxy: answered once, then frozen (SIGSTOP), as a hung
    # Apex with its port still open. The first-token timeout is longer than the subprocess
    # limit, so only the probe beside the request can free these commands.
    if not hasattr(signal, "SIGSTOP"):
        pytest.skip("SIGSTOP is POSIX-only")
    write_config("[apex]\nfirst_token_timeout = 600\nprobe_ttl = 0\n")
    first = brain_proc("--json", "dump", "a")
    assert first.code == 0 and first.json["backend"] == "apex", first.stderr
    real.proxy.process.send_signal(signal.SIGSTOP)
    try:
        for text in ("b", "c"):
            r = brain_proc("--json", "dump", text, timeout=120)
            assert r.code == 0, r.stderr
            assert r.json["backend"] == "local" and r.json["model"] == ALIAS
            reason = r.json["fallbacks"][0]["reason"]
            assert real.proxy in reason and "timed out" in reason, reason
    finally:
        real.proxy.process.send_signal(signal.SIGCONT)
    # Resumed, the proxy still forwards the two requests it had queued while frozen (their
    # clients long gone); on 2 cores they would make the next one miss LiteLLM's 5 s
    # stream_timeout. Apex "coming back" here means: once it has caught up.
    # It reads connections in order: once it answers a new liveness probe, the queued ones
    # have been read and sent on.
    httpx.get(real.proxy + "/health/liveliness", timeout=60, trust_env=False)
    real.llama.wait_idle()
    back = brain_proc("--json", "dump", "d", timeout=120)
    assert back.code == 0 and back.json["backend"] == "apex", back.stderr


def test_offline_answers_on_llamacpp_as_the_local_server(real: Chain, brain) -> None:
    r = brain("--offline", "--json", "dump", "water the tomatoes")
    assert r.code == 0, r.stderr
    assert r.json["backend"] == "local" and r.json["model"] == ALIAS
    assert r.json["answer"].strip() and r.json["fallbacks"] == []
    status = brain("--offline", "status")
    assert status.code == 0, status.stdout + status.stderr
    assert f"llama.cpp server at {real.llama.url} serving {ALIAS}" in status.stdout
    assert "--offline" in status.stderr and "Apex is away" not in status.stderr
    assert "ollama" not in (r.stderr + status.stdout + status.stderr).lower()


def test_everything_down_every_message_names_the_real_parts(real: Chain, brain) -> None:
    # llama.cpp stopped: every Apex step fails (LiteLLM's real multi-line 500) and the local
    # server refuses. Nothing says Ollama: no Ollama is in this chain (issue 29 item 6).
    assert brain("--offline", "status").code == 0  # seen running: brain remembers what it was
    real.llama.stop()
    try:
        r = brain("dump", "buy seed trays")
        assert r.code == 69, r.stderr
        said = r.stderr
        assert "Apex answered HTTP 500" in said
        assert f"nothing answers at {real.llama.url} (connection refused)" in said
        assert f"it was a llama.cpp server serving {ALIAS}" in said
        assert "llama-server" in said and "ollama" not in said.lower()
        # The laptop never began to answer: no "answering on this laptop" line before the
        # error that says nothing could (issue 30 item 11); the error names both backends.
        assert " — answering on this laptop" not in said, said
        queue = brain("queue", "list")
        (row,) = [line.split("\t") for line in queue.stdout.splitlines()[1:]]
        why = row[-1]
        assert "Apex answered HTTP 500" in why and "llama.cpp server" in why, why
        assert "LiteLLM:" not in why and "ssl:<" not in why, why
        status = brain("status")  # the proxy itself is live: status cannot see its upstreams
        assert status.code == 0, status.stdout + status.stderr
        assert "llama.cpp server" in status.stdout and "ollama" not in status.stdout.lower()
        offline = brain("--offline", "dump", "x")
        assert offline.code == 69 and "ollama" not in offline.stderr.lower(), offline.stderr
    finally:
        real.llama.start()


def test_discovery_names_the_llamacpp_server(real: Chain) -> None:
    from brain.backends import discover

    port = int(real.llama.url.rsplit(":", 1)[1])
    free = int(refused_url().rsplit(":", 1)[1])
    (found,) = discover({port: "llama.cpp llama-server", free: "vLLM"})
    assert found.kind == "llama.cpp server" and found.models == [ALIAS]
