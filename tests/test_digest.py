"""`brain digest` gathering its own material from [[digest.sources]] (glob, command, url), since
the last digest, and landing where it is read (--out, --post). The digest in parts is in
test_digest_parts.py; a real PostgreSQL source in test_digest_pg.py; --schedule in
test_digest_schedule.py."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from fakes import FakeApex
from pytest_httpserver import HTTPServer

from brain.digest.sources import parse_since

DAY = 86400.0


def old(path: Path, days: float = 3) -> Path:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def notes(home) -> Path:
    folder = home.root / "notes"
    folder.mkdir()
    (folder / "mon.md").write_text("monday: we chose the soil pH lab\n")
    (folder / "last-month.md").write_text("march: nothing to see\n")
    old(folder / "last-month.md")
    return folder


def posted(server: HTTPServer) -> list[str]:
    return [json.loads(req.get_data())["text"] for req, _ in server.log]


def sent(apex: FakeApex) -> str:
    return apex.requests[-1]["messages"][1]["content"]


SOURCES = """
[[digest.sources]]
name = "notes"
glob = "~/notes/*.md"

[[digest.sources]]
name = "git"
command = "echo 'abc123 fix the rubric'"

[[digest.sources]]
name = "broken"
command = "echo 'psql: could not connect to server' >&2; exit 3"
"""


def test_glob_and_command_sources_one_failing(apex: FakeApex, brain, write_config, notes) -> None:
    write_config(SOURCES)
    apex.answer("daily_digest", ["the digest"])
    r = brain("digest")
    assert r.code == 0, r.stderr
    assert r.stdout == "the digest\n"
    assert len(apex.requests) == 1
    user = sent(apex)
    # Each part labelled with its source; the old file is not new.
    assert "--- notes: ~/notes/mon.md ---\nmonday: we chose the soil pH lab" in user
    assert "march" not in user
    assert "--- git ---\nabc123 fix the rubric" in user
    assert "broken" not in user.split("\n\n", 1)[1]  # nothing of the failing source
    # What was gathered, on stderr, before the answer; the failure named with its cause.
    assert "gathered" in r.stderr and "from 2 of 3 sources" in r.stderr
    assert "notes (glob ~/notes/*.md): 1 file" in r.stderr
    assert "broken (command `echo 'psql" in r.stderr
    assert "failed: exited with 3: psql: could not connect to server" in r.stderr


def test_the_marks_of_a_failing_source_stay(apex: FakeApex, brain, write_config, notes, home):
    write_config(SOURCES)
    apex.answer("daily_digest", ["ok"])
    assert brain("digest").code == 0
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    marks = dict(db.execute("SELECT name, value FROM state WHERE name LIKE 'digest.last.%'"))
    assert set(marks) == {"digest.last.notes", "digest.last.git"}  # not broken's
    assert abs(float(marks["digest.last.notes"]) - time.time()) < 600


def test_second_digest_with_nothing_new_asks_no_model(
    apex: FakeApex, brain, write_config, notes, apex_server: HTTPServer
) -> None:
    apex_server.expect_request("/feed.txt").respond_with_data(
        "bus 4 is late all week\n", content_type="text/plain; charset=utf-8"
    )
    write_config(
        '[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n\n'
        f'[[digest.sources]]\nname = "feed"\nurl = "{apex.url}/feed.txt"\n'
    )
    apex.answer("daily_digest", ["first"])
    r = brain("digest")
    assert r.code == 0 and r.stdout == "first\n", r.stderr
    assert "--- feed ---\nbus 4 is late all week" in sent(apex)
    r = brain("digest")
    assert r.code == 0, r.stderr
    assert r.stdout == ""
    assert len(apex.requests) == 1  # no model asked
    assert "nothing new to digest: no model was asked" in r.stderr
    assert "nothing new in 2 sources since " in r.stderr and "(the last digest):" in r.stderr
    assert "notes (glob ~/notes/*.md): nothing new\n" in r.stderr
    assert "feed (url http://127.0.0.1" in r.stderr and "the same text as the last" in r.stderr
    # Something new: only that is sent.
    (notes / "tue.md").write_text("tuesday: field trip forms\n")
    r = brain("digest")
    assert r.code == 0 and len(apex.requests) == 2
    assert "tuesday: field trip forms" in sent(apex)
    assert "monday" not in sent(apex) and "bus 4" not in sent(apex)


def test_since_and_source_choose_the_window_and_sources(
    apex: FakeApex, brain, write_config, notes
) -> None:
    write_config(SOURCES)
    apex.answer("daily_digest", ["ok"])
    r = brain("digest", "--since", "7d", "--source", "notes")
    assert r.code == 0, r.stderr
    user = sent(apex)
    assert "march: nothing to see" in user and "monday" in user
    assert "abc123" not in user and "broken" not in r.stderr
    assert "(--since 7d)" in r.stderr
    r = brain("digest", "--source", "nope")
    assert r.code == 2 and "no digest source named nope" in r.stderr
    assert "notes, broken, git" in r.stderr or "broken, git, notes" in r.stderr
    r = brain("digest", "--since", "yesterday-ish")
    assert r.code == 2 and "24h, 90m, 7d" in r.stderr


def test_every_source_failing_is_a_temporary_failure(apex: FakeApex, brain, write_config):
    write_config('[[digest.sources]]\nname = "broken"\ncommand = ["false"]\n')
    r = brain("digest")
    assert r.code == 75
    assert "broken (command `false`): failed: exited with 1 (nothing on stderr)" in r.stderr
    assert "every source failed" in r.stderr and apex.requests == []


def test_command_timeout_and_output_bound_fail_the_source_only(
    apex: FakeApex, brain, write_config, notes
) -> None:
    write_config(
        '[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n\n'
        '[[digest.sources]]\nname = "slow"\ncommand = "sleep 30 & sleep 30"\ntimeout = 0.5\n\n'
        '[[digest.sources]]\nname = "chatty"\ncommand = "yes"\nmax_bytes = 1000\n'
    )
    apex.answer("daily_digest", ["ok"])
    r = brain("digest")
    assert r.code == 0, r.stderr
    assert "slow (command `sleep 30 & sleep 30`): failed: did not finish within 0.5 s" in r.stderr
    assert "chatty (command `yes`): failed: printed more than 1000 bytes" in r.stderr
    assert "monday" in sent(apex)


def test_command_gets_the_window_in_its_environment(apex: FakeApex, brain, write_config):
    script = (
        "import os; print(os.environ['BRAIN_DIGEST_SINCE_EPOCH'], "
        "os.environ['BRAIN_DIGEST_SINCE_UTC'], os.environ['BRAIN_DIGEST_SINCE'])"
    )
    write_config(
        f'[[digest.sources]]\nname = "w"\ncommand = [{json.dumps(sys.executable)}, "-c", '
        f'{json.dumps(script)}, "{{since_epoch}}"]\n'
    )
    apex.answer("daily_digest", ["ok"])
    r = brain("digest", "--since", "2024-03-01T09:15")
    assert r.code == 0, r.stderr
    epoch, utc, local = sent(apex).split("--- w ---\n")[1].split()
    assert int(epoch) == int(parse_since("2024-03-01T09:15", time.time()))
    assert utc.endswith("Z") and local.startswith("2024-03-01T09:15:00")


def test_binary_and_non_utf8_files_are_skipped_and_named(
    apex: FakeApex, brain, write_config, notes
) -> None:
    (notes / "photo.md").write_bytes(b"\x89PNG\x00\x00binary")
    (notes / "latin.md").write_bytes("caf\xe9".encode("latin-1"))
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    apex.answer("daily_digest", ["ok"])
    r = brain("digest")
    assert r.code == 0, r.stderr
    assert "~/notes/photo.md skipped" in r.stderr and "binary" in r.stderr
    assert "~/notes/latin.md skipped" in r.stderr and "UTF-8" in r.stderr
    assert "monday" in sent(apex)


def test_a_glob_under_a_missing_folder_fails_that_source(apex: FakeApex, brain, write_config):
    write_config('[[digest.sources]]\nname = "typo"\nglob = "~/notez/**/*.md"\n')
    r = brain("digest")
    assert r.code == 75 and "typo (glob ~/notez/**/*.md): failed: no such folder: ~/notez" in (
        r.stderr
    )


def test_url_source_errors_are_named(apex: FakeApex, brain, write_config, apex_server):
    apex_server.expect_request("/gone").respond_with_data("no such page", status=404)
    apex_server.expect_request("/img").respond_with_data(b"\x89PNG", content_type="image/png")
    apex_server.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "https://elsewhere.example/x"}
    )
    write_config(
        "".join(
            f'[[digest.sources]]\nname = "{n}"\nurl = "{apex.url}/{n}?token=s3cret"\n\n'
            for n in ("gone", "img", "moved")
        )
    )
    r = brain("digest")
    assert r.code == 75
    assert "gone (url http://127.0.0.1" in r.stderr and "answered HTTP 404" in r.stderr
    assert "answered image/png, not text" in r.stderr
    assert "redirect to https://elsewhere.example/x" in r.stderr
    assert "s3cret" not in r.stderr  # a URL's query (a token) is never shown


def test_out_and_post_land_the_digest(
    apex: FakeApex, brain, write_config, notes, slack: HTTPServer, home
) -> None:
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    apex.answer("daily_digest", ["**Decisions**\n", "- soil pH lab"])
    out = home.root / "digest.md"
    hook = {"BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")}
    r = brain("digest", "--out", str(out), "--post", env=hook)
    assert r.code == 0, r.stderr
    assert r.stdout == "**Decisions**\n- soil pH lab\n"
    assert out.read_text() == "**Decisions**\n- soil pH lab\n"
    assert "wrote the digest to" in r.stderr and "posted the digest to Slack" in r.stderr
    time.sleep(0.5)  # and no second sender posts it again
    (text,) = posted(slack)
    head, body = text.split("\n", 1)
    assert head.startswith("*Digest* — ") and " from notes (brain on " in head
    assert body == "**Decisions**\n- soil pH lab\n"
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_post_needs_a_webhook_before_anything_is_asked(apex: FakeApex, brain, notes, write_config):
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    r = brain("digest", "--post")
    assert r.code == 77 and "brain keys set slack" in r.stderr
    assert apex.requests == []


def test_post_to_an_unreachable_slack_waits_in_the_outbox(
    apex: FakeApex, brain, notes, write_config, home
) -> None:
    from fakes import refused_url

    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    apex.answer("daily_digest", ["the digest"])
    r = brain("digest", "--post", env={"BRAIN_SLACK_WEBHOOK": refused_url() + "/hook"})
    assert r.code == 75 and r.stdout == "the digest\n"
    # Why, in words (brain.client.describe), not an exception class name.
    assert "waits in the outbox" in r.stderr and "connection refused" in r.stderr
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    (waiting,) = [t for (t,) in db.execute("SELECT text FROM outbox")]
    assert waiting.startswith("*Digest* — ") and waiting.endswith("\nthe digest\n")


def test_out_into_a_missing_folder_is_refused_first(apex: FakeApex, brain, notes, write_config):
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    r = brain("digest", "--out", "no/such/dir/d.md")
    assert r.code == 2 and "does not exist" in r.stderr and apex.requests == []


def test_piped_material_is_digested_as_before_and_sources_are_not_gathered(
    apex: FakeApex, brain, write_config, notes
) -> None:
    write_config(SOURCES)
    apex.answer("daily_digest", ["ok"])
    r = brain("digest", "focus", input="piped notes\n")
    assert r.code == 0, r.stderr
    assert sent(apex) == "focus\n\npiped notes"
    assert "gathered" not in r.stderr


def test_no_material_and_no_sources_is_a_usage_error_that_names_sources(brain) -> None:
    r = brain("digest", input="")
    assert r.code == 2 and "[[digest.sources]]" in r.stderr and "docs/digest.md" in r.stderr


def test_json_carries_the_sources(apex: FakeApex, brain, write_config, notes) -> None:
    write_config(SOURCES)
    apex.answer("daily_digest", ["ok"])
    r = brain("digest", "--json")
    assert r.code == 0, r.stderr
    got = {s["name"]: s for s in r.json["digest"]["sources"]}
    assert got["notes"]["files"] == 1 and got["notes"]["new"] is True
    assert got["broken"]["error"].startswith("exited with 3") and r.json["answer"] == "ok"
    r = brain("digest", "--json", "--source", "notes")
    assert r.json["answer"] is None and r.json["digest"]["sources"][0]["new"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[digest.sources]]\nglob = "x"\n', "needs a `name`"),
        ('[[digest.sources]]\nname = "a"\n', "needs exactly one of glob, command, url"),
        (
            '[[digest.sources]]\nname = "a"\nglob = "x"\nurl = "http://h/"\n',
            "it has glob and url",
        ),
        ('[[digest.sources]]\nname = "a"\nglobb = "x"\n', "unknown key `globb`"),
        ('[[digest.sources]]\nname = "a b"\nglob = "x"\n', "name = 'a b' is not valid"),
        ('[[digest.sources]]\nname = "a"\nurl = "ftp://h/x"\n', "url = 'ftp://h/x'"),
        ('[[digest.sources]]\nname = "a"\ncommand = ""\n', "command = '' is not valid"),
        ('[[digest.sources]]\nname = "a"\nglob = "x"\ntimeout = 0\n', "timeout = 0"),
        (
            '[[digest.sources]]\nname = "a"\nglob = "x"\n[[digest.sources]]\nname = "a"\n'
            'glob = "y"\n',
            "two [[digest.sources]] are named `a`",
        ),
        ("[digest]\nparallel = 0\n", "[digest] parallel = 0 is not valid"),
        ("[digest]\nsources = 3\n", "must be tables written as [[digest.sources]]"),
    ],
)
def test_bad_sources_are_config_errors(brain, write_config, text: str, message: str) -> None:
    path = write_config(text)
    r = brain("digest")
    assert r.code == 78, r.stderr
    assert str(path) in r.stderr and message in r.stderr


def test_config_show_lists_the_sources(brain, write_config) -> None:
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/n/*.md"\n')
    r = brain("config", "show")
    assert r.code == 0 and '{ name = "notes", glob = "~/n/*.md", timeout = 60.0' in r.stdout


def test_parse_since() -> None:
    now = time.time()
    assert parse_since("24h", now) == now - DAY
    assert parse_since("7d", now) == now - 7 * DAY
    assert parse_since("90m", now) == now - 5400
    assert parse_since("2024-03-01", now) == time.mktime((2024, 3, 1, 0, 0, 0, 0, 0, -1))
    assert parse_since("2024-03-01 09:15", now) == parse_since("2024-03-01T09:15", now)
    for bad in ("0h", "soon", "2024-13-01", "3000-01-01"):
        with pytest.raises(Exception, match="--since"):
            parse_since(bad, now)


def test_nothing_reachable_keeps_the_input_and_the_marks(brain, write_config, notes) -> None:
    from fakes import refused_url

    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    down = {"BRAIN_APEX_URL": refused_url()}  # and the laptop's server refuses (conftest)
    r = brain("digest", env=down)
    assert r.code == 69 and "kept in the queue" in r.stderr
    assert "marks did not move: the next `brain digest` gathers this material again" in r.stderr
    queued = brain("queue", "list", "--json").json["queued"]
    assert len(queued) == 1 and "monday: we chose the soil pH lab" in queued[0]["input"]
    r = brain("digest", env=down)  # the same material again, not "nothing new"
    assert r.code == 69 and "1 file" in r.stderr


def test_a_digest_cut_short_is_not_written_posted_or_marked(
    apex: FakeApex, brain, write_config, notes, slack: HTTPServer, home
) -> None:
    write_config('[[digest.sources]]\nname = "notes"\nglob = "~/notes/*.md"\n')
    apex.answer("daily_digest", ["**Decisions**\n", "- soil", " pH lab"], cut_after=2)
    out = home.root / "digest.md"
    r = brain(
        "digest", "--out", str(out), "--post", env={"BRAIN_SLACK_WEBHOOK": slack.url_for("/hook")}
    )
    assert r.code == 75 and r.stdout.startswith("**Decisions**\n- soil"), r.stderr
    assert "the digest is incomplete: not written to the file; not posted; the next digest" in (
        r.stderr
    )
    assert not out.exists() and posted(slack) == []
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    assert db.execute("SELECT COUNT(*) FROM state WHERE name LIKE 'digest.%'").fetchone()[0] == 0
