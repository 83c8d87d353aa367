#![expect(clippy::unwrap_used)]
use super::*;
use crate::config::{Env, from_str};
use std::time::Duration;

fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
    clock::days_from_civil(y, m, d) * DAY + h * HOUR + min * MINUTE
}

fn quota(yaml: &str, at: i64) -> Quota {
    let cfg = from_str(yaml, "t.yaml", &Env::fixed([("K".to_owned(), "k".to_owned())])).unwrap();
    Quota::new(&cfg, Clock::at(at))
}

const FREE: &str = r#"
providers:
  free: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
lanes:
  a: { provider: free, model: m }
  b: { provider: free, model: n }
routes:
  default: [a, b]
limits:
  free: { rpd: 3, tpm: 1000, reset: utc_midnight }
"#;

fn take(q: &Quota, lane: &str, tokens: u64) -> Result<(), String> {
    match q.reserve(lane, tokens, tokens) {
        Ok(r) => {
            q.settle(r, true, None, 0.0);
            Ok(())
        }
        Err((outcome, why, _)) => Err(format!("{outcome}: {why}")),
    }
}

#[tokio::test(start_paused = true)]
async fn a_daily_budget_is_shared_by_the_provider_and_resets_at_utc_midnight() {
    let q = quota(FREE, utc(2026, 11, 28, 23, 50));
    take(&q, "a", 10).unwrap();
    take(&q, "b", 10).unwrap();
    take(&q, "a", 10).unwrap();
    let e = take(&q, "b", 10).unwrap_err();
    assert!(
        e.starts_with("quota: `free` rpd 3 of 3 requests used (utc_midnight"),
        "{e}"
    );
    assert!(e.contains("frees up at 2026-11-29 00:00 UTC, in 10m00s"), "{e}");
    tokio::time::advance(Duration::from_secs(10 * 60 - 1)).await;
    assert!(take(&q, "a", 10).is_err(), "still 23:59:59");
    tokio::time::advance(Duration::from_secs(1)).await;
    take(&q, "a", 10).unwrap();
}

#[tokio::test(start_paused = true)]
async fn token_windows_slide_and_settle_to_actual_usage() {
    let q = quota(&FREE.replace("rpd: 3, ", ""), utc(2026, 11, 28, 12, 0));
    // 900 reserved, 100 actually used: 900 left in the minute.
    let r = q.reserve("a", 900, 100).unwrap();
    assert!(q.reserve("a", 200, 200).is_err(), "900 + 200 > 1000 while reserved");
    q.settle(r, true, Some(100), 0.0);
    take(&q, "a", 800).unwrap();
    let e = take(&q, "a", 200).unwrap_err();
    assert!(e.contains("tpm 900 of 1000 tokens used"), "{e}");
    // A use leaves the window once its whole one-second slot has: never early.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(take(&q, "a", 200).is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    take(&q, "a", 200).unwrap();
    // A request larger than the whole window still goes when the window is empty.
    tokio::time::advance(Duration::from_secs(61)).await;
    take(&q, "a", 5000).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_arrived_costs_nothing() {
    let q = quota(FREE, utc(2026, 11, 28, 12, 0));
    for _ in 0..5 {
        let r = q.reserve("a", 10, 10).unwrap();
        q.settle(r, false, None, 0.0);
    }
    let s = &q.status("a")[0];
    assert_eq!(s.key, "free");
    let rpd = s.windows.iter().find(|w| w.name == "rpd").unwrap();
    assert_eq!((rpd.used, rpd.left), (0, 3));
}

#[tokio::test(start_paused = true)]
async fn concurrent_reservations_never_overspend() {
    let q = std::sync::Arc::new(quota(FREE, utc(2026, 11, 28, 12, 0)));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let lane = if i % 2 == 0 { "a" } else { "b" };
            q.reserve(lane, 1, 1).map(|r| q.settle(r, true, Some(1), 0.0)).is_ok()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 3);
}

const GEMINI: &str = r#"
providers:
  gem: { preset: gemini, api_key: "${K}" }
lanes:
  flash: { provider: gem, model: gemini-2.5-flash }
  lite: { provider: gem, model: gemini-2.5-flash-lite }
routes:
  default: [flash, lite]
"#;

#[tokio::test(start_paused = true)]
async fn preset_budgets_count_per_model_and_reset_at_pacific_midnight() {
    // 07:30 UTC in winter is 23:30 in California.
    let q = quota(GEMINI, utc(2026, 1, 15, 7, 30));
    for _ in 0..5 {
        take(&q, "flash", 10).unwrap();
    }
    let e = take(&q, "flash", 10).unwrap_err();
    assert!(e.contains("rpm 5 of 5"), "{e}");
    take(&q, "lite", 10).unwrap();
    let s = &q.status("flash")[0];
    assert_eq!(s.key, "gem/gemini-2.5-flash");
    assert!(s.source.starts_with("preset gemini (checked "), "{}", s.source);
    let rpd = s.windows.iter().find(|w| w.name == "rpd").unwrap();
    assert_eq!((rpd.limit, rpd.used, rpd.span), (20, 5, "pacific_midnight"));
    assert_eq!(rpd.resets_at_ms, Some(utc(2026, 1, 15, 8, 0)));
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    let rpd = q.status("flash")[0]
        .windows
        .iter()
        .find(|w| w.name == "rpd")
        .unwrap()
        .used;
    assert_eq!(rpd, 0, "a new Pacific day");
}

#[tokio::test(start_paused = true)]
async fn the_25_hour_pacific_day_counts_from_its_first_hour() {
    // 2026-11-01 00:30 PDT (07:30 UTC): the day the clocks go back.
    let q = quota(GEMINI, utc(2026, 11, 1, 7, 30));
    take(&q, "flash", 10).unwrap();
    let rpd = |q: &Quota| {
        q.status("flash")[0]
            .windows
            .iter()
            .find(|w| w.name == "rpd")
            .unwrap()
            .used
    };
    assert_eq!(rpd(&q), 1);
    assert_eq!(q.history_needed_ms(), utc(2026, 11, 1, 7, 0));
    // 23:59 PST that day is 07:59 UTC the next; the day ends at 08:00 UTC.
    tokio::time::advance(Duration::from_secs(24 * 3600 + 29 * 60)).await;
    assert_eq!(rpd(&q), 1);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(rpd(&q), 0);
}

#[tokio::test(start_paused = true)]
async fn a_rolling_day_never_frees_a_request_before_24_hours() {
    let q = quota(
        &FREE.replace("reset: utc_midnight", "reset: rolling"),
        utc(2026, 11, 28, 0, 23) + 59_000,
    );
    for _ in 0..3 {
        take(&q, "a", 1).unwrap();
    }
    tokio::time::advance(Duration::from_secs(24 * 3600 - 1)).await;
    assert!(take(&q, "a", 1).is_err());
    tokio::time::advance(Duration::from_secs(24 * 60)).await;
    take(&q, "a", 1).unwrap();
}

#[tokio::test(start_paused = true)]
async fn parks_hold_until_their_time_and_survive_a_restart() {
    let start = utc(2026, 11, 28, 12, 0);
    let q = quota(FREE, start);
    let until = q.next_reset("a");
    assert_eq!(until, utc(2026, 11, 29, 0, 0));
    let rec = q
        .park("a", until, "quota", "quota spent (HTTP 429: per day)".into())
        .unwrap();
    let e = take(&q, "b", 1).unwrap_err();
    assert!(
        e.starts_with("quota: quota spent (HTTP 429: per day) (until 2026-11-29 00:00 UTC, in 12h00m)"),
        "{e}"
    );
    // A restart: a new Quota from the persisted park and the past attempts.
    let q2 = quota(FREE, start + HOUR);
    q2.restore(&[rec], &[]);
    assert!(take(&q2, "a", 1).is_err());
    let q3 = quota(FREE, until);
    let past = [PastAttempt {
        ts_ms: until - 1,
        lane: "a".into(),
        tokens: 5,
        cost_usd: 0.0,
    }];
    q3.restore(&[], &past);
    take(&q3, "a", 1).unwrap();
}

#[tokio::test(start_paused = true)]
async fn replayed_history_fills_the_windows() {
    let now = utc(2026, 11, 28, 12, 0);
    let q = quota(FREE, now);
    assert_eq!(q.history_needed_ms(), utc(2026, 11, 28, 0, 0));
    let past: Vec<PastAttempt> = [utc(2026, 11, 27, 23, 0), now - 2 * HOUR, now - 30_000]
        .into_iter()
        .map(|ts_ms| PastAttempt {
            ts_ms,
            lane: "b".into(),
            tokens: 400,
            cost_usd: 0.0,
        })
        .collect();
    q.restore(&[], &past);
    let s = &q.status("a")[0];
    let get = |n: &str| s.windows.iter().find(|w| w.name == n).unwrap().used;
    assert_eq!(get("rpd"), 2, "yesterday's does not count");
    assert_eq!(get("tpm"), 400, "only the last minute's tokens");
}

#[tokio::test(start_paused = true)]
async fn what_the_provider_reports_wins() {
    let now = utc(2026, 11, 28, 12, 0);
    let q = quota(FREE, now);
    let seen = |remaining, reset_in| Observed {
        metric: Metric::Requests,
        window: Window::Day,
        limit: Some(1000),
        remaining,
        reset_at_ms: Some(now + reset_in),
    };
    // Two left: two more go, the third is refused before it is sent.
    assert!(q.learn("a", &[seen(2, HOUR)]).is_empty());
    let q2 = quota(
        "providers:\n  free: { kind: openai, base_url: \"http://127.0.0.1:9/v1\" }\nlanes:\n  a: { provider: free, model: m }\nroutes:\n  default: [a]\n",
        now,
    );
    assert!(q2.learn("a", &[seen(2, HOUR)]).is_empty());
    take(&q2, "a", 1).unwrap();
    take(&q2, "a", 1).unwrap();
    let e = take(&q2, "a", 1).unwrap_err();
    assert!(e.contains("the provider reported 0 requests left of 1000"), "{e}");
    // Reported spent with a far reset: a park, to persist.
    let parks = q.learn("a", &[seen(0, 3 * HOUR)]);
    assert_eq!(parks.len(), 1);
    assert_eq!(parks[0].park.until_ms, now + 3 * HOUR);
    assert!(take(&q, "a", 1).is_err());
}

const PAID: &str = r#"
providers:
  anthropic: { preset: anthropic, api_key: "${K}" }
lanes:
  claude: { provider: anthropic, model: claude-sonnet-4-5 }
routes:
  default: [claude]
limits:
  anthropic: { usd_per_day: 1.5 }
"#;

#[tokio::test(start_paused = true)]
async fn a_daily_spend_cap_stops_a_paid_lane_until_midnight() {
    let q = quota(PAID, utc(2026, 11, 28, 20, 0));
    let r = q.reserve("claude", 10, 10).unwrap();
    q.settle(r, true, Some(10), 1.0);
    let r = q.reserve("claude", 10, 10).unwrap();
    q.settle(r, true, Some(10), 0.6);
    let e = take(&q, "claude", 1).unwrap_err();
    assert!(
        e.starts_with("spend_cap: `spend:anthropic` spent $1.60 of its $1.50 daily cap"),
        "{e}"
    );
    tokio::time::advance(Duration::from_secs(4 * 3600)).await;
    take(&q, "claude", 1).unwrap();
}

#[test]
fn skips_and_refused_connections_do_not_count() {
    assert!(reached_provider("ok") && reached_provider("rate_limited") && reached_provider("timeout"));
    assert!(!reached_provider("connect") && !reached_provider("quota") && !reached_provider("premium_not_allowed"));
}

#[tokio::test(start_paused = true)]
async fn a_reload_shares_unchanged_budgets_so_requests_in_flight_settle_into_them() {
    let dir = tempfile::tempdir().unwrap();
    let with_ledger = |limits: &str| {
        format!(
            "{}storage:\n  ledger: \"{}\"\n",
            FREE.replace("free: { rpd: 3, tpm: 1000, reset: utc_midnight }", limits),
            dir.path().join("ledger.db").display()
        )
    };
    let env = Env::fixed([("K".to_owned(), "k".to_owned())]);
    let first = from_str(
        &with_ledger("free: { rpd: 3, tpm: 1000, reset: utc_midnight }"),
        "t.yaml",
        &env,
    )
    .unwrap();
    let old = Quota::new(&first, Clock::at(utc(2026, 11, 28, 12, 0)));
    // A request in flight across the reload: reserved on the old quota, settled after.
    let r = old.reserve("a", 10, 10).unwrap();
    let reader = crate::ledger::Reader::Sqlite(dir.path().join("ledger.db"));
    let same = Quota::reload(&first, &old, &reader).await.unwrap();
    old.settle(r, true, Some(600), 0.0);
    let used = |q: &Quota, window: &str| {
        q.status("a")[0]
            .windows
            .iter()
            .find(|w| w.name == window)
            .map(|w| w.used)
            .unwrap()
    };
    assert_eq!((used(&same, "rpd"), used(&same, "tpm")), (1, 600));
    take(&same, "a", 10).unwrap();
    take(&same, "b", 10).unwrap();
    assert!(
        take(&same, "a", 10).is_err(),
        "3 of 3 spent, one of them before the reload"
    );

    // A changed budget starts from what the ledger says (empty here), not from the old counts.
    let changed = from_str(
        &with_ledger("free: { rpd: 5, tpm: 1000, reset: utc_midnight }"),
        "t.yaml",
        &env,
    )
    .unwrap();
    let fresh = Quota::reload(&changed, &same, &reader).await.unwrap();
    assert_eq!(used(&fresh, "rpd"), 0);
}
