"""`brain bench`: measurement against fakes that stream at a known rate, the report, the judge,
the prompts file and the command. Rates and delays are the fakes'; tolerances are wide because
the machine is shared, and nothing here times brain itself (that is bench/)."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest
from fakes import refused_url

from brain.app import App
from brain.bench import judge, measure, prompts, report
from brain.errors import ConfigError

PIECES = [f"w{i} " for i in range(25)]


def _conf():
    """The App for this test's environment (its settings are `.settings`)."""
    return App.load()


def _run(conf, route: str, backend: str = "apex") -> measure.Run:
    return measure.measure(
        conf.backend(backend),
        route,
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        temperature=0.2,
        max_tokens=100,
        run=measure.Run("p", f"{backend} {route}", backend, route, 1),
    )


# ----- the figures ------------------------------------------------------------------------
def test_decode_rate_counts_pieces_after_the_first():
    # 5 pieces, 1 s apart: 4 tokens over 4 s after the first one arrived.
    assert measure.decode_rate([10.0, 11.0, 12.0, 13.0, 14.0], None) == (1.0, "stream")
    # The server says 10 tokens in those 5 pieces: 2 a piece, 8 after the first, over 4 s.
    assert measure.decode_rate([10.0, 11.0, 12.0, 13.0, 14.0], 10) == (2.0, "server")
    # A server count below the pieces seen is implausible: the pieces are counted instead.
    assert measure.decode_rate([0.0, 1.0, 2.0], 1) == (1.0, "stream")
    assert measure.decode_rate([5.0], 1) == (None, "")
    assert measure.decode_rate([], None) == (None, "")


def test_rate_and_first_token_follow_the_fake(apex):
    # 25 pieces, 20 ms apart (50 tokens/s), after 300 ms before the first.
    apex.answer(
        "brain_dump", PIECES, delay=0.02, first_delay=0.3, usage=(40, 25), model_id="gemma27b"
    )
    run = _run(_conf(), "brain_dump")
    assert run.status == "ok", run.reason
    assert run.tps_source == "server" and run.tokens_out == 25 and run.tokens_in == 40
    assert 50 * 0.6 <= run.decode_tps <= 50 * 1.2, run.decode_tps
    # The fake waits 300 ms + one 20 ms gap before the first piece.
    assert 320 <= run.first_token_ms <= 320 + 1500, run.first_token_ms
    assert run.total_ms >= run.first_token_ms + 24 * 20
    assert run.model == "gemma27b"
    assert run.answer == "".join(PIECES)


def test_server_token_count_is_used_when_pieces_hold_several_tokens(apex):
    apex.answer("brain_dump", PIECES, delay=0.02, usage=(40, 50))  # 2 tokens a piece
    run = _run(_conf(), "brain_dump")
    assert run.tps_source == "server" and run.tokens_out == 50
    assert 100 * 0.6 <= run.decode_tps <= 100 * 1.2, run.decode_tps


def test_without_usage_the_pieces_are_counted(apex):
    apex.answer("brain_dump", PIECES, delay=0.02, usage=None)
    run = _run(_conf(), "brain_dump")
    assert run.status == "ok"
    assert run.tokens_in is None
    assert (run.tokens_out, run.tokens_out_source, run.tps_source) == (25, "stream", "stream")
    assert 50 * 0.6 <= run.decode_tps <= 50 * 1.2, run.decode_tps


def test_a_slower_model_measures_slower(apex):
    apex.answer("fast", PIECES, delay=0.01)
    apex.answer("slow", PIECES, delay=0.04)
    conf = _conf()
    fast, slow = _run(conf, "fast"), _run(conf, "slow")
    assert 2.0 <= fast.decode_tps / slow.decode_tps <= 6.0, (fast.decode_tps, slow.decode_tps)


def test_local_model_is_measured(ollama):
    ollama.pieces = PIECES
    ollama.delay = 0.02
    ollama.first_delay = 0.2
    run = _run(_conf(), "gemma4:e4b", backend="local")
    assert run.status == "ok", run.reason
    assert run.model == "gemma4:e4b"
    assert 50 * 0.6 <= run.decode_tps <= 50 * 1.2
    assert run.first_token_ms >= 220


def test_unknown_route_and_cut_stream_are_failures_with_reasons(apex):
    apex.answer("brain_dump", PIECES, cut_after=5)
    conf = _conf()
    run = _run(conf, "nope")
    assert run.status == "failed" and "has no route named `nope`" in run.reason
    cut = _run(conf, "brain_dump")
    assert cut.status == "partial" and "broke" in cut.reason
    assert cut.answer == "".join(PIECES[:5])


# ----- the plan and the whole run ------------------------------------------------------------
def _cells(conf, **kw):
    defaults = {"routes": None, "apex": True, "local": False, "local_model": conf.local_model}
    return measure.plan(conf.settings, conf.tasks, prompts.shipped(), **{**defaults, **kw})


def test_plan_uses_each_prompts_task_route_unless_routes_are_given():
    conf = _conf()
    cells = _cells(conf, local=True)
    assert [(c.prompt.name, c.target.label) for c in cells] == [
        ("classroom-dump", "apex brain_dump"),
        ("classroom-dump", "local gemma4:e4b"),
        ("overnight-digest", "apex daily_digest"),
        ("overnight-digest", "local gemma4:e4b"),
        ("page-rewrite", "apex draft"),
        ("page-rewrite", "local gemma4:e4b"),
    ]
    digest = cells[2].messages
    assert digest[0]["content"].startswith("You write a daily digest")
    assert "--- 03-greenhouse-log.md ---" in digest[1]["content"]
    assert "heater running, temp not rising" in digest[1]["content"]
    routed = _cells(conf, routes=["a", "b"])
    assert {c.target.label for c in routed} == {"apex a", "apex b"} and len(routed) == 6


def test_run_bench_interleaves_and_records_failures(apex, ollama):
    apex.answer("brain_dump", ["a ", "b"])
    apex.answer("draft", ["c ", "d"])
    # daily_digest is not a route on this Apex: its runs fail, the first with the reason.
    conf = _conf()
    seen = []
    result = measure.run_bench(
        conf,
        _cells(conf, local=True),
        runs=2,
        on_progress=lambda d, t, label, run: seen.append((d, t, label, run)),
    )
    labels = [(r.run, r.prompt, r.target) for r in result.runs]
    assert labels[:2] == [
        (1, "classroom-dump", "apex brain_dump"),
        (1, "classroom-dump", "local gemma4:e4b"),
    ]
    assert labels[6][0] == 2  # run 2 starts after every cell's run 1
    failed = [r for r in result.runs if r.status == "failed"]
    assert [r.target for r in failed] == ["apex daily_digest", "apex daily_digest"]
    assert "has no route" in failed[0].reason
    assert failed[1].reason.startswith("not sent: an earlier run failed")
    assert len(apex.requests) == 5  # 2 + 1 + 2: the dead route was asked once
    assert seen[-1][0] == seen[-1][1] == 12


def test_unreachable_apex_fails_its_runs_and_local_still_runs(ollama, monkeypatch):
    monkeypatch.setenv("BRAIN_APEX_URL", refused_url())
    conf = _conf()
    notices = []
    result = measure.run_bench(conf, _cells(conf, local=True), runs=1, notice=notices.append)
    apex_runs = [r for r in result.runs if r.backend == "apex"]
    local_runs = [r for r in result.runs if r.backend == "local"]
    assert all(r.status == "failed" and "connection refused" in r.reason for r in apex_runs)
    assert all(r.status == "ok" for r in local_runs) and len(local_runs) == 3
    assert "connection refused" in notices[0]


def test_apex_not_configured_is_a_config_error():
    conf = _conf()
    with pytest.raises(ConfigError, match=r"apex\.url is empty"):
        measure.run_bench(conf, _cells(conf), runs=1)


# ----- prompts ----------------------------------------------------------------------------
def test_shipped_prompts():
    shipped = {p.name: p for p in prompts.shipped()}
    assert list(shipped) == ["classroom-dump", "overnight-digest", "page-rewrite"]
    assert [p.task for p in shipped.values()] == ["dump", "digest", "draft"]
    assert len(shipped["overnight-digest"].material) == 5
    assert all("Faithful" in p.rubric for p in shipped.values())


def test_user_prompts_file(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("note A")
    f = tmp_path / "mine.toml"
    f.write_text(
        '[prompts.mine]\ntask = "digest"\ntext = "sum up"\nmaterial = ["notes/a.md"]\n'
        "max_tokens = 99\n"
    )
    (p,) = prompts.from_file(f)
    assert (p.name, p.task, p.text, p.material, p.max_tokens) == (
        "mine",
        "digest",
        "sum up",
        (("a.md", "note A"),),
        99,
    )
    assert p.rubric == prompts.DEFAULT_RUBRIC.strip() and p.source == str(f)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[prompts.x]\ntext = 1\n", "`text` must be a string"),
        ('[prompts.x]\ntext = "a"\ncolour = "red"\n', "unknown key `colour`"),
        ('[prompts.x]\nmaterial = ["missing.md"]\n', "cannot read the material file"),
        ("[prompts.x]\ntask = 'ask'\n", "neither `text` nor `material`"),
        ("[prompts.x\n", "is not valid TOML"),
        ("title = 'x'\n", "unknown top-level key"),
        ("", "has no prompts"),
    ],
)
def test_bad_prompts_files_name_the_problem(tmp_path, text, message):
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        prompts.from_file(f)
    assert str(f) in err.value.message


# ----- the report -------------------------------------------------------------------------
def _result(apex, runs=2):
    apex.answer("brain_dump", PIECES, delay=0.004, usage=(30, 25))
    apex.answer("draft", PIECES, delay=0.016, usage=(30, 25))
    conf = _conf()
    cells = [c for c in _cells(conf) if c.prompt.name != "overnight-digest"]
    return measure.run_bench(conf, cells, runs=runs)


def test_report_markdown_and_chart(apex):
    result = _result(apex)
    text = report.markdown(result, "chart.svg")
    assert text.startswith(f"# Gemma benchmark — {dt.date.today().isoformat()}")
    for section in ("## Machine and models", "## Speed", "## Answers", "## Prompts"):
        assert section in text
    assert "| classroom-dump | apex brain_dump | brain_dump-deployment |" in text
    assert "![Decode tokens per second, median and range](chart.svg)" in text
    assert "> w0 w1 w2" in text  # the answer itself, quoted
    assert "Quality notes" not in text  # no --judge, no judgement section

    svg = ET.fromstring(report.svg_chart(result))
    bars = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "bar"]
    assert len(bars) == 2
    widths = {float(b.get("data-median")): float(b.get("width")) for b in bars}
    (fast, w_fast), (slow, w_slow) = sorted(widths.items(), reverse=True)
    assert fast > slow
    assert w_fast / w_slow == pytest.approx(fast / slow, rel=0.02)  # bars are to scale


def test_report_lists_failures_and_json_has_every_run(apex):
    apex.answer("brain_dump", ["x"])
    conf = _conf()
    result = measure.run_bench(conf, _cells(conf, routes=["brain_dump", "gone"]), runs=1)
    text = report.markdown(result, None)
    assert "## Failures" in text and "on apex gone, run 1: Apex has no route named `gone`" in text
    data = report.as_json(result)
    assert data["version"] == 1 and len(data["runs"]) == 6
    assert {s["target"] for s in data["summary"]} == {"apex brain_dump", "apex gone"}
    json.dumps(data)  # serialisable as is


def test_default_report_path_keeps_an_earlier_one(tmp_path):
    day = dt.date(2026, 3, 4)
    first = report.default_path(tmp_path, day)
    assert first.name == "Gemma_Benchmark_2026-03-04.md"
    first.write_text("x")
    assert report.default_path(tmp_path, day).name == "Gemma_Benchmark_2026-03-04-2.md"


def test_ranges_are_shown_compactly():
    assert report.with_range(report.Spread(238, 237, 240, 3), report.ms) == "238 ms (237–240 ms)"
    assert report.with_range(report.Spread(1500, 900, 2100, 3), report.ms) == (
        "1.50 s (900 ms–2.10 s)"
    )
    assert report.with_range(None, report.ms) == "—"


# ----- the judge --------------------------------------------------------------------------
def test_parse_verdict():
    good = '{"scores": {"faithful": 4, "structure": "5"}, "overall": 4, "note": "ok"}'
    assert judge.parse_verdict(good) == ({"faithful": 4, "structure": 5}, 4, "ok")
    assert judge.parse_verdict(f"Here you go:\n```json\n{good}\n```")[1] == 4
    assert judge.parse_verdict("I think it is good {maybe}") is None
    assert judge.parse_verdict('{"scores": {"faithful": 9}}') is None  # out of range


def test_judge_scores_each_first_answer(apex):
    result = _result(apex, runs=1)
    verdict = {"scores": {"faithful": 5, "structure": 4}, "overall": 4, "note": "clear"}
    apex.answer("judge", ["```json\n", json.dumps(verdict), "\n```"], model_id="claude-x")
    out = judge.judge_all(result, _conf().backend("apex"), "judge")
    assert [(j.prompt, j.overall, j.judge_model) for j in out] == [
        ("classroom-dump", 4, "claude-x"),
        ("page-rewrite", 4, "claude-x"),
    ]
    sent = apex.requests[-1]
    assert sent["model"] == "judge" and sent["temperature"] == 0.0
    assert "## Rubric" in sent["messages"][1]["content"]
    assert "w0 w1" in sent["messages"][1]["content"]  # the answer under judgement
    result.judge_route, result.judgements = "judge", out
    text = report.markdown(result, None)
    assert "## Quality notes — a model's judgement, not a measurement" in text
    assert "| classroom-dump | apex brain_dump | faithful 5, structure 4 | 4 | clear |" in text


def test_judge_that_does_not_answer_in_form(apex):
    result = _result(apex, runs=1)
    apex.answer("judge", "It's pretty good overall.")
    out = judge.judge_all(result, _conf().backend("apex"), "judge")
    assert all("not answer in the expected form" in j.error for j in out)
    assert "pretty good" in out[0].error


# ----- the command ------------------------------------------------------------------------
def test_command_json_and_files(apex, brain, home):
    apex.answer("brain_dump", PIECES, usage=(30, 25))
    out = home.root / "r" / "bench.md"
    r = brain("bench", "--only", "classroom-dump", "--runs", "2", "--json", "--out", str(out))
    assert r.code == 0, r.stderr
    data = r.json  # stdout is the JSON object only
    assert data["report"] == str(out) and data["chart"] == str(out.with_suffix(".svg"))
    (row,) = data["summary"]
    assert (row["target"], row["ok"], row["runs"], row["models"]) == (
        "apex brain_dump",
        2,
        2,
        ["brain_dump-deployment"],
    )
    assert row["tokens_out"] == 25 and row["tokens_counted_by"] == "server"
    assert "# Gemma benchmark" in out.read_text()
    ET.fromstring(out.with_suffix(".svg").read_text())
    assert "bench 2/2: classroom-dump · apex brain_dump · run 2/2" in r.stderr


def test_command_default_report_name_and_table(apex, brain, home):
    apex.answer("brain_dump", ["x ", "y"])
    r = brain("bench", "--only", "classroom-dump", "--runs", "1")
    assert r.code == 0, r.stderr
    name = f"Gemma_Benchmark_{dt.date.today().isoformat()}"
    assert (home.root / f"{name}.md").exists() and (home.root / f"{name}.svg").exists()
    assert r.stdout.splitlines()[0].startswith("prompt\ttarget\tanswered by\tfirst token")
    assert "classroom-dump\tapex brain_dump\tbrain_dump-deployment\t" in r.stdout
    r2 = brain("bench", "--only", "classroom-dump", "--runs", "1")
    assert r2.code == 0 and (home.root / f"{name}-2.md").exists()


def test_command_nothing_answers(brain, home, monkeypatch):
    r = brain("bench", "--runs", "1", "--no-report", env={"BRAIN_APEX_URL": refused_url()})
    assert r.code == 69
    assert "No run answered completely" in r.stderr and "connection refused" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(home.root.glob("Gemma_Benchmark_*"))


def test_command_offline_measures_the_local_model(ollama, brain):
    r = brain("bench", "--offline", "--runs", "1", "--no-report", "--json")
    assert r.code == 0, r.stderr
    assert {s["target"] for s in r.json["summary"]} == {"local gemma4:e4b"}
    assert all(s["ok"] == 1 for s in r.json["summary"])


def test_command_user_prompts_and_routes(apex, brain, home):
    apex.answer("fast", ["x"])
    f = home.root / "mine.toml"
    f.write_text('[prompts.mine]\ntask = "dump"\ntext = "buy milk, call Ana"\n')
    r = brain(
        "bench", "--prompts", str(f), "--only", "mine", "--routes", "fast", "--runs", "1",
        "--no-report", "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    (sent,) = apex.requests
    assert sent["model"] == "fast" and sent["stream"] is True
    assert sent["messages"][1]["content"] == "buy milk, call Ana"
    assert sent["messages"][0]["content"].startswith("You turn a brain dump into order")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--only", "nope"], 2, "no prompt named nope"),
        (["--offline", "--routes", "x"], 2, "keeps brain on this laptop"),
        (["--online", "--local"], 2, "contradict"),
        (["--prompts", "missing.toml"], 78, "cannot read the prompts file"),
        (["--runs", "0"], 2, "--runs"),
    ],
)
def test_command_usage_errors(apex, brain, args, code, message):
    r = brain("bench", "--no-report", *args)
    assert r.code == code, r.stderr
    assert message in r.stderr
    assert not apex.requests


def test_command_judge(apex, brain, home):
    apex.answer("brain_dump", ["- [ ] call Sam"])
    apex.answer("judge", json.dumps({"scores": {"faithful": 3}, "overall": 3, "note": "thin"}))
    out = home.root / "j.md"
    r = brain(
        "bench", "--only", "classroom-dump", "--runs", "1", "--judge", "judge", "--out", str(out)
    )
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("\tjudge (1-5)")
    assert r.stdout.splitlines()[1].endswith("\t3")
    text = out.read_text()
    assert "a model's judgement, not a measurement" in text
    assert "| classroom-dump | apex brain_dump | faithful 3 | 3 | thin |" in text


def test_bench_is_listed_in_help(brain):
    r = brain("--help")
    assert "bench" in r.stdout and "tokens/s" in r.stdout


def test_command_judge_that_cannot_score_says_why(apex, brain):
    apex.answer("brain_dump", ["- [ ] call Sam"])
    apex.answer("judge", "Looks fine to me.")
    r = brain("bench", "--only", "classroom-dump", "--runs", "1", "--judge", "judge", "--no-report")
    assert r.code == 0, r.stderr
    assert "the judge scored 0 of 1 answers" in r.stderr
    assert "not answer in the expected form: 'Looks fine to me.'" in r.stderr


def test_command_rejected_key_says_how_to_fix_it(apex, brain):
    apex.key = "the-right-key"
    apex.answer("brain_dump", ["x"])
    r = brain(
        "bench", "--only", "classroom-dump", "--runs", "3", "--no-report",
        env={"BRAIN_APEX_KEY": "a-wrong-key"},
    )  # fmt: skip
    assert r.code == 69
    assert "Apex rejected the key" in r.stderr and "brain keys set apex" in r.stderr
    assert "a-wrong-key" not in r.stderr
    assert len(apex.requests) == 1  # a rejected key is not retried for the other runs


def test_command_local_not_running_names_ollama(brain):
    r = brain("bench", "--offline", "--runs", "1", "--no-report")
    assert r.code == 69
    assert "connection refused" in r.stderr and "ollama serve" in r.stderr


def test_ctrl_c_keeps_the_runs_that_finished(apex):
    apex.answer("brain_dump", ["a"])
    apex.answer("draft", ["b"])
    conf = _conf()
    cells = [c for c in _cells(conf) if c.prompt.name != "overnight-digest"]

    def progress(done, _total, _label, run):
        if run is not None and done == 3:
            raise KeyboardInterrupt

    result = measure.run_bench(conf, cells, runs=3, on_progress=progress)
    assert result.interrupted and len(result.runs) == 3
    assert "Interrupted" in report.markdown(result, None)


def test_command_without_apex_measures_local_with_a_notice(ollama, brain):
    r = brain("bench", "--local", "--runs", "1", "--no-report", "--json")
    assert r.code == 0, r.stderr
    assert "Apex is not configured (apex.url); measuring the local model only." in r.stderr
    assert {s["target"] for s in r.json["summary"]} == {"local gemma4:e4b"}


def test_an_answer_cut_by_max_tokens_still_counts(apex):
    apex.answer("brain_dump", PIECES)
    conf = _conf()
    # FakeApex streams finish_reason "stop"; a "length" finish comes from the real servers.
    from fakes import chunk

    apex.server.clear()  # re-register: a stream that ends on the length limit
    apex.server.expect_request("/health/liveliness").respond_with_data('"ok"')
    body = "".join([chunk("a "), chunk("b "), chunk(None, finish="length"), "data: [DONE]\n\n"])
    apex.server.expect_request("/v1/chat/completions").respond_with_data(
        body, content_type="text/event-stream"
    )
    run = _run(conf, "brain_dump")
    assert run.status == "ok" and "max_tokens" in run.reason
    assert run.answer == "a b "
