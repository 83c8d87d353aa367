//! Notifications and metrics end to end: a fallback, a lane going down and up, a quota running
//! low and running out, each reaches Slack, a webhook and ntfy (fake endpoints here) off the
//! request path, debounced, retried, and never slowing a request; `/metrics` counts it all.

use crate::support::*;
use std::time::Duration;
use switchyard_testkit::{Delivery, Receiver};

fn of<'a>(got: &'a [Delivery], path: &str) -> Vec<&'a Delivery> {
    got.iter().filter(|d| d.path == path).collect()
}

fn events(got: &[Delivery], path: &str) -> Vec<(String, u64)> {
    of(got, path)
        .iter()
        .map(|d| {
            let v = d.json();
            (
                v["event"].as_str().unwrap_or("?").to_owned(),
                v["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_fallback_reaches_slack_a_webhook_and_ntfy_once_per_window_with_a_count() {
    let hook = Receiver::start().await;
    let b = FakeUpstream::start("b").await;
    let dead = format!("http://{}/v1", refused_addr());
    // The Slack URL is a credential: it must never show up in a log line.
    let notify = format!(
        "notify:\n\
         \x20 - {{ kind: slack, url: \"{}\", on: [fallback], window: 1500ms }}\n\
         \x20 - {{ kind: webhook, url: \"{}\", on: [fallback], window: 1500ms, headers: {{ authorization: \"Bearer hook-token\" }} }}\n\
         \x20 - {{ kind: ntfy, url: \"{}\", on: [fallback], window: 1500ms }}\n",
        hook.url("/slack/T000/B000/SECRETSLACKPATH"),
        hook.url("/hook"),
        hook.url("/ntfy/switchyard"),
    );
    // Three failures would open l0's breaker and turn later fallbacks into `breaker_open`
    // skips: keep it closed for this test.
    let config = config_for(&[dead, b.base_url()], &notify).replace("failures: 2", "failures: 100");
    let gw = Running::start(&config);
    for _ in 0..3 {
        let r = gw.post(hello("default"), &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-switchyard-attempts"), "l0:connect,l1:ok");
    }

    // At once: one message per target for the first fallback.
    let got = hook.wait_until(Duration::from_secs(5), |g| g.len() >= 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let w = of(&got, "/hook")[0];
    let v = w.json();
    assert_eq!(v["event"], "fallback");
    assert_eq!(v["route"], "default");
    assert_eq!(v["failed_lane"], "l0");
    assert_eq!(v["answering_lane"], "l1");
    assert!(v["reason"].as_str().unwrap().starts_with("connect: "), "{v}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(v["count"], 1);
    assert_eq!(w.headers["authorization"], "Bearer hook-token");

    let slack = of(&got, "/slack/T000/B000/SECRETSLACKPATH")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with("Switchyard: Fallback on route `default`: lane `l0` was passed over (connect"),
        "{text}"
    );
    assert!(text.ends_with("`l1` answered"), "{text}");
    assert_eq!(slack.as_object().unwrap().len(), 1, "Slack gets {{\"text\": …}} only");

    let ntfy = of(&got, "/ntfy/switchyard")[0];
    assert_eq!(ntfy.headers["title"], "Switchyard: fallback (l0)");
    assert!(ntfy.body.starts_with("Fallback on route `default`"), "{}", ntfy.body);

    // When the window ends, the two fallbacks it held back come as one message with a count.
    let got = hook.wait_until(Duration::from_secs(6), |g| g.len() >= 6).await;
    assert_eq!(events(&got, "/hook"), [("fallback".into(), 1), ("fallback".into(), 2)]);
    let slack = of(&got, "/slack/T000/B000/SECRETSLACKPATH")[1].json();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .ends_with("`l1` answered (2 times in the last 1.5 s)"),
        "{slack}"
    );
    // Nothing more: the window had nothing else to say.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(hook.got().len(), 6);

    // The metrics saw the same.
    let m = gw.metrics().await;
    assert!(
        m.contains("switchyard_requests_total{route=\"default\",lane=\"l1\",status=\"ok\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_fallbacks_total{route=\"default\",lane=\"l0\",reason=\"connect\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_notifications_total{kind=\"slack\",result=\"sent\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_notifications_total{kind=\"webhook\",result=\"suppressed\"} 2\n"),
        "{m}"
    );
    assert!(!gw.stderr().contains("SECRETSLACKPATH"));
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_and_a_hanging_one_never_slows_a_request() {
    let hook = Receiver::start().await;
    let stuck = Receiver::start().await;
    stuck.stall(true);
    hook.fail_first(2);
    let b = FakeUpstream::start("b").await;
    let dead = format!("http://{}/v1", refused_addr());
    let notify = format!(
        "notify:\n\
         \x20 - {{ kind: webhook, url: \"{}\", window: 1s }}\n\
         \x20 - {{ kind: slack, url: \"{}\", window: 1s }}\n",
        hook.url("/hook"),
        stuck.url("/slack/SECRETSTUCK"),
    );
    let gw = Running::start(&config_for(&[dead, b.base_url()], &notify));
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = gw.url.clone();
        tasks.push(tokio::spawn(async move {
            client()
                .post(format!("{url}/v1/chat/completions"))
                .json(&hello("default"))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // All answered while the hanging endpoint still held its first try (it gives up after
    // 10 s): had sending been on the request path, they would have waited for it.
    assert!(stuck.got().is_empty());
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "requests waited for a notification"
    );
    // Two 500s, then accepted on the third try (backoff 0.5 s, 1 s).
    let got = hook
        .wait_until(Duration::from_secs(10), |g| {
            g.iter().any(|d| d.json()["event"] == "fallback")
        })
        .await;
    assert!(got.iter().any(|d| d.json()["event"] == "fallback"), "{got:?}");
    assert!(hook.attempts() >= 3);
    // The hanging endpoint holds its message; the requests above did not wait for it.
    assert!(stuck.attempts() >= 1);
    assert!(stuck.got().is_empty());
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(!gw.stderr().contains("SECRETSTUCK"));
}

#[tokio::test]
async fn lane_down_and_up_are_told_with_their_reasons() {
    let hook = Receiver::start().await;
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let notify = format!(
        "notify:\n  - {{ kind: webhook, url: \"{}\", on: [lane_down, lane_up], window: 1s }}\n",
        hook.url("/hook")
    );
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], &notify));
    a.set(Behavior::status(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
    ));
    for _ in 0..2 {
        assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
    }
    let got = hook.wait_until(Duration::from_secs(5), |g| !g.is_empty()).await;
    let v = got[0].json();
    assert_eq!(
        (v["event"].as_str(), v["lane"].as_str()),
        (Some("lane_down"), Some("l0"))
    );
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("2 failures in a row, the last: unavailable (HTTP 500): "),
        "{reason}"
    );
    assert!(v.get("failed_lane").is_none());

    // The prober finds it answering again (cool-down 200 ms).
    a.set(Behavior::Answer);
    let got = hook
        .wait_until(Duration::from_secs(5), |g| {
            g.iter().any(|d| d.json()["event"] == "lane_up")
        })
        .await;
    let up = got.iter().find(|d| d.json()["event"] == "lane_up").unwrap().json();
    assert_eq!(up["lane"], "l0");
    assert_eq!(up["reason"], "a health probe answered");
}

#[tokio::test]
async fn quota_low_then_exhausted() {
    let hook = Receiver::start().await;
    let b = FakeUpstream::start("b").await;
    let c = FakeUpstream::start("c").await;
    let extra = format!(
        "limits:\n  l0: {{ rpd: 4 }}\n\
         notify:\n  - {{ kind: webhook, url: \"{}\", on: [quota_low, quota_exhausted], quota_low: 50%, window: 10m }}\n",
        hook.url("/hook")
    );
    let gw = Running::start(&config_for(&[b.base_url(), c.base_url()], &extra));
    // 1 of 4 used: 75% left, nothing to say.
    assert_eq!(header(&gw.post(hello("default"), &[]).await, "x-switchyard-lane"), "l0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hook.got().is_empty(), "{:?}", hook.got());
    // 2 of 4: half left, at the threshold.
    gw.post(hello("default"), &[]).await;
    let got = hook.wait_until(Duration::from_secs(5), |g| !g.is_empty()).await;
    let v = got[0].json();
    assert_eq!(
        (v["event"].as_str(), v["lane"].as_str()),
        (Some("quota_low"), Some("l0"))
    );
    assert_eq!(v["left"], 0.5);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("has 2 of 4 requests per day left (50%"),
        "{v}"
    );
    // Spend the rest; the fifth request finds l0 spent and goes to l1.
    gw.post(hello("default"), &[]).await;
    gw.post(hello("default"), &[]).await;
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    let got = hook
        .wait_until(Duration::from_secs(5), |g| {
            g.iter().any(|d| d.json()["event"] == "quota_exhausted")
        })
        .await;
    let ev: Vec<String> = got
        .iter()
        .map(|d| d.json()["event"].as_str().unwrap().to_owned())
        .collect();
    // quota_low once (the rest of its 10-minute window is held back), then quota_exhausted.
    assert_eq!(ev, ["quota_low", "quota_exhausted"]);
    let spent = got[1].json();
    assert_eq!(spent["lane"], "l0");

    let m = gw.metrics().await;
    assert!(
        m.contains("switchyard_quota_remaining{lane=\"l0\",budget=\"lane:l0\",window=\"rpd\"} 0\n"),
        "{m}"
    );
    assert!(m.contains("switchyard_quota_limit{lane=\"l0\",budget=\"lane:l0\",window=\"rpd\"} 4\n"));
    assert!(m.contains("switchyard_lane_up{lane=\"l0\",provider=\"p0\",local=\"true\"} 0\n"));
    assert!(m.contains("switchyard_lane_up{lane=\"l1\",provider=\"p1\",local=\"true\"} 1\n"));
    assert!(m.contains("switchyard_attempts_total{lane=\"l0\",outcome=\"quota\"} 1\n"));
    assert!(m.contains("# TYPE switchyard_request_duration_seconds histogram\n"));
    assert!(m.contains("switchyard_request_duration_seconds_count{lane=\"l0\"} 4\n"));
}

#[tokio::test]
async fn metrics_are_behind_the_keys() {
    let b = FakeUpstream::start("b").await;
    let gw = Running::start(&format!(
        "server: {{ keys: [\"sk-test-metrics\"] }}\n{}",
        config_for(&[b.base_url()], "")
    ));
    let r = client().get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/metrics", gw.url))
        .bearer_auth("sk-test-metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("switchyard_lane_up{lane=\"l0\",provider=\"p0\",local=\"true\"} 1\n"),
        "{text}"
    );
}
