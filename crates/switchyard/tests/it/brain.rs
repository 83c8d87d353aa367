//! `brain` and the zero-config default, with the deterministic fake engine
//! (`SWITCHYARD_ENGINE=fake`) standing in for llama.cpp.

use crate::support::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};

pub fn brain_bin() -> &'static str {
    env!("CARGO_BIN_EXE_brain")
}

/// A clean environment: no config anywhere, no keys, no Ollama, a fresh home.
pub fn isolated(cmd: &mut Command, home: &std::path::Path) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("OLLAMA_HOST", refused_addr().to_string())
        .current_dir(home);
}

fn brain(args: &[&str], stdin: Option<&str>, extra_env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(brain_bin());
    isolated(&mut cmd, home.path());
    cmd.env("SWITCHYARD_ENGINE", "fake").args(args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn brain_answers_on_a_fresh_machine_with_no_config() {
    let o = brain(&["What", "is", "the", "capital", "of", "France?"], None, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "echo: What is the capital of France?\n");
}

#[test]
fn piped_stdin_is_appended_as_context() {
    let o = brain(&["summarize"], Some("buy milk\ncall Anna\n"), &[]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "echo: summarize\n\nbuy milk\ncall Anna\n");
    let o = brain(&[], Some("only stdin"), &[]);
    assert_eq!(stdout(&o), "echo: only stdin\n");
}

#[test]
fn json_output_says_who_answered() {
    let o = brain(&["--json", "hello"], None, &[]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["answer"], "echo: hello");
    assert_eq!(
        (v["route"].as_str(), v["lane"].as_str(), v["attempts"].as_str()),
        (Some("default"), Some("local"), Some("local:ok"))
    );
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn failures_exit_non_zero_with_one_line_on_stderr() {
    let o = brain(&["--lane", "nope", "hi"], None, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: model `nope` is not a route, lane or alias"),
        "{err}"
    );
    let o = brain(&[], None, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to ask"));
}

// Multi-threaded: the test blocks on `brain` subprocesses while the fake upstream, in this
// process, must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_flag_skips_cloud_lanes_and_url_uses_a_running_gateway() {
    let cloud = FakeUpstream::start("cloud").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    let yaml = format!(
        "providers:\n  cloud: {{ kind: openai, base_url: \"{}\" }}\n  here: {{ kind: embedded }}\nlanes:\n  c: {{ provider: cloud, model: m }}\n  l: {{ provider: here }}\nroutes:\n  default: [c, l]\nstorage:\n  ledger: \"{}\"\n",
        cloud.base_url(),
        dir.path().join("l.db").display()
    );
    std::fs::write(&cfg, yaml).unwrap();
    let c = cfg.to_str().unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&brain(&["--config", c, "--json", "hi"], None, &[]).stdout).unwrap();
    assert_eq!(v["attempts"], "c:ok");
    let v: serde_json::Value =
        serde_json::from_slice(&brain(&["--config", c, "--local", "--json", "hi"], None, &[]).stdout).unwrap();
    assert_eq!(v["attempts"], "c:not_local,l:ok");
    assert_eq!(cloud.hits(), 1, "--local sent nothing to the cloud lane");

    let gw = Running::start(&config_for(&[cloud.base_url()], ""));
    let o = brain(&["--url", &gw.url, "hi", "there"], None, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "hello from cloud\n");
    assert_eq!(cloud.last_chat().body["messages"][0]["content"], "hi there");
}

#[tokio::test]
async fn serve_with_no_config_answers_from_the_embedded_lane() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    isolated(&mut cmd, home.path());
    cmd.env("SWITCHYARD_ENGINE", "fake")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("switchyard listening on ")
        .unwrap()
        .to_owned();
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(
            &serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "ping"}], "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-lane"), "local");
    let events = sse_data(r).await;
    assert_eq!(stream_text(&events), "echo: ping");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let _ = child.kill();
    let _ = child.wait();
    // The ledger went to the user data dir.
    assert!(home.path().join("data/switchyard/ledger.db").exists());
}
