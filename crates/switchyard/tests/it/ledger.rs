//! Every request is in the ledger after a clean shutdown, with its attempts.

use crate::support::*;
use serde_json::json;
use switchyard_core::ledger::recent;

#[tokio::test]
async fn requests_and_attempts_are_recorded_and_sigterm_drains() {
    let dead = format!("http://{}/v1", refused_addr());
    let (b, s) = (FakeUpstream::start("b").await, FakeUpstream::start("slow").await);
    let extra = "  slow: [l2]\n";
    let mut gw = Running::start(&config_for(&[dead, b.base_url(), s.base_url()], extra));
    assert_eq!(
        gw.post(hello("default"), &[("authorization", "Bearer ignored")])
            .await
            .status(),
        200
    );
    let mut body = hello("default");
    body["stream"] = json!(true);
    let events = sse_data(gw.post(body, &[]).await).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(gw.post(hello("nope"), &[]).await.status(), 404);
    // A client that goes away mid-stream is recorded as such.
    s.set(Behavior::Slow(std::time::Duration::from_millis(150)));
    let mut slow = hello("slow");
    slow["stream"] = json!(true);
    let mut r = gw.post(slow, &[]).await;
    let _first = r.chunk().await.unwrap();
    drop(r);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let status = gw.stop();
    assert!(status.success(), "{status:?}\n{}", gw.stderr());
    // A clean stop leaves no journal: every record is in the database. The writer closed the
    // database before the process ended, so SQLite folded its WAL into the file.
    let left = gw.journal_segments();
    assert!(left.is_empty(), "{left:?}");
    let mut wal = gw.ledger_path().into_os_string();
    wal.push("-wal");
    assert!(!std::path::Path::new(&wal).exists(), "{wal:?} is left");
    let rows = recent(&gw.ledger_path(), 100).unwrap();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let by_status = |s: &str| rows.iter().filter(|r| r.status == s).count();
    assert_eq!(
        (by_status("ok"), by_status("error"), by_status("client_disconnected")),
        (2, 1, 1),
        "{rows:#?}"
    );

    let plain = rows.iter().find(|r| !r.stream && r.status == "ok").unwrap();
    assert_eq!(
        (plain.route.as_deref(), plain.lane.as_deref()),
        (Some("default"), Some("l1"))
    );
    assert_eq!((plain.tokens_in, plain.tokens_out), (Some(7), Some(3)));
    assert_eq!(
        plain.attempts.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(),
        ["connect", "ok"]
    );
    assert!(plain.ttft_ms.is_some() && plain.duration_ms > 0.0);

    let streamed = rows.iter().find(|r| r.stream && r.status == "ok").unwrap();
    assert_eq!(
        streamed.tokens_out,
        Some(3),
        "usage comes from the upstream's final chunk"
    );
    let missing = rows.iter().find(|r| r.status == "error").unwrap();
    assert_eq!(
        (missing.http_status, missing.error_class.as_deref()),
        (404, Some("model_not_found"))
    );
    let gone = rows.iter().find(|r| r.status == "client_disconnected").unwrap();
    assert_eq!(gone.lane.as_deref(), Some("l2"));
}
