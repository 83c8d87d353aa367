//! Live config reload: a saved change (also by rename) applies without a restart and without
//! dropping a request in flight; an invalid one is reported and the old config stays; SIGHUP
//! reloads too; quota counts and the ledger carry over.

use crate::support::*;
use std::time::Duration;

async fn wait_for_log(gw: &Running, needle: &str, times: usize) {
    for _ in 0..200 {
        if gw.stderr().matches(needle).count() >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{needle}` (x{times}) in the log:\n{}", gw.stderr());
}

async fn lane_of(gw: &Running) -> String {
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200);
    header(&r, "x-switchyard-lane")
}

#[tokio::test]
async fn a_saved_change_applies_without_dropping_a_stream_in_flight_and_a_bad_one_is_refused() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let urls = [a.base_url(), b.base_url()];
    let first = config_for(&urls, "").replace("default: [l0, l1]", "default: [l0]");
    let gw = Running::start(&first);
    assert_eq!(lane_of(&gw).await, "l0");

    // A slow stream from l0 is in flight while the config changes.
    // About 7 events, 700 ms apart: ~5 s, longer than the reload takes to land.
    a.set(Behavior::Slow(Duration::from_millis(700)));
    let url = gw.url.clone();
    let stream = tokio::spawn(async move {
        let mut body = hello("default");
        body["stream"] = true.into();
        let r = client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), header(&r, "x-switchyard-lane"), r.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.replace_config(&config_for(&urls, "").replace("default: [l0, l1]", "default: [l1, l0]"));
    wait_for_log(&gw, "config reloaded (the config file changed)", 1).await;
    assert!(
        !stream.is_finished(),
        "the stream must still be in flight when the reload lands"
    );
    assert_eq!(lane_of(&gw).await, "l1", "the new route order applies");

    let (status, lane, text) = stream.await.unwrap();
    assert_eq!((status.as_u16(), lane.as_str()), (200, "l0"));
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "the stream in flight finished whole: {text}"
    );
    assert!(text.contains(r#"{"content":" a"}"#), "answered by a: {text}");

    // An invalid edit: reported with its place, and the running config stays.
    gw.replace_config(&config_for(&urls, "").replace("default: [l0, l1]", "default: [l1, nosuchlane]"));
    wait_for_log(&gw, "config not reloaded (the config file changed)", 1).await;
    assert!(gw.stderr().contains("nosuchlane"), "{}", gw.stderr());
    assert_eq!(lane_of(&gw).await, "l1");

    // Both requests and the stream are in the one ledger.
    let mut gw = gw;
    assert!(gw.stop().success());
    let rows = switchyard_core::ledger::recent(&gw.ledger_path(), 10).unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r.status == "ok"), "{rows:?}");
}

#[tokio::test]
async fn sighup_reloads_and_quota_counts_carry_over() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let urls = [a.base_url(), b.base_url()];
    let limits = "limits:\n  l0: { rpd: 3 }\n";
    let gw = Running::start(&config_for(&urls, limits));
    assert_eq!(lane_of(&gw).await, "l0");
    assert_eq!(lane_of(&gw).await, "l0");

    // Change the file without changing its size, inode or time: only SIGHUP can see it.
    let path = gw.config_path();
    let meta = std::fs::metadata(&path).unwrap();
    let old = std::fs::read_to_string(&path).unwrap();
    let new = old.replace("model: m1", "model: m9");
    assert_ne!(old, new);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut &f, new.as_bytes()).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !gw.stderr().contains("config reloaded"),
        "the poll must not have seen it"
    );
    gw.signal("HUP");
    wait_for_log(&gw, "config reloaded (SIGHUP)", 1).await;

    // l0's budget did not change: two of its three requests are still spent.
    assert_eq!(lane_of(&gw).await, "l0");
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(b.last_chat().body["model"], "m9", "l1 now asks for the new model");
}
