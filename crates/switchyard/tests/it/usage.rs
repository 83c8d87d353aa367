//! Usage reports end to end: a local lane that fails in several ways, a paid cloud lane that
//! answers; `/api/usage`, `/api/series` and `/api/requests` count what happened, and
//! `switchyard usage` says the same from the ledger once the gateway has stopped.

use crate::support::*;
use serde_json::{Value, json};
use std::process::{Command, Output};

/// `l0` is local (p0), `l1` is a cloud lane (p1) priced so each answer (7 tokens in, 3 out)
/// costs $0.013. The breaker stays shut so every failure is the upstream's own.
fn config(local: &str, cloud: &str, extra: &str) -> String {
    format!(
        "health: {{ failures: 50, cooldown: 1s }}\n\
         providers:\n\
         \x20 p0: {{ kind: openai, base_url: \"{local}\", api_key: \"k0\", local: true, timeouts: {{ first_byte: 1s, idle: 1s }} }}\n\
         \x20 p1: {{ kind: openai, base_url: \"{cloud}\", api_key: \"k1\", timeouts: {{ first_byte: 1s, idle: 1s }} }}\n\
         lanes:\n\
         \x20 l0: {{ provider: p0, model: m0 }}\n\
         \x20 l1: {{ provider: p1, model: m1, price: {{ input: 1000.0, output: 2000.0 }} }}\n\
         routes:\n\
         \x20 default: [l0, l1]\n\
         {extra}"
    )
}

/// Six requests: one answered locally, two after l0's 500, one after its 429 and one while it
/// cools down from that 429 (all answered by l1), and one for a model nobody serves.
async fn traffic(gw: &Running, local: &FakeUpstream) {
    let mut trails = Vec::new();
    let mut send = async |model: &str| {
        let r = gw.post(hello(model), &[("authorization", "Bearer sk-usage")]).await;
        trails.push((r.status().as_u16(), header(&r, "x-switchyard-attempts")));
    };
    send("default").await;
    local.set(Behavior::status(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
    ));
    send("default").await;
    send("default").await;
    local.set(Behavior::Status {
        status: 429,
        body: r#"{"error":{"message":"Rate limit reached (RPM)","type":"requests","code":"rate_limit_exceeded"}}"#
            .into(),
        headers: vec![("retry-after".into(), "60".into())],
    });
    send("default").await;
    send("default").await;
    send("no-such-model").await;
    assert_eq!(
        trails,
        [
            (200, "l0:ok".to_owned()),
            (200, "l0:unavailable,l1:ok".into()),
            (200, "l0:unavailable,l1:ok".into()),
            (200, "l0:rate_limited,l1:ok".into()),
            (200, "l0:cooling_down,l1:ok".into()),
            (404, String::new()),
        ]
    );
}

async fn get(gw: &Running, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut r = client().get(format!("{}{path}", gw.url));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn usage_cli(gw: &Running, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("usage")
        .args(args)
        .arg("--config")
        .arg(gw.dir.path().join("switchyard.yaml"))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What stays the same when the same ledger is read again later: all but the period.
fn without_period(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("since_ms");
    o.remove("until_ms");
    v
}

#[tokio::test]
async fn usage_counts_fallbacks_with_reasons_and_the_cli_agrees_offline() {
    let (local, cloud) = (FakeUpstream::start("local").await, FakeUpstream::start("cloud").await);
    let mut gw = Running::start(&config(&local.base_url(), &cloud.base_url(), ""));
    traffic(&gw, &local).await;

    // (1) The report, by lane (the default), straight after the requests.
    let (status, by_lane) = get(&gw, "/api/usage?since=1h", None).await;
    assert_eq!(status, 200, "{by_lane}");
    assert_eq!(by_lane["by"], "lane");
    let until = by_lane["until_ms"].as_i64().unwrap();
    assert_eq!(until - by_lane["since_ms"].as_i64().unwrap(), 3_600_000);
    assert_eq!(
        by_lane["total"],
        json!({"key": "total", "requests": 6, "ok": 5, "errors": 1, "tokens_in": 35, "tokens_out": 15,
               "cost_usd": 0.052, "local_share": 0.2, "fallbacks": 4})
    );
    assert_eq!(
        by_lane["rows"],
        json!([
            {"key": "l1", "requests": 4, "ok": 4, "errors": 0, "tokens_in": 28, "tokens_out": 12,
             "cost_usd": 0.052, "local_share": 0.0, "fallbacks": 4},
            {"key": "(none)", "requests": 1, "ok": 0, "errors": 1, "tokens_in": 0, "tokens_out": 0,
             "cost_usd": 0.0, "local_share": 0.0, "fallbacks": 0},
            {"key": "l0", "requests": 1, "ok": 1, "errors": 0, "tokens_in": 7, "tokens_out": 3,
             "cost_usd": 0.0, "local_share": 1.0, "fallbacks": 0},
        ])
    );
    assert_eq!(
        by_lane["fallback_reasons"],
        json!([
            {"lane": "l0", "reason": "unavailable", "count": 2},
            {"lane": "l0", "reason": "cooling_down", "count": 1},
            {"lane": "l0", "reason": "rate_limited", "count": 1},
        ])
    );
    let (_, by_provider) = get(&gw, "/api/usage?since=1h&by=provider", None).await;
    let keys = |v: &Value| -> Vec<(String, u64)> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), r["requests"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(
        keys(&by_provider),
        [("p1".into(), 4), ("(none)".into(), 1), ("p0".into(), 1)]
    );
    let (_, by_route) = get(&gw, "/api/usage?since=1h&by=route", None).await;
    assert_eq!(keys(&by_route)[0], ("default".into(), 5));
    // A period that ended before the traffic is empty.
    let (_, before) = get(&gw, "/api/usage?since=2h&until=1h", None).await;
    assert_eq!(
        (
            before["total"]["requests"].as_u64(),
            before["rows"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );

    // (2) The trail of each request, newest first.
    let (status, page) = get(&gw, "/api/requests?limit=3", None).await;
    assert_eq!(status, 200, "{page}");
    let reqs = page["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        (
            reqs[0]["model"].as_str(),
            reqs[0]["status"].as_str(),
            reqs[0]["http_status"].as_u64()
        ),
        (Some("no-such-model"), Some("error"), Some(404))
    );
    assert_eq!(reqs[0]["attempts"], json!([]));
    assert_eq!(reqs[0]["fallback"], Value::Null);
    let cooled = &reqs[1];
    assert_eq!(cooled["fallback"], json!({"lane": "l0", "reason": "cooling_down"}));
    assert_eq!(
        (
            cooled["lane"].as_str(),
            cooled["route"].as_str(),
            cooled["local"].as_bool()
        ),
        (Some("l1"), Some("default"), Some(false))
    );
    assert!((cooled["cost_usd"].as_f64().unwrap() - 0.013).abs() < 1e-12, "{cooled}");
    let trail: Vec<(&str, &str, &str)> = cooled["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["lane"].as_str().unwrap(),
                a["provider"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(trail, [("l0", "p0", "cooling_down"), ("l1", "p1", "ok")]);
    assert_eq!(cooled["attempts"][1]["http_status"], 200);
    assert_eq!(reqs[2]["fallback"], json!({"lane": "l0", "reason": "rate_limited"}));
    assert_eq!(reqs[2]["attempts"][0]["http_status"], 429);
    // The next page starts before the last one shown.
    let before = reqs[2]["ts_ms"].as_i64().unwrap();
    let (_, older) = get(&gw, &format!("/api/requests?limit=50&before={before}"), None).await;
    let older = older["requests"].as_array().unwrap().clone();
    assert!(older.iter().all(|r| r["ts_ms"].as_i64().unwrap() < before));
    let first = older.last().unwrap();
    assert_eq!(
        (
            first["lane"].as_str(),
            first["local"].as_bool(),
            first["fallback"].is_null()
        ),
        (Some("l0"), Some(true), true)
    );
    assert_eq!(first["caller"], Value::Null, "no keys configured: no caller");

    // The series: every request in some bucket, per lane.
    let (status, series) = get(&gw, "/api/series?since=1h&step=3600", None).await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["step_ms"], 3_600_000);
    assert_eq!(series["lanes"], json!(["l1", "(none)", "l0"]));
    let points = series["points"].as_array().unwrap();
    let sum = |lane: &str, k: &str| -> u64 {
        points
            .iter()
            .filter(|p| p["lane"] == lane)
            .map(|p| p[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (
            sum("l1", "requests"),
            sum("l1", "tokens_out"),
            sum("l0", "requests"),
            sum("(none)", "requests")
        ),
        (4, 12, 1, 1)
    );
    assert!(
        points.iter().all(|p| p["t"].as_i64().unwrap() % 3_600_000 == 0),
        "{series}"
    );
    let (_, fine) = get(&gw, "/api/series?since=1d", None).await;
    assert_eq!(fine["step_ms"], 1_440_000, "a day in about 60 buckets");

    // Bad parameters: 400 in the OpenAI error shape, naming the parameter.
    for (query, param, says) in [
        ("/api/usage?since=yesterday", "since", "24h"),
        ("/api/usage?by=lanes", "by", "lane, route, day or provider"),
        ("/api/usage?sinse=1h", "sinse", "since, until, by"),
        ("/api/series?step=0", "step", "seconds"),
        ("/api/requests?limit=ten", "limit", "500"),
        ("/api/requests?limit=5&limit=6", "limit", "twice"),
    ] {
        let (status, body) = get(&gw, query, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}");
        assert_eq!(body["error"]["param"], param, "{query}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }

    // (3) Offline, once the gateway has stopped: the CLI reads the same ledger.
    assert!(gw.stop().success(), "{}", gw.stderr());
    let out = usage_cli(&gw, &["--since", "1h", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(without_period(offline), without_period(by_lane.clone()));

    let out = usage_cli(&gw, &["--since", "1h", "--csv", "--by", "provider"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout(&out),
        "provider,requests,ok,errors,tokens_in,tokens_out,cost_usd,local_share,fallbacks\n\
         p1,4,4,0,28,12,0.052,0.0,4\n\
         (none),1,0,1,0,0,0.0,0.0,0\n\
         p0,1,1,0,7,3,0.0,1.0,0\n\
         total,6,5,1,35,15,0.052,0.2,4\n"
    );

    let out = usage_cli(&gw, &["--since", "1h"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Usage from ")
            && lines[0].ends_with(&format!("by lane (ledger {})", gw.ledger_path().display())),
        "{text}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "LANE",
            "REQUESTS",
            "OK",
            "ERR",
            "TOKENS",
            "IN",
            "TOKENS",
            "OUT",
            "COST",
            "$",
            "LOCAL",
            "%",
            "FALLBACKS"
        ]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["l1", "4", "4", "0", "28", "12", "0.0520", "0%", "4"]
    );
    assert_eq!(
        lines[6].split_whitespace().collect::<Vec<_>>(),
        ["TOTAL", "6", "5", "1", "35", "15", "0.0520", "20%", "4"]
    );
    assert!(
        text.contains("\n  l0 → unavailable × 2\n  l0 → cooling_down × 1\n  l0 → rate_limited × 1"),
        "{text}"
    );

    // A period before any traffic says so.
    let out = usage_cli(&gw, &["--since", "2020-01-01", "--until", "2020-01-02T00:00:00Z"]);
    assert!(
        stdout(&out).ends_with("no requests in this period\n"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn a_bad_period_or_grouping_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchyard.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{}storage:\n  ledger: \"{}\"\n",
            config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", ""),
            dir.path().join("ledger.db").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("usage")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = run(&["--since", "yesterday"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--since: cannot read `yesterday` as a time"), "{err}");
    assert!(err.contains("24h") && err.contains("2026-11-20"), "{err}");
    assert!(out.stdout.is_empty());

    let out = run(&["--until", "2026-02-30"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--until: cannot read `2026-02-30`"));

    let out = run(&["--by", "lanes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("lane, route, day or provider"), "{err}");

    // No ledger yet (the gateway never ran): an empty report, not an error.
    let out = run(&["--json", "--by", "day"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["by"].as_str(),
            v["total"]["requests"].as_u64(),
            v["rows"].as_array().map(Vec::len)
        ),
        (Some("day"), Some(0), Some(0))
    );
    assert!(!dir.path().join("ledger.db").exists());
}

#[tokio::test]
async fn the_reports_need_a_key_when_keys_are_set() {
    let (local, cloud) = (FakeUpstream::start("local").await, FakeUpstream::start("cloud").await);
    let gw = Running::start(&config(
        &local.base_url(),
        &cloud.base_url(),
        "server: { keys: [sk-usage] }\n",
    ));
    traffic(&gw, &local).await;
    for path in ["/api/usage", "/api/series", "/api/requests"] {
        let (status, body) = get(&gw, path, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("missing_api_key")),
            "{path}"
        );
        let (status, body) = get(&gw, path, Some("sk-wrong")).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, report) = get(&gw, "/api/usage?since=1h&by=route", Some("sk-usage")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["total"]["requests"].as_u64(),
            report["total"]["fallbacks"].as_u64()
        ),
        (Some(6), Some(4))
    );
    let (_, page) = get(&gw, "/api/requests?limit=1", Some("sk-usage")).await;
    let caller = page["requests"][0]["caller"].as_str().unwrap();
    assert!(
        caller.starts_with("key:") && !page.to_string().contains("sk-usage"),
        "{page}"
    );

    // `--url` asks the running gateway with the config's key, and prints the same report.
    let out = usage_cli(&gw, &["--url", &gw.url, "--since", "1h", "--by", "route", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let remote: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(without_period(remote), without_period(report));
    // A wrong key in the environment is refused, and the CLI says so.
    let out = Command::new(bin())
        .args(["usage", "--url", &gw.url, "--config"])
        .arg(gw.dir.path().join("switchyard.yaml"))
        .env("SWITCHYARD_KEY", "sk-wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/api/usage answered HTTP 401"), "{err}");
}

/// Seven requests in one millisecond, between two others, read two at a time through
/// `/api/requests` with the `(before, before_id)` cursor of each page's last row: each is
/// seen once, in order. `before` alone still skips the whole millisecond.
#[tokio::test]
async fn requests_page_through_a_busy_millisecond() {
    use switchyard_core::ledger::{Ledger, RequestRecord};
    let up = FakeUpstream::start("a").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));
    // A second writer on the gateway's own ledger (SQLite in WAL mode takes turns).
    let ledger = Ledger::open(&gw.ledger_path()).await.unwrap();
    let t = 1_795_853_536_001_i64;
    let mut rows = vec![("z-after".to_owned(), t + 1)];
    rows.extend((0..7).rev().map(|i| (format!("same-{i}"), t)));
    rows.push(("a-before".to_owned(), t - 1));
    for (id, ts_ms) in &rows {
        ledger.record(RequestRecord {
            id: id.clone(),
            ts_ms: *ts_ms,
            dialect: "openai".into(),
            model: "m".into(),
            status: "ok".into(),
            http_status: 200,
            ..RequestRecord::default()
        });
    }
    ledger.flush().await;

    let mut seen = Vec::new();
    let mut query = "/api/requests?limit=2".to_owned();
    for _ in 0..10 {
        let (status, page) = get(&gw, &query, None).await;
        assert_eq!(status, 200, "{query}: {page}");
        let page = page["requests"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        query = format!(
            "/api/requests?limit=2&before={}&before_id={}",
            last["ts_ms"],
            last["id"].as_str().unwrap()
        );
    }
    let expected: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(seen, expected);

    let (_, page) = get(&gw, &format!("/api/requests?before={t}"), None).await;
    assert_eq!(page["requests"][0]["id"], "a-before");
    assert_eq!(page["requests"].as_array().unwrap().len(), 1);

    let (status, body) = get(&gw, "/api/requests?before_id=same-3", None).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("before_id")),
        "{body}"
    );
}

/// A step too large to be a bucket is refused, naming the limit, not an overflow (that once
/// killed the request); the largest allowed one works.
#[tokio::test]
async fn a_series_step_beyond_a_year_is_refused() {
    let up = FakeUpstream::start("a").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));
    assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
    for step in [
        "9223372036854776",
        "9223372036854775807",
        "31622401",
        "99999999999999999999",
    ] {
        let (status, body) = get(&gw, &format!("/api/series?since=2d&step={step}"), None).await;
        assert_eq!(status, 400, "{step}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query");
        assert_eq!(body["error"]["param"], "step");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("31622400"),
            "{body}"
        );
    }
    let (status, body) = get(&gw, "/api/series?since=2d&step=31622400", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step_ms"], 31_622_400_000_i64);
    let total: u64 = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);
}
