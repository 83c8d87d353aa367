"""No key leaves brain (issue 31, item 4): a server that echoes the Authorization header back,
in an error or in the answer itself, a 300-character cut through the key, a key file saved
with CRLF, a non-ASCII key, a password in Apex's URL. Checked in everything brain shows and
keeps: stdout, stderr, `--json`, the history, the queue, every file under HOME."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import FakeApex, FakeOllama, refused_url
from hostile import Hostile, echo_auth, echo_auth_answer

from brain.client import one_line
from brain.secrets import Masker, redact, remember

SECRET = "sk-Echo-9f8e7d6c5b4a39281706"


def leaked(text: str, secret: str = SECRET) -> list[str]:
    """The pieces of `secret` (8 characters or more of its start or end) found in `text`."""
    return [p for p in (secret, secret[:8], secret[-8:]) if p in text]


def files_leak(home: Any, secret: str = SECRET) -> list[str]:
    found = []
    for path in home.root.rglob("*"):
        if path.is_file() and path.name != "keyring.json":
            data = path.read_bytes()
            if secret[:8].encode() in data or secret[-8:].encode() in data:
                found.append(str(path))
    return found


def test_a_cut_through_a_key_leaves_none_of_it() -> None:
    remember(SECRET)
    text = "x" * 285 + "/" + SECRET + " rejected"
    assert leaked(one_line(text)) == []
    assert leaked(redact(text[:300])) == []  # cut first, masked after: still nothing
    assert leaked(redact(text[-40:])) == []  # a cut from the left leaves the key's end


def test_an_echoing_server_puts_the_key_nowhere(
    ollama: FakeOllama, brain, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAIN_APEX_KEY", SECRET)
    with Hostile({"/v1/chat/completions": echo_auth}) as apex:
        monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
        answered = brain("--json", "dump", "first thought")
        assert answered.code == 0, answered.stderr
        assert answered.json["backend"] == "local"
        assert "upstream rejected" in answered.json["fallbacks"][0]["reason"]
        monkeypatch.setenv("BRAIN_LOCAL_URL", refused_url())
        queued = brain("dump", "second thought")
        assert queued.code == 69
    monkeypatch.delenv("BRAIN_APEX_KEY")  # what is stored must be masked without the env
    shown = [
        answered.stdout,
        answered.stderr,
        queued.stderr,
        brain("history", "--json").stdout,
        brain("queue", "list", "--json").stdout,
        brain("queue", "list").stdout,
    ]
    for text in shown:
        assert leaked(text) == [], text
    assert files_leak(home) == []


def test_a_key_echoed_in_the_answer_is_masked_as_it_streams(
    brain, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-Stream-0a1b2c3d4e5f60718293"
    monkeypatch.setenv("BRAIN_APEX_KEY", secret)
    with Hostile({"/v1/chat/completions": echo_auth_answer}) as apex:
        monkeypatch.setenv("BRAIN_APEX_URL", apex.url)
        plain = brain("dump", "what did I send?")
        as_json = brain("--json", "dump", "what did I send?")
    assert plain.code == 0 and as_json.code == 0
    assert plain.stdout == "you sent: Bearer **** (echoed)\n"
    assert as_json.json["answer"] == "you sent: Bearer **** (echoed)"
    monkeypatch.delenv("BRAIN_APEX_KEY")
    assert leaked(brain("history", "--json").stdout, secret) == []
    assert files_leak(home, secret) == []


def test_the_masker_holds_back_only_what_may_be_a_key() -> None:
    remember("sk-Held-123456789")
    masker = Masker()
    pieces = ["a plain answer, s", "k-He", "ld-1234", "56789 and sk-", "not a key"]
    shown = [masker.feed(p) for p in pieces] + [masker.flush()]
    assert "".join(shown) == "a plain answer, **** and sk-not a key"
    assert shown[0] == "a plain answer, "  # the "s" waits: it may begin the key


def test_a_key_saved_with_crlf_is_stripped_and_works(apex: FakeApex, brain) -> None:
    apex.key = "sk-crlf-0123456789"
    apex.answer("brain_dump", ["fine"])
    r = brain("dump", "x", env={"BRAIN_APEX_KEY": "sk-crlf-0123456789\r\n"})
    assert r.code == 0 and r.stdout == "fine\n"
    assert apex.headers_seen[-1]["Authorization"] == "Bearer sk-crlf-0123456789"


def test_a_wrong_key_with_crlf_is_rejected_77_and_never_shown(apex: FakeApex, brain) -> None:
    apex.key = "sk-the-right-one-000"
    apex.answer("brain_dump", ["fine"])
    r = brain("dump", "x", env={"BRAIN_APEX_KEY": "sk-wrong-crlf-4567\r"})
    assert r.code == 77, r.stderr
    assert "sk-wrong" not in r.stderr and "4567" not in r.stderr


def test_a_key_stored_in_the_keyring_with_crlf_is_stripped(apex: FakeApex, brain) -> None:
    import keyring

    keyring.set_password("brain", "apex", "sk-keyring-crlf-99\r\n")
    apex.key = "sk-keyring-crlf-99"
    apex.answer("brain_dump", ["fine"])
    assert brain("dump", "x").code == 0


@pytest.mark.parametrize("key", ["sk-äbcdefgh1234", "sk-abc def-1234", "sk-abc\x1bdef"])
def test_a_key_no_header_can_carry_is_refused_77(apex: FakeApex, brain, key: str) -> None:
    apex.answer("brain_dump", ["fine"])
    r = brain("dump", "x", env={"BRAIN_APEX_KEY": key})
    assert r.code == 77, r.stderr
    assert "brain keys set apex" in r.stderr and key not in r.stderr
    assert apex.requests == []  # nothing was sent with it


def test_keys_set_refuses_a_key_no_header_can_carry(brain) -> None:
    r = brain("keys", "set", "apex", "--stdin", input="sk-ünïcode-key\n")
    assert r.code == 65 and "nothing was stored" in r.stderr


def test_a_password_in_apex_url_is_never_shown(
    ollama: FakeOllama, brain, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = refused_url().replace("http://", "http://bob:hunter2-Pass@")
    monkeypatch.setenv("BRAIN_APEX_URL", url)
    r = brain("--json", "dump", "x")
    assert r.code == 0 and r.json["backend"] == "local"
    status = brain("status")
    shown = r.stdout + r.stderr + status.stdout + status.stderr
    shown += brain("config", "show").stdout + brain("history", "--json").stdout
    assert "hunter2" not in shown and "bob:****@" in r.stderr + status.stdout + status.stderr
    for path in Path(home.root).rglob("*"):
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path


def test_a_webhook_url_masks_its_token_not_every_url_of_its_host() -> None:
    hook = "https://hooks.slack.com/services/T0AAA/B0BBB/abcdefghijklmnopqrstuvwx"
    remember(hook)
    text = "see https://hooks.slack.com/services/T9/B9/other and http://127.0.0.1:4000"
    assert redact(text) == text
    cut = "posting to https://hooks.slack.com/services/T0AAA/B0BBB/****…"
    assert redact(f"posting to {hook[:-4]}…") == cut
    assert redact(f"token …{hook[-12:]}") == "token …****"


def test_a_connection_string_in_an_answer_is_content_not_masked(apex: FakeApex, brain) -> None:
    apex.answer("code", ["use postgres://app:s3cret-pw@db:5432/app ", "in the .env"])
    r = brain("--json", "code", "how do I connect?")
    assert r.json["answer"] == "use postgres://app:s3cret-pw@db:5432/app in the .env"
    assert "s3cret-pw" in brain("history", "--json").stdout  # shown, kept and listed alike


def test_a_configured_url_password_is_masked_in_an_answer_too(
    ollama: FakeOllama, brain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url().replace("http://", "http://u:Pw-9f8e7d6c@"))
    ollama.pieces = ["apex is at http://u:Pw-9f8e7d6c@host"]
    r = brain("dump", "where is apex?")
    assert r.code == 0 and "Pw-9f8e7d6c" not in r.stdout and "u:****@host" in r.stdout
