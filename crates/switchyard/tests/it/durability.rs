//! kill -9 under load: every request whose client got a complete answer is in the ledger
//! after a restart, and the database is consistent.

use crate::support::*;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn a_killed_gateway_loses_no_answered_request() {
    let a = FakeUpstream::start("a").await;
    // Each request carries its own model name (an alias of the route), which the ledger keeps.
    let config = config_for(&[a.base_url()], "aliases:\n  \"req-*\": default\n");
    let mut gw = Running::start(&config);
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (url, answered) = (gw.url.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            for i in 0.. {
                let name = format!("req-{w}-{i}");
                let mut body = hello(&name);
                body["stream"] = (i % 2 == 0).into();
                let Ok(r) = c.post(format!("{url}/v1/chat/completions")).json(&body).send().await else {
                    return;
                };
                if r.status() != 200 {
                    return;
                }
                let Ok(text) = r.text().await else { return };
                let whole = if i % 2 == 0 {
                    text.trim_end().ends_with("data: [DONE]")
                } else {
                    text.contains("\"finish_reason\":\"stop\"")
                };
                if whole {
                    answered.lock().unwrap().insert(name);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.crash_and_restart();
    for w in workers {
        let _ = w.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "the load was too light to mean anything: {}",
        answered.len()
    );

    let conn = rusqlite::Connection::open(gw.ledger_path()).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let mut stmt = conn.prepare("SELECT model FROM requests WHERE status = 'ok'").unwrap();
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lost: Vec<&String> = answered.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered requests are not in the ledger: {lost:?}",
        lost.len(),
        answered.len()
    );
    // Every request row has its attempts (one transaction per batch).
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM requests r WHERE attempt_count != (SELECT count(*) FROM attempts a WHERE a.request_id = r.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    // The journal the killed process left was committed and deleted: only the new process's
    // own segment is there.
    let segments = gw.journal_segments();
    assert_eq!(segments.len(), 1, "{segments:?}");
    // And the restarted gateway serves.
    assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
}
