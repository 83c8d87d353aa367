//! Spawning the gateway binary against a temporary config, and small request helpers.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use switchyard_testkit::{Behavior, FakeUpstream, refused_addr};

pub struct Running {
    pub url: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends `n` chat requests at once to `default`, spread over the gateways at `urls` in turn;
/// returns each answer's status, `x-switchyard-lane` and `x-switchyard-attempts`, in order.
pub async fn post_at_once(urls: &[String], n: usize) -> Vec<(u16, String, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            tokio::spawn(async move {
                let r = client()
                    .post(format!("{url}/v1/chat/completions"))
                    .json(&hello("default"))
                    .send()
                    .await
                    .unwrap();
                let (lane, attempts) = (header(&r, "x-switchyard-lane"), header(&r, "x-switchyard-attempts"));
                (r.status().as_u16(), lane, attempts)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

impl Running {
    /// Starts `switchyard serve` with `config` (YAML, without `storage`: the ledger goes into
    /// the temporary directory).
    pub fn start(config: &str) -> Running {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.db");
        let text = format!("{config}\nstorage:\n  ledger: \"{}\"\n", ledger.display());
        let path = dir.path().join("switchyard.yaml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let (url, child) = spawn(&dir, &env);
        Running {
            url,
            dir,
            child: Some(child),
            env,
        }
    }

    /// Kills the gateway with SIGKILL (no chance to clean up) and starts it again on the same
    /// config and ledger.
    pub fn crash_and_restart(&mut self) {
        let mut child = self.child.take().expect("not running");
        child.kill().unwrap();
        child.wait().unwrap();
        let (url, child) = spawn(&self.dir, &self.env);
        self.url = url;
        self.child = Some(child);
    }

    /// Starts `switchyard serve` with the config `make` writes for the temporary directory
    /// (nothing added: it says where its ledger goes).
    pub fn start_raw(make: impl FnOnce(&std::path::Path) -> String) -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("switchyard.yaml"), make(dir.path())).unwrap();
        let (url, child) = spawn(&dir, &[]);
        Running {
            url,
            dir,
            child: Some(child),
            env: Vec::new(),
        }
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same config and ledger.
    pub fn restart(&mut self) {
        assert!(self.stop().success(), "{}", self.stderr());
        let (url, child) = spawn(&self.dir, &self.env);
        self.url = url;
        self.child = Some(child);
    }
}

fn spawn(dir: &tempfile::TempDir, env: &[(String, String)]) -> (String, Child) {
    let path = dir.path().join("switchyard.yaml");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("stderr.log"))
        .unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&path);
    cmd.stdout(Stdio::piped()).stderr(log).env("SWITCHYARD_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("switchyard listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(u) => u,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "gateway did not start: {}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
        }
    };
    (url, child)
}

impl Running {
    /// Replaces the config file as an editor that saves by rename does: a new file, renamed
    /// over the old one (the ledger stays where it was).
    pub fn replace_config(&self, config: &str) {
        let text = format!("{config}\nstorage:\n  ledger: \"{}\"\n", self.ledger_path().display());
        let tmp = self.dir.path().join(".switchyard.yaml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("switchyard.yaml")).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("switchyard.yaml")
    }

    /// Sends a signal (`HUP`, `KILL` …) to the gateway.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("not running").id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// The ledger's journal segments (`ledger.db-pending.N`), by name.
    pub fn journal_segments(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("ledger.db-pending.")
            })
            .collect();
        found.sort();
        found
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..200 {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("gateway did not exit after SIGTERM");
    }

    pub async fn post(&self, body: serde_json::Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = client().post(format!("{}/v1/chat/completions", self.url)).json(&body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }

    /// The Prometheus text at `GET /metrics` (a gateway without keys).
    pub async fn metrics(&self) -> String {
        let r = client().get(format!("{}/metrics", self.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A config with one provider per fake (named p0, p1 …), one lane per provider (l0, l1 …,
/// model `m0`, `m1` …) and a `default` route over all lanes in order. `extra` is appended.
pub fn config_for(urls: &[String], extra: &str) -> String {
    let mut s = String::from("health: { failures: 2, cooldown: 200ms, max_cooldown: 400ms }\nproviders:\n");
    for (i, u) in urls.iter().enumerate() {
        s.push_str(&format!("  p{i}: {{ kind: openai, base_url: \"{u}\", api_key: \"provider-key-{i}\", local: true, timeouts: {{ first_byte: 1s, idle: 1s }} }}\n"));
    }
    s.push_str("lanes:\n");
    for i in 0..urls.len() {
        s.push_str(&format!("  l{i}: {{ provider: p{i}, model: m{i} }}\n"));
    }
    let chain: Vec<String> = (0..urls.len()).map(|i| format!("l{i}")).collect();
    s.push_str(&format!("routes:\n  default: [{}]\n", chain.join(", ")));
    s.push_str(extra);
    s
}

pub fn hello(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

pub fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Reads an SSE body into its `data:` payloads.
pub async fn sse_data(r: reqwest::Response) -> Vec<String> {
    let text = r.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Concatenated `delta.content` of OpenAI stream chunks.
pub fn stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}
