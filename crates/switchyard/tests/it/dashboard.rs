//! The dashboard at `GET /`: its page and headers, the login page, signing in (a form post
//! that sets an HttpOnly session cookie, never the key, which opens the dashboard's reads and
//! nothing else) and out, and, in headless Chromium driven by Playwright when they are
//! installed, the page itself: lanes, and a live update after a request.

use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'";

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
    assert!(
        page.contains(r#"data-testid="sign-out" hidden>"#),
        "no keys: nobody to sign out"
    );

    for (path, kind, needle) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8", "/api/status"),
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
    for path in [
        "/nope",
        "/dashboard/",
        "/dashboard/evil.js",
        "/dashboard/login.js",
        "/index.html",
    ] {
        let r = get(&format!("{}{path}", gw.url), &[]).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}");
    }
}

/// A key with characters a form must encode.
const KEY: &str = "s3cret key;=%+";
/// `KEY` as a browser's form sends it.
const KEY_FORM: &str = "key=s3cret+key%3B%3D%25%2B";

fn keyed_config(up: &FakeUpstream) -> String {
    config_for(&[up.base_url()], &format!("server: {{ keys: [\"{KEY}\"] }}\n"))
}

/// A client that shows redirects instead of following them, and keeps no cookies: each test
/// says which cookie it sends.
fn browser() -> reqwest::Client {
    let _ = client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `POST /dashboard/login` as a browser's form sends it, from `origin` (by default the
/// gateway's own page).
async fn login(gw: &Running, form: &str, origin: Option<&str>) -> reqwest::Response {
    browser()
        .post(format!("{}/dashboard/login", gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin.unwrap_or(&gw.url))
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

/// The session cookie a login set (`name=value`), checking its attributes.
fn session_of(r: &reqwest::Response) -> String {
    let set = header(r, "set-cookie");
    let (pair, attrs) = set.split_once("; ").unwrap_or_else(|| panic!("no attributes: {set}"));
    assert_eq!(attrs, "HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000", "{set}");
    let value = pair.strip_prefix("switchyard_session=").unwrap();
    assert_eq!(value.len(), 64, "{set}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{set}");
    pair.to_owned()
}

#[tokio::test]
async fn with_keys_the_login_sets_an_http_only_session_that_opens_only_reads() {
    let up = FakeUpstream::start("alpha").await;
    let gw = Running::start(&keyed_config(&up));
    let root = format!("{}/", gw.url);
    let status = format!("{}/api/status", gw.url);

    // No key: the login page (401), with the same headers as the dashboard; a plain form
    // that posts to the gateway, no script.
    let r = get(&root, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "content-security-policy"), CSP);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(header(&r, "set-cookie"), "");
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-testid="login" method="post" action="/dashboard/login">"#));
    assert!(page.contains(r#"name="key""#) && !page.contains("<script"));
    assert!(
        page.contains(r#"data-testid="login-error" hidden>"#),
        "no error before a key is sent"
    );
    assert!(page.contains(r#"data-testid="login-expired" hidden>"#));
    assert!(!page.contains("data-testid=\"lanes\""));

    // A wrong key: the login page again, saying so, and no cookie.
    let r = login(&gw, "key=wrong", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "set-cookie"), "");
    let page = r.text().await.unwrap();
    assert!(
        page.contains(r#"data-testid="login-error" >That key was not accepted"#),
        "{page}"
    );

    // The right key: 303 to the dashboard with an HttpOnly session cookie that is not the key.
    let r = login(&gw, KEY_FORM, None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/");
    let session = session_of(&r);
    for form in [KEY, "s3cret", "s3cret+key", "s3cret%20key", KEY_FORM] {
        assert!(!session.contains(form), "{session} holds {form}");
    }
    // The same key signs in to the same session; no `Secure` over plain http.
    assert_eq!(session_of(&login(&gw, KEY_FORM, None).await), session);
    // Without `Origin` (not a browser page): accepted too.
    let r = browser()
        .post(format!("{}/dashboard/login", gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(KEY_FORM)
        .send()
        .await
        .unwrap();
    assert_eq!(session_of(&r), session);
    // Behind an https proxy the cookie is `Secure` as well.
    let r = browser()
        .post(format!("{}/dashboard/login", gw.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(KEY_FORM)
        .send()
        .await
        .unwrap();
    assert!(header(&r, "set-cookie").ends_with("; Max-Age=2592000; Secure"));

    // The session, among other cookies, opens the page (with "sign out") and the API's reads;
    // so does the key in a header. The assets need neither.
    let cookie = format!("theme=dark; {session}");
    for h in [("cookie", cookie.as_str()), ("authorization", &format!("Bearer {KEY}"))] {
        let r = get(&root, &[h]).await;
        assert_eq!(r.status(), 200, "{h:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains(r#"data-testid="lanes""#));
        assert!(page.contains(r#"data-testid="sign-out" >"#), "{h:?}");
    }
    assert_eq!(get(&format!("{}/dashboard/app.js", gw.url), &[]).await.status(), 200);
    assert_eq!(get(&status, &[]).await.status(), 401);
    let r = get(&status, &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["lanes"][0]["lane"], "l0");
    for api in ["/api/usage", "/api/series", "/api/requests"] {
        let r = get(&format!("{}{api}", gw.url), &[("cookie", &cookie)]).await;
        assert_eq!(r.status(), 200, "{api}");
    }

    // The key itself as a cookie value opens nothing, under either name; neither does a
    // session made up or tampered with.
    let last = session.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &session[..session.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    for bad in [
        "switchyard_session=s3cret%20key%3B%3D%25%2B".to_owned(),
        // The format before sessions: the key itself, under the old name.
        "switchyard_key=s3cret%20key%3B%3D%25%2B".to_owned(),
        format!("switchyard_session={}", "0".repeat(64)),
        flipped,
    ] {
        assert_eq!(get(&status, &[("cookie", &bad)]).await.status(), 401, "{bad}");
        assert_eq!(get(&root, &[("cookie", &bad)]).await.status(), 401, "{bad}");
    }

    // The model endpoints and /metrics do not take the session: a page elsewhere cannot spend
    // quota through a browser, nor read the gateway's counters.
    let r = gw.post(hello("default"), &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("cookie", &cookie)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "default", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/metrics", "/v1/models"] {
        let r = get(&format!("{}{path}", gw.url), &[("cookie", &cookie)]).await;
        assert_eq!(r.status(), 401, "{path}");
    }
    assert_eq!(up.hits(), 0);
    // The key in a header still works there.
    let r = gw
        .post(hello("default"), &[("authorization", &format!("Bearer {KEY}"))])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 1);
    let r = get(
        &format!("{}/metrics", gw.url),
        &[("authorization", &format!("Bearer {KEY}"))],
    )
    .await;
    assert_eq!(r.status(), 200);

    // Signing out clears the cookie.
    let r = browser()
        .post(format!("{}/dashboard/logout", gw.url))
        .header("origin", &gw.url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), header(&r, "location")), (303, "/".to_owned()));
    assert_eq!(
        header(&r, "set-cookie"),
        "switchyard_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    );
}

#[tokio::test]
async fn a_login_or_logout_from_another_origin_is_refused() {
    let up = FakeUpstream::start("alpha").await;
    let gw = Running::start(&keyed_config(&up));
    // Another site, another port of the same host (Open WebUI on :8080), and a sandboxed page.
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let other_port = format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1));
    for origin in ["http://evil.example", other_port.as_str(), "null"] {
        let r = login(&gw, KEY_FORM, Some(origin)).await;
        assert_eq!(r.status(), 403, "{origin}");
        assert_eq!(header(&r, "set-cookie"), "", "{origin}");
        let r = browser()
            .post(format!("{}/dashboard/logout", gw.url))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), header(&r, "set-cookie")),
            (403, String::new()),
            "{origin}"
        );
    }
    // The same request from the gateway's own page signs in.
    assert_eq!(login(&gw, KEY_FORM, None).await.status(), 303);
    // Only POST signs in: a link or an image cannot.
    let r = get(&format!("{}/dashboard/login?{KEY_FORM}", gw.url), &[]).await;
    assert_eq!((r.status().as_u16(), header(&r, "set-cookie")), (405, String::new()));
}

#[tokio::test]
async fn a_session_outlives_a_reload_but_not_its_key_or_a_restart() {
    let up = FakeUpstream::start("alpha").await;
    let mut gw = Running::start(&keyed_config(&up));
    let session = session_of(&login(&gw, KEY_FORM, None).await);
    let status = format!("{}/api/status", gw.url);
    assert_eq!(get(&status, &[("cookie", &session)]).await.status(), 200);

    let wait_for_reloads = async |gw: &Running, n: usize| {
        for _ in 0..200 {
            if gw.stderr().matches("config reloaded").count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reload in the log:\n{}", gw.stderr());
    };
    // A second key is added: the session made from the first still opens the dashboard.
    let two_keys = config_for(&[up.base_url()], &format!("server: {{ keys: [\"{KEY}\", \"k2\"] }}\n"));
    gw.replace_config(&two_keys);
    wait_for_reloads(&gw, 1).await;
    assert_eq!(get(&status, &[("cookie", &session)]).await.status(), 200);
    let k2 = session_of(&login(&gw, "key=k2", None).await);
    assert_ne!(k2, session);
    assert_eq!(
        get(&status, &[("cookie", "switchyard_session=k2")]).await.status(),
        401,
        "the key verbatim is no session"
    );

    // The first key is removed: its session stops, the other's goes on. The login page says
    // why and clears the stale cookie.
    gw.replace_config(&config_for(&[up.base_url()], "server: { keys: [\"k2\"] }\n"));
    wait_for_reloads(&gw, 2).await;
    assert_eq!(get(&status, &[("cookie", &session)]).await.status(), 401);
    assert_eq!(get(&status, &[("cookie", &k2)]).await.status(), 200);
    let r = get(&format!("{}/", gw.url), &[("cookie", &session)]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "set-cookie"),
        "switchyard_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"data-testid="login-expired" >"#), "{page}");
    assert!(page.contains(r#"data-testid="login-error" hidden>"#));

    // A restart draws a new secret: every session ends.
    gw.restart();
    let status = format!("{}/api/status", gw.url);
    assert_eq!(get(&status, &[("cookie", &k2)]).await.status(), 401);
    assert_eq!(get(&status, &[("authorization", "Bearer k2")]).await.status(), 200);
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
    assert_eq!(
        seen["session_cookie"],
        json!({"http_only": true, "same_site": "Strict", "path": "/", "in_document_cookie": false,
               "names": ["switchyard_session"]})
    );
    assert_eq!(seen["signed_out"], true);
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
