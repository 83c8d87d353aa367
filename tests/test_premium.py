"""The premium lane: nothing falls back to it, it never falls back, it says what it cost, the
daily cap refuses with exit 75, and [premium] direct asks Anthropic only for premium.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes import FakeAnthropic, FakeApex, FakeOllama

from brain import premium
from brain.backends.base import Answer
from brain.tasks import PREMIUM_ROUTE

UPSTREAM_500 = {
    "error": {
        "message": "litellm.InternalServerError: upstream failed",
        "type": None,
        "param": None,
        "code": "500",
    }
}


def load_tasks():
    from brain import settings
    from brain.tasks import all_tasks

    conf = settings.load()
    return conf, all_tasks(conf.tasks, conf.path.parent)


def store_rows(home) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(home.data / "brain" / "brain.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY id")]
    db.close()
    return rows


# ----- no fallback chain ever reaches premium -------------------------------------------


WALK_CONFIG = """
[apex]
probe_ttl = 0  # a failed answer would otherwise mark Apex away for the next run

[local]
context_tokens = 2000

[premium]
direct = true
anthropic_url = "{anthropic}"

[tasks.notes]
route = "notes_route"
long_route = "notes_long"

[tasks.strict]
route = "strict_route"
fallback = "none"

[tasks.deep]
route = "{premium}"
fallback = "none"
"""


@pytest.mark.parametrize("mode", [[], ["--online"]], ids=["auto", "online"])
def test_walk_every_task_with_everything_failing_never_reaches_premium(
    apex: FakeApex,
    ollama: FakeOllama,
    anthropic: FakeAnthropic,
    brain,
    write_config,
    mode: list[str],
) -> None:
    write_config(WALK_CONFIG.format(anthropic=anthropic.url, premium=PREMIUM_ROUTE))
    ollama.models = []  # the local server runs but has no model: every local answer fails
    anthropic.status = (500, "api_error", "upstream failed")
    _conf, tasks = load_tasks()
    assert {"dump", "digest", "draft", "code", "ask", "premium", "notes", "deep"} <= set(tasks)
    for task in tasks.values():
        for route in (task.route, task.long_route):
            if route:
                apex.error(route, 500, UPSTREAM_500)
    premium_routes = premium.routes(tasks)
    short, long_input = "x", "word " * 3000  # long: past local.context_tokens (2000)

    for name, task in tasks.items():
        for text in (short, long_input):
            before_apex, before_local = len(apex.requests), len(ollama.requests)
            before_anthropic = len(anthropic.requests)
            r = brain(*mode, name, text, env={"BRAIN_ANTHROPIC_KEY": "sk-ant-walk"})
            assert r.code == 69, (name, r.code, r.stderr)
            asked = [b["model"] for b in apex.requests[before_apex:]]
            local_calls = len(ollama.requests) - before_local
            direct_calls = len(anthropic.requests) - before_anthropic
            if task.route in premium_routes:
                assert asked == [task.route], (name, asked)
                assert local_calls == 0 and direct_calls == (0 if mode else 1), name
            else:
                # The request really went out and failed on Apex…
                assert len(asked) == 1 and asked[0] not in premium_routes, (name, asked)
                assert direct_calls == 0, name
                # …and the ladder really went down (when mode and task allow) — to local only,
                # and only with what the local context can hold (nothing is silently cut).
                # A digest too long for the laptop is read there in parts that fit its
                # context (brain.digest.parts): its first part reaches local.
                fits = text is short or name == "digest"
                expect_local = 1 if (task.may_fall_back and not mode and fits) else 0
                assert local_calls == expect_local, (name, local_calls)
    all_asked = {b["model"] for b in apex.requests}
    assert all_asked & premium_routes == {PREMIUM_ROUTE}  # only from premium and deep
    assert "notes_long" in all_asked and "long_context_summary" in all_asked  # long inputs walked


def test_route_flag_cannot_send_a_falling_back_task_to_premium(apex: FakeApex, brain) -> None:
    apex.answer(PREMIUM_ROUTE, "paid")
    r = brain("dump", "--route", PREMIUM_ROUTE, "x")
    assert r.code == 2, r.stderr
    assert "paid premium lane" in r.stderr and "brain premium" in r.stderr
    assert apex.requests == []


@pytest.mark.parametrize(
    "tasks_toml",
    [
        f'[tasks.deep]\nroute = "{PREMIUM_ROUTE}"\n',  # fallback defaults to local
        f'[tasks.deep]\nroute = "{PREMIUM_ROUTE}"\nfallback = "local"\n',
        '[tasks.premium]\nfallback = "local"\n',
        f'[tasks.big]\nroute = "big"\nlong_route = "{PREMIUM_ROUTE}"\n',
        '[tasks.premium]\nroute = "claude_opus"\n[tasks.deep]\nroute = "claude_opus"\n',
    ],
    ids=["default-fallback", "fallback-local", "premium-overridden", "long-route", "renamed"],
)
def test_config_refuses_a_task_that_could_fall_back_from_or_into_premium(
    apex: FakeApex, brain, write_config, tasks_toml: str
) -> None:
    path = write_config(tasks_toml)
    apex.answer("brain_dump", "ok")
    r = brain("dump", "x")
    assert r.code == 78, r.stderr
    assert "premium" in r.stderr or "paid Claude" in r.stderr
    assert "→" in r.stderr  # and what to do about it
    assert apex.requests == []
    assert path.exists()


def test_user_task_on_premium_with_fallback_none_answers_and_reports_cost(
    apex: FakeApex, brain, write_config
) -> None:
    write_config(f'[tasks.deep]\nroute = "{PREMIUM_ROUTE}"\nfallback = "none"\n')
    apex.answer(PREMIUM_ROUTE, ["deep ", "answer"], cost=0.0123)
    r = brain("deep", "why?")
    assert r.code == 0, r.stderr
    assert r.stdout == "deep answer\n"
    assert "premium: this answer cost $0.0123; today so far $0.0123." in r.stderr


def test_fallback_targets_premium_follows_apex_chains() -> None:
    assert premium.fallback_targets_premium([{"code": ["dump"]}, {"dump": ["draft"]}]) == []
    assert premium.fallback_targets_premium([{"code": ["premium_reasoning"]}]) == ["code"]
    # Two hops: code → draft → premium.
    bad = premium.fallback_targets_premium([{"code": ["draft"]}, {"draft": [PREMIUM_ROUTE]}])
    assert sorted(bad) == ["code", "draft"]
    assert premium.fallback_targets_premium([{"a": ["b"]}, {"b": ["a"]}]) == []  # a loop ends


# ----- cost line and the daily cap ------------------------------------------------------


def test_cost_line_and_daily_cap(apex: FakeApex, brain, write_config, home) -> None:
    write_config("[premium]\ndaily_usd = 0.01\n")
    apex.answer(PREMIUM_ROUTE, "paid answer", cost=0.006)
    apex.answer("brain_dump", "free answer", cost=0.0)

    first = brain("premium", "one")
    assert first.code == 0, first.stderr
    assert first.stdout == "paid answer\n"
    assert (
        "premium: this answer cost $0.0060; today so far $0.0060 of your $0.01 daily cap "
        "($0.0040 left)." in first.stderr
    )
    second = brain("premium", "two", "--json")
    assert second.code == 0, second.stderr
    assert second.json["premium"] == {"cost": 0.006, "today_usd": 0.012, "daily_cap_usd": 0.01}
    assert "today so far $0.0120" in second.stderr

    third = brain("premium", "three")
    assert third.code == 75, third.stderr
    assert "$0.01 a day" in third.stderr and "$0.0120" in third.stderr
    assert "brain config set premium.daily_usd" in third.stderr
    assert [b["model"] for b in apex.requests] == [PREMIUM_ROUTE, PREMIUM_ROUTE]
    # Refused before anything was kept: nothing waits in the queue to spend money later.
    assert [r["status"] for r in store_rows(home)] == ["answered", "answered"]

    # The cap is premium's alone.
    dump = brain("dump", "x")
    assert dump.code == 0, dump.stderr
    assert "premium:" not in dump.stderr


def test_cost_line_when_apex_reports_no_cost(apex: FakeApex, brain) -> None:
    apex.answer(PREMIUM_ROUTE, "paid", cost=None)
    r = brain("premium", "x")
    assert r.code == 0, r.stderr
    assert "premium: Apex reported no cost for this answer; today so far $0.0000." in r.stderr


def test_spent_today_counts_only_today_and_premium_routes(home) -> None:
    from brain.store import Store

    store = Store.open_default()
    now = time.time()
    midnight = premium.start_of_today(now)
    rows = [
        (PREMIUM_ROUTE, 0.5, midnight + 60),  # today
        (PREMIUM_ROUTE, 2.0, midnight - 60),  # yesterday evening
        ("claude_opus", 0.25, midnight + 120),  # a renamed premium route, today
        ("brain_dump", 9.0, midnight + 60),  # not premium
    ]
    for route, cost, at in rows:
        row = store.add("t", route, "x", [])
        store.finish(row, route, Answer(text="a", backend="apex", model="m", cost=cost), [])
        store.db.execute("UPDATE exchanges SET time=? WHERE id=?", (at, row))
    assert premium.spent_today(store, {PREMIUM_ROUTE}, now) == pytest.approx(0.5)
    assert premium.spent_today(store, {PREMIUM_ROUTE, "claude_opus"}, now) == pytest.approx(0.75)
    store.close()


# ----- [premium] direct -----------------------------------------------------------------


def direct_config(write_config, anthropic: FakeAnthropic, extra: str = "") -> Path:
    """[premium] direct on, Anthropic faked, Apex refusing connections."""
    from fakes import refused_url

    return write_config(
        f'[premium]\ndirect = true\nanthropic_url = "{anthropic.url}"\n{extra}'
        f'[apex]\nurl = "{refused_url()}"\n'
    )


def test_direct_answers_premium_when_apex_is_away(
    anthropic: FakeAnthropic, brain, write_config
) -> None:
    from fakes import refused_url

    key = "sk-ant-test-abcdef123456"
    anthropic.key = key
    write_config(
        f'[premium]\ndirect = true\nanthropic_url = "{anthropic.url}"\n'
        f'[apex]\nurl = "{refused_url()}"\n'
    )
    r = brain("premium", "think hard", "--json", env={"BRAIN_ANTHROPIC_KEY": key})
    assert r.code == 0, r.stderr
    j = r.json
    assert j["answer"] == "Claude answers"
    assert j["backend"] == "anthropic" and j["model"] == "claude-sonnet-4-5-20250929"
    assert j["route"] == PREMIUM_ROUTE
    assert j["fallbacks"][0]["backend"] == "apex" and "refused" in j["fallbacks"][0]["reason"]
    # 1000 in, 200 out at Sonnet's $3/$15 per million tokens.
    assert j["cost"] == pytest.approx(0.006)
    assert j["premium"]["today_usd"] == pytest.approx(0.006)
    assert "asking Anthropic directly" in r.stderr
    assert "estimated from Anthropic's list price" in r.stderr
    assert key not in r.stderr and key not in r.stdout

    sent, headers = anthropic.requests[0], anthropic.headers_seen[0]
    assert headers["X-Api-Key"] == key and headers["Anthropic-Version"] == "2023-06-01"
    assert sent["model"] == "claude-sonnet-4-5" and sent["stream"] is True
    assert sent["system"].strip()  # the premium prompt, as Anthropic wants it: apart
    assert sent["messages"] == [{"role": "user", "content": "think hard"}]


def test_direct_is_off_by_default(anthropic: FakeAnthropic, brain, write_config) -> None:
    from fakes import refused_url

    write_config(f'[premium]\nanthropic_url = "{anthropic.url}"\n[apex]\nurl = "{refused_url()}"\n')
    r = brain("premium", "x", env={"BRAIN_ANTHROPIC_KEY": "sk-ant-x"})
    assert r.code == 69, r.stderr
    assert "never falls back" in r.stderr
    assert anthropic.requests == []


@pytest.mark.parametrize(
    "args",
    [["dump", "x"], ["ask", "x"], ["--offline", "premium", "x"], ["--online", "premium", "x"]],
    ids=["dump", "ask", "offline", "online"],
)
def test_direct_never_serves_anything_but_premium_in_auto_mode(
    anthropic: FakeAnthropic, brain, write_config, args: list[str]
) -> None:
    direct_config(write_config, anthropic)
    r = brain(*args, env={"BRAIN_ANTHROPIC_KEY": "sk-ant-x"})
    assert r.code == 69, r.stderr
    assert anthropic.requests == []


def test_direct_without_an_anthropic_key(anthropic: FakeAnthropic, brain, write_config) -> None:
    direct_config(write_config, anthropic)
    r = brain("premium", "x")
    assert r.code == 77, r.stderr
    assert "brain keys set anthropic" in r.stderr
    assert anthropic.requests == []


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        ((401, "authentication_error", "invalid x-api-key"), 77, "rejected"),
        ((529, "overloaded_error", "Overloaded"), 75, "overloaded"),
        ((429, "rate_limit_error", "slow down"), 75, "rate limiting"),
        ((404, "not_found_error", "model: claude-nope"), 78, "premium.model"),
    ],
)
def test_direct_errors(
    anthropic: FakeAnthropic, brain, write_config, status, code: int, words: str
) -> None:
    direct_config(write_config, anthropic)
    anthropic.status = status
    r = brain("premium", "x", env={"BRAIN_ANTHROPIC_KEY": "sk-ant-secret-value"})
    assert r.code == code, r.stderr
    assert words in r.stderr
    assert "sk-ant-secret-value" not in r.stderr


def test_direct_with_a_cap_refuses_a_model_of_unknown_price(
    anthropic: FakeAnthropic, brain, write_config
) -> None:
    direct_config(write_config, anthropic, 'daily_usd = 5.0\nmodel = "claude-future-9"\n')
    r = brain("premium", "x", env={"BRAIN_ANTHROPIC_KEY": "sk-ant-x"})
    assert r.code == 78, r.stderr
    assert "does not know what `claude-future-9` costs" in r.stderr
    assert anthropic.requests == []


def test_direct_spending_counts_toward_the_cap(
    anthropic: FakeAnthropic, brain, write_config
) -> None:
    direct_config(write_config, anthropic, "daily_usd = 0.005\n")
    env = {"BRAIN_ANTHROPIC_KEY": "sk-ant-x"}
    assert brain("premium", "one", env=env).code == 0  # $0.006 at list price
    r = brain("premium", "two", env=env)
    assert r.code == 75, r.stderr
    assert len(anthropic.requests) == 1
