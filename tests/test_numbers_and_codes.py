"""Numbers a server or a user can send, and the exit codes of the contract (issue 31, items 10
and 11): a nan or negative cost, a huge id, `apex render` onto a directory named config.yaml,
503/408 as "try later" (75), `queue run` that cut an answer off (75)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from fakes import FakeApex, FakeOllama, refused_url

from brain.tasks import PREMIUM_ROUTE


@pytest.mark.parametrize("cost", ["nan", "inf", "-1", "1e999", "lots"])
def test_a_cost_that_is_no_number_leaves_json_valid(apex: FakeApex, brain, cost: str) -> None:
    apex.answer("brain_dump", ["ok"])
    apex.routes["brain_dump"]["cost"] = cost  # the header as the server sends it
    r = brain("--json", "dump", "x")
    assert r.code == 0, r.stderr
    parsed = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json"))
    assert parsed["cost"] is None


def test_a_negative_cost_does_not_lift_the_premium_cap(
    apex: FakeApex, brain, write_config, home
) -> None:
    write_config("[premium]\ndaily_usd = 1.0\n")
    apex.answer(PREMIUM_ROUTE, "paid", cost=-1000.0)
    assert brain("premium", "one").code == 0
    apex.answer(PREMIUM_ROUTE, "paid", cost=1.5)
    assert brain("premium", "two").code == 0
    third = brain("premium", "three")
    assert third.code == 75 and "$1.00 a day" in third.stderr


def test_a_negative_cost_kept_by_an_older_brain_does_not_lift_the_cap(
    apex: FakeApex, brain, write_config, home
) -> None:
    write_config("[premium]\ndaily_usd = 1.0\n")
    apex.answer(PREMIUM_ROUTE, "paid", cost=1.5)
    assert brain("premium", "one").code == 0
    db = sqlite3.connect(home.data / "brain" / "brain.db")
    db.execute(
        "INSERT INTO exchanges (time, status, task, route, input, messages, cost)"
        " VALUES (?, 'answered', 'premium', ?, 'old', '[]', -1000)",
        (time.time(), PREMIUM_ROUTE),
    )
    db.commit()
    db.close()
    assert brain("premium", "two").code == 75


@pytest.mark.parametrize("command", ["drop", "run"])
@pytest.mark.parametrize("row", ["99999999999999999999999", "0", "-3", "9223372036854775808"])
def test_a_queue_id_no_row_can_have_is_a_usage_error(brain, command: str, row: str) -> None:
    r = brain("queue", command, "--", row)
    assert r.code == 2, r.stderr


def test_the_largest_sqlite_id_is_simply_not_there(brain) -> None:
    r = brain("queue", "drop", "9223372036854775807")
    assert r.code == 2 and "no queued input with id" in r.stderr


def test_apex_render_onto_a_directory_named_config_yaml(brain, home) -> None:
    target = home.root / "apex"
    (target / "config.yaml").mkdir(parents=True)
    r = brain("apex", "render", str(target))
    assert r.code == 2, r.stderr
    assert "config.yaml exists and is not a file" in r.stderr and "nothing was written" in r.stderr
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml"]


# ----- 503/408: the server is there and says "try later" ---------------------------------------


@pytest.mark.parametrize(("status", "code"), [(503, 75), (408, 75), (502, 69), (500, 69)])
def test_apex_busy_and_nothing_else_is_try_later(
    apex: FakeApex, brain, status: int, code: int
) -> None:
    apex.error("brain_dump", status, {"error": {"message": "No deployments available"}})
    r = brain("dump", "x")  # the local server is refused (conftest)
    assert r.code == code, r.stderr
    assert "kept" in r.stderr


@pytest.mark.parametrize("status", [503, 408])
def test_busy_with_online_or_premium_is_try_later(apex: FakeApex, brain, status: int) -> None:
    apex.error("brain_dump", status, {"error": {"message": "busy"}})
    apex.error(PREMIUM_ROUTE, status, {"error": {"message": "busy"}})
    assert brain("--online", "dump", "x").code == 75
    assert brain("premium", "x").code == 75


def test_busy_apex_with_local_answering_is_an_answer(
    apex: FakeApex, ollama: FakeOllama, brain
) -> None:
    apex.error("brain_dump", 503, {"error": {"message": "busy"}})
    r = brain("dump", "x")
    assert r.code == 0 and r.stdout == "local answer\n"


# ----- queue run ------------------------------------------------------------------------------


def test_queue_run_that_cut_an_answer_off_exits_75(apex: FakeApex, brain) -> None:
    assert brain("dump", "kept", env={"BRAIN_APEX_URL": refused_url()}).code == 69
    apex.answer("brain_dump", ["one ", "two ", "three"], cut_after=2)
    r = brain("queue", "run")
    assert r.code == 75, r.stderr
    assert r.stdout.endswith("one two \n") and "incomplete" in r.stderr
    assert brain("--json", "queue", "list").json == {"queued": []}
