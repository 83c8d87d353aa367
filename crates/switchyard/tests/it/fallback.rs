//! Fallback before the first byte, never after; the breaker; nothing retried on the caller's
//! own mistakes.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn connect_refused_falls_back_to_the_next_lane() {
    let b = FakeUpstream::start("b").await;
    let dead = format!("http://{}/v1", refused_addr());
    let gw = Running::start(&config_for(&[dead, b.base_url()], ""));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:connect,l1:ok");
    assert_eq!(header(&r, "x-switchyard-lane"), "l1");
}

#[tokio::test]
async fn server_errors_and_rate_limits_fall_back_but_caller_mistakes_do_not() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], ""));
    a.set(Behavior::status(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
    ));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(
        (r.status().as_u16(), header(&r, "x-switchyard-attempts")),
        (200, "l0:unavailable,l1:ok".into())
    );

    a.set(Behavior::Status {
        status: 429,
        body: r#"{"error":{"message":"Rate limit reached for model on requests per minute (RPM)","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
        headers: vec![("retry-after".into(), "30".into())],
    });
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:rate_limited,l1:ok");
    // Retry-After is honoured: the lane is not asked again while it cools down.
    let hits = a.hits();
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:cooling_down,l1:ok");
    assert_eq!(a.hits(), hits);

    // A 400 that is the caller's fault goes back to the caller; the next lane is never tried.
    let (c, d) = (FakeUpstream::start("c").await, FakeUpstream::start("d").await);
    let gw = Running::start(&config_for(&[c.base_url(), d.base_url()], ""));
    c.set(Behavior::status(400, r#"{"error":{"message":"temperature must be <= 2","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:bad_request");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_value");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature must be <= 2")
    );
    assert_eq!(d.hits(), 0);
}

#[tokio::test]
async fn a_stalled_upstream_is_abandoned_after_the_first_byte_timeout() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], ""));
    a.set(Behavior::Stall);
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:timeout,l1:ok");
    // A stream whose headers come but whose first event never does is also a timeout.
    let (c, d) = (FakeUpstream::start("c").await, FakeUpstream::start("d").await);
    let gw = Running::start(&config_for(&[c.base_url(), d.base_url()], ""));
    c.set(Behavior::StallAfterHeaders);
    let mut body = hello("default");
    body["stream"] = json!(true);
    let r = gw.post(body, &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:timeout,l1:ok");
    assert_eq!(stream_text(&sse_data(r).await), "hello from d");
}

#[tokio::test]
async fn all_lanes_down_is_a_503_that_says_what_happened() {
    let dead = format!("http://{}/v1", refused_addr());
    let a = FakeUpstream::start("a").await;
    a.set(Behavior::status(503, r#"{"error":"server busy"}"#));
    let gw = Running::start(&config_for(&[dead, a.base_url()], ""));
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:connect,l1:overloaded");
    let v: serde_json::Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(v["error"]["code"], "no_lane_available");
    assert!(
        msg.contains("l0: connect") && msg.contains("l1: overloaded (HTTP 503, server busy)"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_breaker_skips_a_dead_lane_and_traffic_returns_when_it_recovers() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], ""));
    a.set(Behavior::status(502, "bad gateway"));
    // failures: 2 opens the breaker.
    for _ in 0..2 {
        assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
    }
    let hits = a.hits();
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:breaker_open,l1:ok");
    assert_eq!(a.hits(), hits, "an open breaker sends nothing to the dead lane");
    // While it is still down, probes fail and traffic stays away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        header(&gw.post(hello("default"), &[]).await, "x-switchyard-attempts"),
        "l0:breaker_open,l1:ok"
    );
    // It recovers: a background probe notices, and traffic flips back without any request
    // having to fail first.
    a.set(Behavior::Answer);
    let mut back = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = gw.post(hello("default"), &[]).await;
        if header(&r, "x-switchyard-attempts") == "l0:ok" {
            back = true;
            break;
        }
    }
    assert!(back, "traffic did not return to the recovered lane");
    assert!(
        a.requests().iter().any(|r| r.path == "/v1/models"),
        "recovery was found by probing"
    );
}

#[tokio::test]
async fn a_stream_broken_after_the_first_byte_ends_with_an_error_event_not_a_fallback() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], ""));
    a.set(Behavior::BreakAfter(2));
    let mut body = hello("default");
    body["stream"] = json!(true);
    let r = gw.post(body, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    let events = sse_data(r).await;
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{events:?}");
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert_eq!(b.hits(), 0, "no fallback once the answer has started");
}

#[tokio::test]
async fn a_lane_named_directly_does_not_fall_back_unless_asked() {
    let dead = format!("http://{}/v1", refused_addr());
    let b = FakeUpstream::start("b").await;
    let gw = Running::start(&config_for(&[dead, b.base_url()], ""));
    let r = gw.post(hello("l0"), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:connect");
    let r = gw.post(hello("l0"), &[("x-switchyard-fallback", "on")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:connect,l1:ok");
}

#[tokio::test]
async fn premium_lanes_are_skipped_unless_allowed() {
    let (a, paid) = (FakeUpstream::start("a").await, FakeUpstream::start("paid").await);
    let mut cfg = config_for(
        &[a.base_url()],
        "  code: [l0, claude]\n  premium: { chain: [claude], premium: true }\n",
    );
    cfg = cfg.replace(
        "lanes:\n",
        &format!("  paid: {{ kind: openai, base_url: \"{}\", premium: true }}\nlanes:\n  claude: {{ provider: paid, model: c }}\n", paid.base_url()),
    );
    let gw = Running::start(&cfg);
    a.set(Behavior::status(500, "down"));
    let r = gw.post(hello("code"), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        header(&r, "x-switchyard-attempts"),
        "l0:unavailable,claude:premium_not_allowed"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("premium lane `claude` skipped: not requested"),
        "{v}"
    );
    assert_eq!(paid.hits(), 0);
    let r = gw.post(hello("code"), &[("x-switchyard-premium", "allow")]).await;
    assert_eq!(header(&r, "x-switchyard-lane"), "claude");
    let r = gw.post(hello("premium"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-lane"), "claude");
}
