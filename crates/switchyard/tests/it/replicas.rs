//! Two replicas sharing Redis: a 20-a-day free lane serves exactly 20 between them under
//! concurrent load; a park seen by one is honoured by the other; Redis going away mid-run
//! leaves both serving on their own counters, saying so, until it is back.
//!
//! Each test runs its own `redis-server` on a free port (the machine's shared one is left
//! alone), so it can be killed mid-run.

use crate::support::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchyard_testkit::Quota;

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// `None` (test skipped, saying why) when redis-server is not installed, unless
    /// SWITCHYARD_REQUIRE_SERVICES is set.
    fn start() -> Option<Redis> {
        let port = refused_addr().port();
        let mut r = Redis { port, child: None };
        if !r.spawn() {
            assert!(
                std::env::var_os("SWITCHYARD_REQUIRE_SERVICES").is_none(),
                "redis-server is required (SWITCHYARD_REQUIRE_SERVICES is set)"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        Some(r)
    }

    fn spawn(&mut self) -> bool {
        let Ok(child) = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped at the
/// end. `None` (skipped) when there is none, unless SWITCHYARD_REQUIRE_SERVICES is set.
struct Pg {
    name: String,
}

impl Pg {
    fn create() -> Option<Pg> {
        let name = format!("switchyard_test_{}_{}", std::process::id(), refused_addr().port());
        let ok = psql(&format!("CREATE DATABASE {name}"));
        if !ok {
            assert!(
                std::env::var_os("SWITCHYARD_REQUIRE_SERVICES").is_none(),
                "PostgreSQL on 127.0.0.1:5432 is required (SWITCHYARD_REQUIRE_SERVICES is set)"
            );
            eprintln!("skipped: no PostgreSQL on 127.0.0.1:5432");
            return None;
        }
        Some(Pg { name })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &self.name, "-tA", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const RPD_429: &str = r#"{"error":{"message":"Rate limit reached for model `m0` on requests per day (RPD): Limit 20, Used 20, Requested 1. Please try again in 7h12m0.528s.","type":"requests","code":"rate_limit_exceeded"}}"#;

async fn lanes(gws: &[&Running], n: usize) -> Vec<(u16, String)> {
    let urls: Vec<String> = gws.iter().map(|g| g.url.clone()).collect();
    post_at_once(&urls, n)
        .await
        .into_iter()
        .map(|(s, lane, _)| (s, lane))
        .collect()
}

async fn shared_up(gw: &Running) -> Option<bool> {
    let v: Value = client()
        .get(format!("{}/api/status", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["shared"]["up"].as_bool()
}

#[tokio::test]
async fn two_replicas_spend_a_free_quota_once_and_keep_serving_without_redis() {
    let Some(mut redis) = Redis::start() else { return };
    let Some(pg) = Pg::create() else { return };
    let (free, other) = (FakeUpstream::start("free").await, FakeUpstream::start("other").await);
    // The provider enforces 20 a day too: a replica that overspent would meet its 429s.
    free.enforce(Quota {
        max: 20,
        status: 429,
        body: RPD_429.into(),
        headers: vec![],
    });
    let base = config_for(&[free.base_url(), other.base_url()], "limits:\n  l0: { rpd: 20 }\n");
    // One ledger for both, in PostgreSQL.
    let make = |_: &std::path::Path| {
        format!(
            "{base}storage:\n  ledger: \"{}\"\n  shared: \"{}\"\n",
            pg.url(),
            redis.url()
        )
    };
    let a = Running::start_raw(make);
    let b = Running::start_raw(make);

    let got = lanes(&[&a, &b], 60).await;
    assert!(got.iter().all(|(s, _)| *s == 200), "{got:?}");
    let on_free = got.iter().filter(|(_, l)| l == "l0").count();
    assert_eq!(on_free, 20, "{got:?}");
    assert_eq!(free.hits(), 20, "no request was sent that the provider would refuse");
    assert_eq!(shared_up(&a).await, Some(true));

    // Both ledgers landed in the one database, and either replica reports all of it.
    let usage: Value = client()
        .get(format!("{}/api/usage?since=1h", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["total"]["requests"], 60, "{usage}");
    let l0 = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "l0")
        .unwrap();
    assert_eq!(l0["requests"], 20);
    assert_eq!(pg.query("SELECT count(*) FROM requests"), "60");
    assert_eq!(pg.query("SELECT count(DISTINCT replica) FROM requests"), "2");
    assert_eq!(pg.query("SELECT count(*) FROM requests r WHERE attempt_count != (SELECT count(*) FROM attempts a WHERE a.request_id = r.id)"), "0");
    let page: Value = client()
        .get(format!("{}/api/requests?limit=5", a.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["requests"].as_array().unwrap().len(), 5);
    assert!(
        page["requests"][0]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    // The CLI reads the same, offline, from PostgreSQL.
    let out = Command::new(bin())
        .args(["usage", "--json", "--since", "1h", "--config"])
        .arg(a.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["total"]["requests"], 60);
    assert_eq!(cli["rows"], usage["rows"]);

    // Redis goes away: both keep serving, on their own counters, and say so.
    redis.kill();
    let got = lanes(&[&a, &b], 10).await;
    assert!(got.iter().all(|(s, _)| *s == 200), "{got:?}");
    assert_eq!(shared_up(&a).await, Some(false));
    assert_eq!(shared_up(&b).await, Some(false));
    assert!(
        a.stderr().contains("shared state (Redis) unreachable"),
        "{}",
        a.stderr()
    );
    let m = a.metrics().await;
    assert!(m.contains("switchyard_shared_up 0\n"), "{m}");

    // It comes back (empty: nothing was kept on disk): noticed within a few seconds.
    assert!(redis.spawn());
    let mut back = false;
    for _ in 0..60 {
        if shared_up(&a).await == Some(true) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "{}", a.stderr());
    assert!(a.stderr().contains("shared state (Redis) is back"));
}

#[tokio::test]
async fn a_budget_parked_by_one_replica_is_skipped_by_the_other() {
    let Some(redis) = Redis::start() else { return };
    let (free, other) = (FakeUpstream::start("free").await, FakeUpstream::start("other").await);
    free.enforce(Quota {
        max: 0,
        status: 429,
        body: RPD_429.into(),
        headers: vec![],
    });
    let base = config_for(&[free.base_url(), other.base_url()], "");
    let make = |dir: &std::path::Path| {
        format!(
            "{base}storage:\n  ledger: \"{}\"\n  shared: \"{}\"\n",
            dir.join("ledger.db").display(),
            redis.url()
        )
    };
    let a = Running::start_raw(make);
    let b = Running::start_raw(make);
    // A meets the provider's daily 429 and parks the lane until its reset …
    let r = a.post(hello("default"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota_exhausted,l1:ok");
    assert_eq!(free.hits(), 1);
    // … and B does not ask the provider again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = b.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:quota,l1:ok");
    assert_eq!(free.hits(), 1);
}

#[tokio::test]
async fn a_breaker_opened_by_one_replica_is_honoured_by_the_other() {
    let Some(redis) = Redis::start() else { return };
    let (down, other) = (FakeUpstream::start("down").await, FakeUpstream::start("other").await);
    down.set(Behavior::status(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
    ));
    // A long cool-down: only the other replica's word can make B skip the lane.
    let base = config_for(&[down.base_url(), other.base_url()], "").replace(
        "cooldown: 200ms, max_cooldown: 400ms",
        "cooldown: 30s, max_cooldown: 60s",
    );
    let make = |dir: &std::path::Path| {
        format!(
            "{base}storage:\n  ledger: \"{}\"\n  shared: \"{}\"\n",
            dir.join("ledger.db").display(),
            redis.url()
        )
    };
    let a = Running::start_raw(make);
    // B would need 100 failures of its own to open its breaker.
    let b = Running::start_raw(|dir| make(dir).replace("failures: 2", "failures: 100"));
    for _ in 0..2 {
        let r = a.post(hello("default"), &[]).await;
        assert_eq!(header(&r, "x-switchyard-attempts"), "l0:unavailable,l1:ok");
    }
    // B reads the open breakers about once a second.
    let mut skipped = false;
    for _ in 0..40 {
        let r = b.post(hello("default"), &[]).await;
        if header(&r, "x-switchyard-attempts") == "l0:breaker_open,l1:ok" {
            skipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skipped, "B never skipped the lane A found down");
    // From then on B does not ask the failing lane (its own breaker is still closed).
    let hits = down.hits();
    for _ in 0..3 {
        let r = b.post(hello("default"), &[]).await;
        assert_eq!(header(&r, "x-switchyard-attempts"), "l0:breaker_open,l1:ok");
    }
    assert_eq!(down.hits(), hits);
}
