//! Free-tier quotas end to end: fake providers that enforce their limits and answer with real
//! providers' headers and 429 bodies; the gateway never sends what would be refused, parks a
//! spent lane until its reset, and remembers both across a restart.

use crate::support::*;
use serde_json::{Value, json};
use switchyard_testkit::Quota;

/// Groq's daily-requests 429 (research/providers.md §4).
const GROQ_RPD_429: &str = r#"{"error":{"message":"Rate limit reached for model `m0` in organization `org_1` service tier `on_demand` on requests per day (RPD): Limit 20, Used 20, Requested 1. Please try again in 7h12m0.528s.","type":"requests","code":"rate_limit_exceeded"}}"#;

fn free_tier_20() -> Quota {
    Quota {
        max: 20,
        status: 429,
        body: GROQ_RPD_429.into(),
        headers: vec![],
    }
}

async fn lanes_of(gw: &Running, n: usize) -> Vec<(String, String)> {
    let answers = post_at_once(std::slice::from_ref(&gw.url), n).await;
    answers
        .into_iter()
        .map(|(status, lane, attempts)| {
            assert_eq!(status, 200);
            (lane, attempts)
        })
        .collect()
}

async fn status_json(gw: &Running) -> Value {
    client()
        .get(format!("{}/api/status", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_free_lane_of_20_a_day_serves_exactly_20_of_30_and_a_restart_remembers() {
    let (free, next) = (FakeUpstream::start("free").await, FakeUpstream::start("next").await);
    free.enforce(free_tier_20());
    let mut gw = Running::start(&config_for(
        &[free.base_url(), next.base_url()],
        "limits:\n  p0: { rpd: 20, reset: utc_midnight }\n",
    ));
    // 30 requests, 6 at a time: the budget is checked and taken atomically.
    let mut lanes = Vec::new();
    for _ in 0..5 {
        lanes.extend(lanes_of(&gw, 6).await);
    }
    let on = |l: &str| lanes.iter().filter(|(lane, _)| lane == l).count();
    assert_eq!((on("l0"), on("l1")), (20, 10));
    assert!(
        lanes
            .iter()
            .filter(|(l, _)| l == "l1")
            .all(|(_, a)| a == "l0:quota,l1:ok"),
        "{lanes:?}"
    );
    // The provider never saw a request over its quota.
    assert_eq!((free.hits(), free.served()), (20, 20));

    let st = status_json(&gw).await;
    let lane = &st["lanes"][0];
    assert_eq!(
        (lane["lane"].as_str(), lane["state"].as_str()),
        (Some("l0"), Some("limited"))
    );
    let rpd = &lane["budgets"][0]["windows"][0];
    assert_eq!(
        (rpd["name"].as_str(), rpd["used"].as_u64(), rpd["left"].as_u64()),
        (Some("rpd"), Some(20), Some(0))
    );

    // After a restart the day's 20 are still spent: the ledger is replayed.
    gw.restart();
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(free.hits(), 20);
    let out = std::process::Command::new(bin())
        .args(["status", "--url", &gw.url, "--config"])
        .arg(gw.dir.path().join("switchyard.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("l0    limited"), "{text}");
    assert!(text.contains("quota `p0`: rpd 20/20 (resets in "), "{text}");
    assert!(text.contains("[utc_midnight; config]"), "{text}");

    // The skip and its reason are in the ledger too.
    gw.stop();
    let rows = switchyard_core::ledger::recent(&gw.ledger_path(), 1).unwrap();
    let skip = &rows[0].attempts[0];
    assert_eq!(skip.outcome, "quota");
    assert!(
        skip.detail
            .as_deref()
            .unwrap()
            .contains("`p0` rpd 20 of 20 requests used"),
        "{skip:?}"
    );
    // With no gateway running, `status` reads the same from the ledger.
    let out = std::process::Command::new(bin())
        .args(["status", "--url", &format!("http://{}", refused_addr()), "--config"])
        .arg(gw.dir.path().join("switchyard.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no gateway answers at"), "{text}");
    assert!(text.contains("quota `p0`: rpd 20/20"), "{text}");
}

#[tokio::test]
async fn a_daily_429_parks_the_lane_until_its_reset_even_across_a_restart() {
    let (free, next) = (FakeUpstream::start("free").await, FakeUpstream::start("next").await);
    // Gemini's per-day 429: no Retry-After, so the lane is parked until its reset clock says.
    free.set(Behavior::status(
        429,
        r#"[{"error":{"code":429,"message":"You exceeded your current quota. Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, quotaId: GenerateRequestsPerDayPerProjectPerModel-FreeTier","status":"RESOURCE_EXHAUSTED"}}]"#,
    ));
    let mut gw = Running::start(&config_for(
        &[free.base_url(), next.base_url()],
        "limits:\n  p0: { reset: pacific_midnight }\n",
    ));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota_exhausted,l1:ok");
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(free.hits(), 1);
    let st = status_json(&gw).await;
    let blocked = &st["lanes"][0]["budgets"][0]["blocked"];
    let until = blocked["until_ms"].as_i64().unwrap();
    let next_pacific = switchyard_core::clock::next_pacific_midnight(switchyard_core::clock::wall_now_ms());
    assert_eq!(until, next_pacific, "{blocked}");
    // Parks shorter than a minute are not stored: run within two minutes of the Pacific
    // midnight, the day ends before the restart and there is nothing left to remember.
    if until - switchyard_core::clock::wall_now_ms() < 120_000 {
        return;
    }
    gw.restart();
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(free.hits(), 1, "a restart does not forget the park");
}

#[tokio::test]
async fn provider_headers_and_bodies_predict_the_next_429() {
    // Groq says, in its headers, that today's requests are spent for the next 2 hours.
    let (groq, or, next) = (
        FakeUpstream::start("groq").await,
        FakeUpstream::start("openrouter").await,
        FakeUpstream::start("next").await,
    );
    groq.answer_headers(&[
        ("x-ratelimit-limit-requests", "1000"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2h0m0s"),
        ("x-ratelimit-limit-tokens", "12000"),
        ("x-ratelimit-remaining-tokens", "11990"),
        ("x-ratelimit-reset-tokens", "50ms"),
    ]);
    let gw = Running::start(&config_for(&[groq.base_url(), next.base_url()], ""));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(groq.hits(), 1);
    let st = status_json(&gw).await;
    let reason = st["lanes"][0]["why"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("the provider reported 0 requests left of 1000"),
        "{reason}"
    );

    // OpenRouter's daily 429 carries the reset (epoch ms) inside its body.
    let reset = switchyard_core::clock::wall_now_ms() + 3 * 3600 * 1000;
    or.set(Behavior::status(
        429,
        &json!({"error": {"message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day", "code": 429,
            "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset.to_string()}}}})
        .to_string(),
    ));
    let gw = Running::start(&config_for(&[or.base_url(), next.base_url()], ""));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota_exhausted,l1:ok");
    let st = status_json(&gw).await;
    let until = st["lanes"][0]["budgets"][0]["blocked"]["until_ms"].as_i64().unwrap();
    assert!(
        (until - reset).abs() < 2000,
        "parked until the provider's reset: {until} vs {reset}"
    );
    gw.post(hello("default"), &[]).await;
    assert_eq!(or.hits(), 1);
}

#[tokio::test]
async fn when_every_lane_is_spent_the_caller_gets_429_with_retry_after() {
    let free = FakeUpstream::start("free").await;
    let gw = Running::start(&config_for(&[free.base_url()], "limits:\n  p0: { rpm: 1 }\n"));
    assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    // A minute, plus the one-second slot the use was filed in.
    assert!((1..=61).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`p0` rpm 1 of 1 requests used"),
        "{v}"
    );
    assert_eq!(free.hits(), 1);
}

#[tokio::test]
async fn a_prompt_too_long_for_a_lane_skips_it_with_the_reason() {
    let (small, big) = (FakeUpstream::start("small").await, FakeUpstream::start("big").await);
    let cfg = config_for(&[small.base_url(), big.base_url()], "").replace(
        "l0: { provider: p0, model: m0 }",
        "l0: { provider: p0, model: m0, context_window: 100 }",
    );
    let gw = Running::start(&cfg);
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    let mut long = hello("default");
    long["messages"][0]["content"] = json!("word ".repeat(200));
    let r = gw.post(long, &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:context_too_small,l1:ok");
    assert_eq!(small.hits(), 1);
}
