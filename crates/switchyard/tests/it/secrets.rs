//! Keys stay secret: neither a provider's key nor a caller's shows up in a log line (at debug
//! level), an error body, a header, the ledger, `/api/*`, `/metrics` or `switchyard check`,
//! even when a provider echoes the key back in its error.

use crate::support::*;
use std::time::Duration;

const PROVIDER_KEY: &str = "sk-live-SECRETPROVIDER-0001";
const CLIENT_KEY: &str = "sk-SECRETCLIENT-0002";

fn leaks(text: &str) -> bool {
    text.contains("SECRETPROVIDER") || text.contains("SECRETCLIENT")
}

#[tokio::test]
async fn no_key_in_logs_answers_ledger_or_api_output() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    // As OpenAI answers a wrong key, but echoing all of it (some providers do).
    a.set(Behavior::status(
        401,
        &format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {PROVIDER_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
        ),
    ));
    let config = format!(
        "server: {{ keys: [\"{CLIENT_KEY}\"] }}\n{}",
        config_for(&[a.base_url(), b.base_url()], "")
    )
    .replace("provider-key-0", PROVIDER_KEY)
    .replace("failures: 2", "failures: 100");
    let mut gw = Running::start_with(&config, &[("SWITCHYARD_LOG", "debug")]);
    let mut seen = String::new();
    let c = client();

    // A request that falls back past the lane whose provider echoed the key.
    for stream in [false, true] {
        let mut body = hello("default");
        body["stream"] = stream.into();
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        for (k, v) in &h {
            seen.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
        }
        assert!(
            h["x-switchyard-attempts"].to_str().unwrap().starts_with("l0:auth,"),
            "{h:?}"
        );
        seen.push_str(&r.text().await.unwrap());
    }
    // The lane alone: its error reaches the caller.
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(CLIENT_KEY)
        .json(&hello("l0"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_server_error());
    let text = r.text().await.unwrap();
    assert!(text.contains("Incorrect API key provided: [redacted]"), "{text}");
    seen.push_str(&text);
    // A wrong caller key, and the Anthropic dialect.
    for key in ["sk-SECRETCLIENT-0003-wrong", CLIENT_KEY] {
        let r = c
            .post(format!("{}/v1/messages", gw.url))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(
                &serde_json::json!({"model": "l0", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .unwrap();
        let t = r.text().await.unwrap();
        seen.push_str(&t);
    }
    for path in [
        "/v1/models",
        "/api/status",
        "/metrics",
        "/api/usage",
        "/api/requests",
        "/healthz",
    ] {
        let r = c
            .get(format!("{}{path}", gw.url))
            .bearer_auth(CLIENT_KEY)
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        seen.push_str(&body);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The ledger's journal, while the gateway runs (answered requests' records go there first;
    // a clean stop empties it).
    let mut journal = Vec::new();
    for p in gw.journal_segments() {
        journal.extend(std::fs::read(&p).unwrap());
    }
    let journal = String::from_utf8_lossy(&journal);
    assert!(journal.contains("[redacted]"), "the journal holds no record: {journal}");
    assert!(!leaks(&journal), "a key in the ledger's journal");
    assert!(gw.stop().success());

    assert!(!leaks(&seen), "a key in an answer:\n{seen}");
    let log = gw.stderr();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "the log ran at debug level"
    );
    assert!(!leaks(&log), "a key in the log:\n{log}");
    // The ledger, as bytes (the database and any WAL left).
    let mut db = Vec::new();
    for suffix in ["", "-wal"] {
        let p = format!("{}{suffix}", gw.ledger_path().display());
        if let Ok(b) = std::fs::read(&p) {
            db.extend(b);
        }
    }
    assert!(!db.is_empty());
    assert!(!leaks(&String::from_utf8_lossy(&db)), "a key in the ledger");
    let rows = switchyard_core::ledger::recent(&gw.ledger_path(), 20).unwrap();
    assert!(
        rows.iter()
            .flat_map(|r| &r.attempts)
            .any(|a| a.detail.as_deref().is_some_and(|d| d.contains("[redacted]"))),
        "the provider's message is kept, without the key: {rows:?}"
    );

    // `switchyard check` prints the config without its keys.
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(gw.config_path())
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(!leaks(&printed), "{printed}");
}
