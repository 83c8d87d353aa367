//! The MCP server: `switchyard mcp` on stdio (in-process, and relaying to a gateway with
//! `--url`) and `/mcp` on the gateway, driven by the official `mcp` Python SDK
//! (tests/mcp/client.py) in both of its connection modes; the HTTP guard (keys, `Host`) and a
//! clean stdout checked by hand.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");

/// The Python of the venv that CI installs the `mcp` SDK into, if it can import it.
fn python() -> Option<PathBuf> {
    let clients = std::env::var("SWITCHYARD_CLIENTS").unwrap_or_else(|_| "/var/tmp/switchyard-clients".into());
    let py = Path::new(&clients).join("mcp-venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if std::env::var("SWITCHYARD_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!(
            "the `mcp` Python SDK is not installed in {} but SWITCHYARD_REQUIRE_CLIENTS=1",
            py.display()
        );
    }
    eprintln!(
        "skipped: the `mcp` Python SDK is not installed in {} (.ci/run installs it; set SWITCHYARD_REQUIRE_CLIENTS=1 to require it)",
        py.display()
    );
    None
}

/// Runs client.py; returns what it printed.
async fn run_client(py: &Path, args: Vec<String>) -> Value {
    let py = py.to_owned();
    let out = tokio::task::spawn_blocking(move || Command::new(py).arg(CLIENT).args(&args).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Two fake upstreams: the `default` route is l0 then l1.
async fn fakes() -> (FakeUpstream, FakeUpstream, String) {
    let a = FakeUpstream::start("alpha").await;
    let b = FakeUpstream::start("beta").await;
    let cfg = config_for(&[a.base_url(), b.base_url()], "");
    (a, b, cfg)
}

/// What one client session saw, the same over every transport: the tools, the lanes, answers
/// naming their lane, clear refusals of bad arguments, and a usage report that counts the
/// questions just asked.
fn check_session(v: &Value, mode: &str) {
    assert_eq!(v["server"], "switchyard", "{v}");
    if mode == "legacy" {
        assert!(v["protocol"].as_str().unwrap() < "2026", "{v}");
    }
    let tools = v["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["ask", "lanes", "usage"]);
    assert_eq!(tools["ask"]["required"], json!(["prompt"]), "{}", tools["ask"]);
    for arg in ["prompt", "task", "lane", "local_only", "max_tokens"] {
        assert!(tools["ask"]["properties"].get(arg).is_some(), "ask lacks {arg}");
    }
    for arg in ["since", "until", "by"] {
        assert!(tools["usage"]["properties"].get(arg).is_some(), "usage lacks {arg}");
    }

    let lanes = &v["lanes"];
    assert_eq!(lanes["is_error"], false, "{lanes}");
    let listed: Vec<(&str, &str)> = lanes["structured"]["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["lane"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("l0", "up"), ("l1", "up")]);
    let text = lanes["text"][0].as_str().unwrap();
    assert!(text.contains("l0") && text.contains("p1/m1"), "{text}");

    let ask = &v["ask"];
    assert_eq!(ask["is_error"], false, "{ask}");
    assert_eq!(ask["text"][0], "hello from alpha");
    assert_eq!(
        ask["text"][1],
        "[answered by lane `l0` (route `default`; tried: l0:ok)]"
    );
    let s = &ask["structured"];
    assert_eq!(
        (&s["answer"], &s["lane"], &s["route"], &s["attempts"]),
        (
            &json!("hello from alpha"),
            &json!("l0"),
            &json!("default"),
            &json!("l0:ok")
        )
    );
    assert!(s["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(v["ask_lane"]["text"][0], "hello from beta");
    assert_eq!(v["ask_lane"]["structured"]["lane"], "l1");

    let refused = |k: &str, needle: &str| {
        let r = &v[k];
        assert_eq!(r["is_error"], true, "{k}: {r}");
        let text = r["text"][0].as_str().unwrap();
        assert!(text.contains(needle), "{k}: {text}");
    };
    refused("ask_unknown_lane", "unknown lane `nope`; lanes are: l0, l1");
    refused("ask_unknown_task", "unknown task `nope`; tasks (routes) are: default");
    refused("ask_empty", "`prompt` is empty");
    refused("usage_bad", "since: cannot read `yesterday-ish`");

    let usage = &v["usage"];
    assert_eq!(usage["is_error"], false, "{usage}");
    let u = &usage["structured"];
    // The two answers; the bad arguments were refused before they reached the gateway.
    assert_eq!(
        (&u["total"]["requests"], &u["total"]["ok"], &u["total"]["errors"]),
        (&json!(2), &json!(2), &json!(0)),
        "{u}"
    );
    let row = |lane: &str| {
        u["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == lane)
            .unwrap_or_else(|| panic!("no row for {lane}: {u}"))["requests"]
            .clone()
    };
    assert_eq!((row("l0"), row("l1")), (json!(1), json!(1)));
    assert!(usage["text"][0].as_str().unwrap().contains("TOTAL"), "{usage}");
}

/// A temporary directory with a config whose ledger is beside it.
fn config_dir(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{config}\nstorage:\n  ledger: \"{}\"\n",
        dir.path().join("ledger.db").display()
    );
    std::fs::write(dir.path().join("switchyard.yaml"), text).unwrap();
    dir
}

#[tokio::test]
async fn the_python_sdk_uses_switchyard_mcp_on_stdio() {
    let Some(py) = python() else { return };
    for mode in ["legacy", "auto"] {
        let (a, b, cfg) = fakes().await;
        let dir = config_dir(&cfg);
        let config = dir.path().join("switchyard.yaml").display().to_string();
        let v = run_client(&py, vec!["stdio".into(), mode.into(), bin().into(), config]).await;
        check_session(&v, mode);
        assert_eq!((a.hits(), b.hits()), (1, 1), "{mode}");
        // The answers are in the ledger after the server is gone (it flushed on the way out).
        let db = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
        let origins: Vec<String> = db
            .prepare("SELECT DISTINCT dialect FROM requests")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(origins, ["mcp"], "{mode}");
    }
}

#[tokio::test]
async fn the_python_sdk_uses_mcp_over_http_with_a_key() {
    let Some(py) = python() else { return };
    for mode in ["legacy", "auto"] {
        let (a, b, cfg) = fakes().await;
        let gw = Running::start(&format!("{cfg}server:\n  keys: [\"k1\"]\n"));
        let v = run_client(&py, vec!["http".into(), mode.into(), gw.url.clone(), "k1".into()]).await;
        check_session(&v, mode);
        assert_eq!((a.hits(), b.hits()), (1, 1), "{mode}");
    }
}

#[tokio::test]
async fn switchyard_mcp_url_relays_stdio_to_a_running_gateway() {
    let Some(py) = python() else { return };
    let (a, b, cfg) = fakes().await;
    let gw = Running::start(&format!("{cfg}server:\n  keys: [\"k1\"]\n"));
    let v = run_client(
        &py,
        vec![
            "stdio".into(),
            "legacy".into(),
            bin().into(),
            "-".into(),
            "--url".into(),
            gw.url.clone(),
            "k1".into(),
        ],
    )
    .await;
    check_session(&v, "legacy");
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn post_mcp(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client()
        .post(format!("{url}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn mcp_over_http_needs_a_key_and_an_allowed_host() {
    let (_a, _b, cfg) = fakes().await;
    let gw = Running::start(&format!("{cfg}server:\n  keys: [\"k1\"]\n"));
    let port = gw.url.rsplit(':').next().unwrap().to_owned();

    let r = post_mcp(&gw.url, &[]).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = post_mcp(&gw.url, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");

    // The key alone is not enough: a page on another name that resolves here (DNS
    // rebinding) is refused by its Host.
    let r = post_mcp(&gw.url, &[("x-api-key", "k1"), ("host", "evil.example")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Host"));

    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = post_mcp(&gw.url, &[("x-api-key", "k1"), ("host", &host)]).await;
        assert_eq!(r.status(), 200, "{host}");
        assert!(r.headers().get("mcp-session-id").is_none(), "stateless");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["result"]["serverInfo"]["name"], "switchyard", "{v}");
    }
    // Only POST: no stream is held open (nothing to hold up a shutdown).
    let r = client()
        .get(format!("{}/mcp", gw.url))
        .header("x-api-key", "k1")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn mcp_allowed_hosts_is_configurable() {
    let (_a, _b, cfg) = fakes().await;
    let gw = Running::start(&format!(
        "{cfg}server:\n  mcp_allowed_hosts: [gateway.lan, \"10.1.2.3:4000\"]\n"
    ));
    for (host, status) in [
        ("gateway.lan", 200),
        ("gateway.lan:4000", 200),
        ("10.1.2.3:4000", 200),
        ("10.1.2.3:4001", 403),
        ("localhost", 403),
    ] {
        let r = post_mcp(&gw.url, &[("host", host)]).await;
        assert_eq!(r.status(), status, "{host}");
    }
    let any = Running::start(&format!("{cfg}server:\n  mcp_allowed_hosts: [\"*\"]\n"));
    let r = post_mcp(&any.url, &[("host", "anything.example")]).await;
    assert_eq!(r.status(), 200);
}

/// Without the SDK: stdout carries JSON-RPC and nothing else (logs go to stderr), and the
/// server exits when its client closes stdin.
#[tokio::test]
async fn switchyard_mcp_keeps_stdout_for_the_protocol() {
    let (a, _b, cfg) = fakes().await;
    a.set(Behavior::status(500, r#"{"error":{"message":"upstream broke"}}"#));
    let dir = config_dir(&cfg);
    let mut child = Command::new(bin())
        .args(["mcp", "--config"])
        .arg(dir.path().join("switchyard.yaml"))
        .env("SWITCHYARD_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let messages = [
        INITIALIZE,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{"prompt":"hi","lane":"l1"}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask","arguments":{"question":"hi"}}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ask","arguments":{"prompt":"hi","lane":"l0"}}}"#,
    ];
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = BufReader::new(stdout).lines();
        let mut got = Vec::new();
        for m in messages {
            writeln!(stdin, "{m}").unwrap();
            stdin.flush().unwrap();
            if m.contains("\"id\"") {
                got.push(out.next().unwrap().unwrap());
            }
        }
        drop(stdin);
        got.extend(out.map_while(Result::ok));
        got
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.is_empty(), "logs go to stderr");
    assert_eq!(lines.len(), 4, "{lines:?}");
    let v: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v[0]["result"]["serverInfo"]["name"], "switchyard");
    assert_eq!(v[1]["result"]["content"][0]["text"], "hello from beta");
    // Arguments the tool does not take: an error result naming the field, which the model
    // reads and can correct.
    assert_eq!(v[2]["result"]["isError"], true, "{}", v[2]);
    let text = v[2]["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("unknown field `question`, expected one of `prompt`"),
        "{text}"
    );
    // The gateway's refusal, with the lanes it tried, as an error result.
    assert_eq!(v[3]["result"]["isError"], true, "{}", v[3]);
    let text = v[3]["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("(lanes tried: l0:"), "{text}");
}

/// One stateless `tools/call` on `/mcp` (no handshake needed), sent with this `Host`.
async fn call_tool(url: &str, host: &str, tool: &str, arguments: Value) -> (u16, Value) {
    let body =
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    let r = client()
        .post(format!("{url}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("host", host)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn mcp_follows_a_config_reload() {
    let (_a, _b, cfg) = fakes().await;
    let first = format!("{cfg}server:\n  mcp_allowed_hosts: [a.lan]\n");
    let gw = Running::start(&first);
    let (status, v) = call_tool(&gw.url, "a.lan", "ask", json!({"prompt": "hi"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["structuredContent"]["lane"], "l0", "{v}");

    gw.replace_config(
        &first
            .replace("default: [l0, l1]", "default: [l1, l0]")
            .replace("[a.lan]", "[b.lan]"),
    );
    let mut reloaded = false;
    for _ in 0..200 {
        if call_tool(&gw.url, "b.lan", "lanes", json!({})).await.0 == 200 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new allowed host never applied:\n{}", gw.stderr());
    assert_eq!(call_tool(&gw.url, "a.lan", "lanes", json!({})).await.0, 403);
    let (_, v) = call_tool(&gw.url, "b.lan", "ask", json!({"prompt": "hi"})).await;
    assert_eq!(
        v["result"]["structuredContent"]["lane"], "l1",
        "the new route order applies: {v}"
    );
}
