//! The dashboard at `GET /`: its page and headers, the login page and the cookie (which opens
//! the dashboard's reads and nothing else), and, in headless Chromium driven by Playwright
//! when they are installed, the page itself: lanes, and a live update after a request.

use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_security_headers() {
    let up = FakeUpstream::start("alpha").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));

    let r = get(&format!("{}/", gw.url), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "content-security-policy"), CSP);
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "cache-control"), "no-store");
    let page = r.text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/dashboard/app.js" defer></script>"#),
        "{page}"
    );
    assert!(page.contains(r#"data-testid="lanes""#));

    for (path, kind, needle) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8", "/api/status"),
        (
            "/dashboard/login.js",
            "text/javascript; charset=utf-8",
            "switchyard_key=",
        ),
        (
            "/dashboard/style.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme: dark",
        ),
    ] {
        let r = get(&format!("{}{path}", gw.url), &[]).await;
        assert_eq!(
            (r.status().as_u16(), header(&r, "content-type")),
            (200, kind.to_owned()),
            "{path}"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }

    // `/` is one route, not a catch-all: unknown paths keep their JSON 404.
    for path in ["/nope", "/dashboard/", "/dashboard/evil.js", "/index.html"] {
        let r = get(&format!("{}{path}", gw.url), &[]).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}");
    }
}

/// A key with the characters a cookie cannot hold as they are (the login page URI-encodes it).
const KEY: &str = "s3cret key;=%";

fn keyed_config(up: &FakeUpstream) -> String {
    config_for(&[up.base_url()], &format!("server: {{ keys: [\"{KEY}\"] }}\n"))
}

#[tokio::test]
async fn with_keys_the_page_asks_for_one_and_the_cookie_opens_only_reads() {
    let up = FakeUpstream::start("alpha").await;
    let gw = Running::start(&keyed_config(&up));
    let root = format!("{}/", gw.url);
    let cookie = "theme=dark; switchyard_key=s3cret%20key%3B%3D%25";

    // No key: the login page (401), with the same headers as the dashboard.
    let r = get(&root, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "content-security-policy"), CSP);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-testid="login""#) && page.contains("/dashboard/login.js"));
    assert!(
        page.contains(r#"data-testid="login-error" hidden>"#),
        "no error before a key is sent"
    );
    assert!(!page.contains("data-testid=\"lanes\""));

    // A wrong key: the login page again, saying so.
    let r = get(&root, &[("cookie", "switchyard_key=wrong")]).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(r#"data-testid="login-error" >"#));

    // The right key, in the cookie or in a header, opens the page; the assets need none.
    for h in [("cookie", cookie), ("authorization", &format!("Bearer {KEY}"))] {
        let r = get(&root, &[h]).await;
        assert_eq!(r.status(), 200, "{h:?}");
        assert!(r.text().await.unwrap().contains(r#"data-testid="lanes""#));
    }
    assert_eq!(get(&format!("{}/dashboard/app.js", gw.url), &[]).await.status(), 200);

    // The API's reads take the cookie…
    let status = format!("{}/api/status", gw.url);
    assert_eq!(get(&status, &[]).await.status(), 401);
    assert_eq!(get(&status, &[("cookie", "switchyard_key=wrong")]).await.status(), 401);
    let r = get(&status, &[("cookie", cookie)]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["lanes"][0]["lane"], "l0");

    // …the model endpoints do not: a page elsewhere cannot spend quota through a browser.
    let r = gw.post(hello("default"), &[("cookie", cookie)]).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("cookie", cookie)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(up.hits(), 0);
    // The key in a header still works there.
    let r = gw
        .post(hello("default"), &[("authorization", &format!("Bearer {KEY}"))])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
}

/// A client program is required (CI installs them) or, on a developer's machine without it,
/// the test says so and skips (as in `anthropic.rs`).
fn required(what: &str) -> bool {
    if std::env::var("SWITCHYARD_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!("{what} is not installed but SWITCHYARD_REQUIRE_CLIENTS=1");
    }
    eprintln!("skipped: {what} is not installed (set SWITCHYARD_REQUIRE_CLIENTS=1 to require it)");
    false
}

/// Node, `playwright-core` (in `$SWITCHYARD_CLIENTS`, where CI installs the npm clients) and
/// Chromium, or why not.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return Err("node".into());
    }
    let clients = std::env::var("SWITCHYARD_CLIENTS").unwrap_or_else(|_| "/var/tmp/switchyard-clients".into());
    let playwright = Path::new(&clients).join("node_modules/playwright-core");
    if !playwright.join("package.json").exists() {
        return Err(format!("playwright-core (npm, in {clients})"));
    }
    let chromium = PathBuf::from(std::env::var("SWITCHYARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!("Chromium ({}; or set SWITCHYARD_CHROMIUM)", chromium.display()));
    }
    Ok((playwright, chromium))
}

#[tokio::test]
async fn chromium_logs_in_sees_the_lanes_and_watches_a_request_arrive() {
    let (playwright, chromium) = match browser_tools() {
        Ok(t) => t,
        Err(what) => {
            required(&what);
            return;
        }
    };
    // A local lane that has started failing, with an error text that would be markup if the
    // page ever inserted it as HTML, and a cloud lane with a free tier behind it.
    let local = FakeUpstream::start("box").await;
    let cloud = FakeUpstream::start("cloud").await;
    let cfg = format!(
        "server: {{ keys: [\"{KEY}\"] }}\n\
         health: {{ failures: 5, cooldown: 30s, max_cooldown: 60s }}\n\
         providers:\n\
         \x20 gpu-box: {{ kind: openai, base_url: \"{}\", api_key: a, local: true, timeouts: {{ first_byte: 2s, idle: 2s }} }}\n\
         \x20 cloud: {{ kind: openai, base_url: \"{}\", api_key: b, timeouts: {{ first_byte: 2s, idle: 2s }} }}\n\
         lanes:\n\
         \x20 gemma-local: {{ provider: gpu-box, model: \"gemma3:27b\" }}\n\
         \x20 llama-cloud: {{ provider: cloud, model: llama-3.3-70b }}\n\
         routes:\n  default: [gemma-local, llama-cloud]\n\
         limits:\n  cloud: {{ rpm: 30, rpd: 1000, tpd: 100000 }}\n",
        local.base_url(),
        cloud.base_url()
    );
    let gw = Running::start(&cfg);
    let bearer = format!("Bearer {KEY}");
    // Some history for the charts and totals: three answered locally, one in the cloud.
    for _ in 0..3 {
        assert_eq!(
            gw.post(hello("default"), &[("authorization", &bearer)]).await.status(),
            200
        );
    }
    assert_eq!(
        gw.post(hello("llama-cloud"), &[("authorization", &bearer)])
            .await
            .status(),
        200
    );
    local.set(Behavior::status(
        503,
        r#"{"error":{"message":"<img src=x onerror=\"window.__xss=1\"> overloaded"}}"#,
    ));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    for stale in ["dashboard.png", "dashboard-login.png", "dashboard-failed.png"] {
        let _ = std::fs::remove_file(shot.with_file_name(stale));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let (url, shot_arg) = (gw.url.clone(), shot.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(url)
            .arg(KEY)
            .arg(shot_arg)
            .env("PLAYWRIGHT_CORE", playwright)
            .env("SWITCHYARD_CHROMIUM", chromium)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser check failed ({}):\n{stderr}\ngateway log:\n{}",
        out.status,
        gw.stderr()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("the browser saw: {seen}");

    assert_eq!(seen["lanes"], json!([["gemma-local", "up"], ["llama-cloud", "up"]]));
    assert_eq!(seen["windows"], 3, "rpm, rpd and tpd bars for the cloud lane");
    assert_eq!((seen["before"].as_u64(), seen["after"].as_u64()), (Some(4), Some(5)));
    assert_eq!(seen["cookie_only_post"], 401);
    // The newest row: answered in the cloud after the local lane failed, and its trail is
    // the one the response's header named.
    let row = &seen["row"];
    assert_eq!(
        (row["lane"].as_str(), row["status"].as_str()),
        (Some("llama-cloud"), Some("ok"))
    );
    let trail: Vec<&str> = row["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert_eq!(trail.join(","), seen["attempts"].as_str().unwrap());
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert!(
        trail[0].starts_with("gemma-local:") && trail[1] == "llama-cloud:ok",
        "{trail:?}"
    );
    assert_eq!(
        (row["trail"][0]["failed"].as_bool(), row["trail"][1]["failed"].as_bool()),
        (Some(true), Some(false))
    );
    // The upstream's error text is in the failed chip's tooltip, as text (the script checked
    // that no element was made of it and nothing ran).
    let tip = row["trail"][0]["title"].as_str().unwrap();
    assert!(
        tip.contains("HTTP 503") && tip.contains(r#"<img src=x onerror="window.__xss=1"> overloaded"#),
        "{tip}"
    );

    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot {} is {size} bytes", shot.display());
    eprintln!("dashboard screenshot: {}", shot.display());
}
