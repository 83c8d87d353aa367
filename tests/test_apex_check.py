"""`brain apex check` against the fake Apex: the table, a route Apex lacks, a rejected key,
an unreachable Apex. (The real proxy is in test_apex_proxy.py.)"""

from __future__ import annotations

from fakes import UNRESOLVABLE_URL, refused_url

from brain.apex import catalog
from brain.tasks import builtin_tasks

ROUTES = catalog.routes_of(builtin_tasks())


def _answer_all(apex, skip=()):
    for route in ROUTES:
        if route not in skip:
            apex.answer(route, ["OK"], model_id=f"{catalog.CHAINS[route][0]}@{route}")


def test_table_of_who_answered(apex, brain):
    _answer_all(apex)
    r = brain("apex", "check")
    assert r.code == 0, r.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in r.stdout.splitlines()[1:]}
    assert rows["code"][3] == "apex-qwen-32b@code (Apex GPU)"
    assert rows["premium_reasoning"][2] == "skipped"
    asked = [body["model"] for body in apex.requests]
    assert "premium_reasoning" not in asked and len(asked) == len(ROUTES) - 1
    assert all(body["stream"] for body in apex.requests)


def test_only_and_unknown_route(apex, brain):
    _answer_all(apex)
    r = brain("apex", "check", "--only", "code")
    assert r.code == 0, r.stderr
    assert [body["model"] for body in apex.requests] == ["code"]
    bad = brain("apex", "check", "--only", "nope")
    assert bad.code == 2 and "brain_dump" in bad.stderr


def test_route_missing_on_apex_is_a_config_error(apex, brain):
    _answer_all(apex, skip=("daily_digest",))
    r = brain("--json", "apex", "check")
    assert r.code == 78
    routes = {x["route"]: x for x in r.json["routes"]}
    assert routes["daily_digest"]["missing"] is True
    assert routes["brain_dump"]["ok"] is True


def test_route_missing_tells_what_to_do(apex, brain):
    _answer_all(apex, skip=("daily_digest",))
    r = brain("apex", "check")
    assert r.code == 78
    assert "brain apex render" in r.stderr


def test_rejected_key(apex, brain):
    apex.key = "sk-right"
    _answer_all(apex)
    r = brain("apex", "check", env={"BRAIN_APEX_KEY": "sk-wrong"})
    assert r.code == 77
    assert "brain keys set apex" in r.stderr
    assert "sk-wrong" not in r.stderr + r.stdout


def test_unreachable_apex(brain):
    for url in (refused_url(), UNRESOLVABLE_URL):
        r = brain("apex", "check", env={"BRAIN_APEX_URL": url})
        assert r.code == 69, r.stderr
        assert "tailscale status" in r.stderr
        assert r.stdout == ""


def test_no_apex_configured(brain):
    r = brain("apex", "check")
    assert r.code == 78
    assert "apex.url" in r.stderr
