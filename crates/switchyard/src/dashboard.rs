//! The dashboard at `GET /`: one HTML page, its script and its stylesheet, compiled into the
//! binary (no build step, nothing loaded from elsewhere), and the login page shown instead
//! when `server.keys` is set and the browser has not presented a session. The page draws what
//! `/api/status`, `/api/usage`, `/api/series` and `/api/requests` return. This module serves
//! those files, signs browsers in and out (`POST /dashboard/login`, `POST /dashboard/logout`)
//! and owns the session cookie: how its value is made and read. Which routes accept the
//! cookie is decided in `server.rs` (`KeyFrom`).
//!
//! The cookie never holds the key. A cookie is sent to every port of a host, so anything
//! else served from `127.0.0.1` (another web app, a dev server) receives it; it must be
//! useless there: `HttpOnly` (no script reads it), `SameSite=Strict`, and its value a token
//! that opens this gateway's read-only routes and nothing else (see [`session_token`]).

use crate::server::{AppState, KeyFrom, check_key};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const LOGIN_HTML: &str = include_str!("dashboard/login.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The session cookie `POST /dashboard/login` sets. Read by `check_key` for GET routes only.
pub const SESSION_COOKIE: &str = "switchyard_session";

/// How long a browser keeps the session (30 days), unless the gateway restarts first.
const SESSION_MAX_AGE_SECS: u32 = 30 * 24 * 3600;

/// A login form is one short field; anything larger is not one.
const MAX_LOGIN_BODY: usize = 16 * 1024;
const LOGIN_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Scripts only from this origin (so no inline script can run, whatever a lane name or an
/// upstream's error text contains), fetches and form posts only to this origin, and no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'";

pub fn routes() -> Router<crate::server::Live> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}

/// The dashboard, or (401) the login page when keys are set and no valid session or key was
/// presented. A session that no longer opens anything is cleared, and the page says why.
async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match check_key(&state, &headers, KeyFrom::HeadersOrCookie) {
        // "sign out" only where there is someone to sign out. Like the login page's markers,
        // the only things substituted into a page are fixed attributes, never request data.
        Ok(caller) => {
            let signed_in = if caller.is_some() { "" } else { "hidden" };
            html(StatusCode::OK, INDEX_HTML.replace("{{signed_in}}", signed_in))
        }
        Err(denied) => {
            let expired = session_cookies(&headers).next().is_some();
            let mut resp = login_page(denied.was_presented() && !expired, expired);
            if expired {
                resp.headers_mut()
                    .insert(header::SET_COOKIE, session_cookie("", 0, false));
            }
            resp
        }
    }
}

/// The login page (401), saying a key was rejected or a session ended when so.
fn login_page(rejected: bool, expired: bool) -> Response {
    let shown = |yes: bool| if yes { "" } else { "hidden" };
    let body = LOGIN_HTML
        .replace("{{rejected}}", shown(rejected))
        .replace("{{expired}}", shown(expired));
    html(StatusCode::UNAUTHORIZED, body)
}

/// `POST /dashboard/login` with the form's `key=…`: the same check a script's `x-api-key`
/// gets, then a session cookie and a redirect to the dashboard (303, so the browser follows
/// with a GET and a reload does not post the key again).
async fn login(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    if !same_origin(&headers, &uri) {
        return cross_origin();
    }
    let read = tokio::time::timeout(LOGIN_READ_TIMEOUT, axum::body::to_bytes(body, MAX_LOGIN_BODY)).await;
    let Ok(Ok(body)) = read else {
        return login_page(true, false);
    };
    let key = form_field(&body, "key").unwrap_or_default();
    let key = key.trim();
    // Through `check_key` itself, so the form accepts exactly the keys the API does. A key
    // that cannot be a header value is not one of them.
    let mut probe = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(key) else {
        return login_page(true, false);
    };
    probe.insert("x-api-key", value);
    match check_key(&state, &probe, KeyFrom::Headers) {
        Ok(Some(_)) => see_dashboard(session_cookie(
            &session_token(key),
            SESSION_MAX_AGE_SECS,
            is_https(&headers),
        )),
        // No keys configured: the dashboard is open, there is nothing to keep.
        Ok(None) => see_dashboard(session_cookie("", 0, is_https(&headers))),
        Err(_) => login_page(true, false),
    }
}

/// `POST /dashboard/logout`: the cookie is cleared (a form, so a link on another site cannot
/// sign anyone out).
async fn logout(uri: Uri, headers: HeaderMap) -> Response {
    if !same_origin(&headers, &uri) {
        return cross_origin();
    }
    see_dashboard(session_cookie("", 0, is_https(&headers)))
}

fn see_dashboard(cookie: HeaderValue) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    h.insert(header::SET_COOKIE, cookie);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn cross_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "refused: this form was sent from a page of another origin\n",
    )
        .into_response()
}

/// `Set-Cookie` for the session: `HttpOnly` (no script, here or on another port of this host,
/// reads it), `SameSite=Strict` (no other site's page makes the browser send it), and `Secure`
/// when the browser reached the gateway over https. A `max_age` of 0 deletes it.
fn session_cookie(value: &str, max_age: u32, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    // The value is hex (or empty): always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
}

/// Whether a browser's `Origin`, when it sent one, is this gateway's own, as the request's
/// `Host` (or HTTP/2 `:authority`) names it. Browsers send `Origin` with every form POST; a
/// client without one (`curl`, a script) is not a page of another origin. Another port of the
/// same host is another origin: that is the case this exists for.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    // Where the browser sends it, `Sec-Fetch-Site` says the same thing, and a script cannot
    // set it either.
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if site.is_some_and(|s| s != b"same-origin" && s != b"none") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let (Ok(origin), Some(host)) = (origin.to_str(), host) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()))
}

/// The gateway speaks plain HTTP; https means a proxy in front, which the browser names in
/// `Origin` and a proxy usually in `X-Forwarded-Proto`. Either only adds `Secure`.
fn is_https(headers: &HeaderMap) -> bool {
    let says = |name: header::HeaderName, https: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with(https))
    };
    says(header::ORIGIN, "https://") || says(header::HeaderName::from_static("x-forwarded-proto"), "https")
}

/// A random secret drawn once per process. Process-wide, not per config, so a reload keeps
/// everyone signed in; a restart signs everyone out.
///
/// No crate for randomness is among the binary's dependencies, and std has what is needed:
/// the OS's random bytes from `/dev/urandom` (every Unix), and, everywhere, `RandomState`,
/// whose SipHash keys std draws from the OS's random source. Either alone suffices; SHA-256
/// mixes them into 32 bytes.
fn secret() -> &'static [u8; 32] {
    use std::hash::BuildHasher;
    use std::io::Read;
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut h = Sha256::new();
        h.update(b"switchyard dashboard session secret\n");
        let mut os = [0u8; 32];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut os))
            .is_ok()
        {
            h.update(os);
        }
        for i in 0u8..4 {
            h.update(std::collections::hash_map::RandomState::new().hash_one(i).to_le_bytes());
        }
        h.finalize().into()
    })
}

/// The session token for a key: hex of SHA-256(process secret ‖ key). It is not the key and
/// does not reveal it (without the secret it cannot even be checked against a guess), it
/// stops working when the key is removed from `server.keys` or the gateway restarts, and
/// `check_key` accepts it only on the read-only GET routes.
pub fn session_token(key: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret());
    h.update(key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every non-empty `switchyard_session` cookie value. Every `Cookie` header is read: HTTP/2
/// clients may send one per cookie.
pub fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// A field of an `application/x-www-form-urlencoded` body, decoded (`+` is a space).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(&v.replace('+', " ")))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: under it a browser sends `Origin: null` with the page's own form
    // posts, and the login could no longer tell them from another site's. `same-origin` still
    // sends nothing to anywhere else.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

/// Static files hold no data and need no key (the login page uses them too). `no-cache`: a
/// browser revalidates, so a new binary's page never runs an old script.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `%XX` sequences to bytes; `None` for a malformed sequence or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn sessions_are_found_among_other_cookies() {
        let h = headers(&[
            ("cookie", "a=1; switchyard_session=t1; b=2"),
            ("cookie", "switchyard_session=t2"),
        ]);
        assert_eq!(session_cookies(&h).collect::<Vec<_>>(), ["t1", "t2"]);
        let h = headers(&[(
            "cookie",
            "switchyard_sessionx=t1; xswitchyard_session=t2; switchyard_session=",
        )]);
        assert_eq!(session_cookies(&h).count(), 0);
        assert_eq!(session_cookies(&HeaderMap::new()).count(), 0);
    }

    #[test]
    fn a_token_is_per_key_stable_and_not_the_key() {
        let (a, b) = (session_token("sk-one"), session_token("sk-two"));
        assert_eq!(a, session_token("sk-one"), "the same for the process's life");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!a.contains("sk-one"));
        // Not a plain hash of the key either: that could be checked against guesses.
        let plain: String = Sha256::digest(b"sk-one").iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(a, plain);
    }

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let c = session_cookie("abc", SESSION_MAX_AGE_SECS, false);
        assert_eq!(
            c.to_str().unwrap(),
            "switchyard_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000"
        );
        let c = session_cookie("", 0, true);
        assert!(c.to_str().unwrap().ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn only_this_origin_may_post_the_forms() {
        let uri: Uri = "/dashboard/login".parse().unwrap();
        let host = ("host", "127.0.0.1:4000");
        assert!(same_origin(&headers(&[host]), &uri), "no Origin: not a browser page");
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:4000")]),
            &uri
        ));
        assert!(same_origin(
            &headers(&[("host", "gw.example"), ("origin", "https://GW.example")]),
            &uri
        ));
        for other in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://evil.example",
            "null",
            "http://127.0.0.1:4000.evil.example",
        ] {
            assert!(!same_origin(&headers(&[host, ("origin", other)]), &uri), "{other}");
        }
        // `Sec-Fetch-Site`, where sent, must agree.
        let own = ("origin", "http://127.0.0.1:4000");
        assert!(same_origin(
            &headers(&[host, own, ("sec-fetch-site", "same-origin")]),
            &uri
        ));
        for site in ["same-site", "cross-site"] {
            assert!(
                !same_origin(&headers(&[host, own, ("sec-fetch-site", site)]), &uri),
                "{site}"
            );
        }
        // HTTP/2: no Host header, the authority is in the URI.
        let h2: Uri = "http://127.0.0.1:4000/dashboard/login".parse().unwrap();
        assert!(same_origin(&headers(&[("origin", "http://127.0.0.1:4000")]), &h2));
        assert!(!same_origin(&headers(&[("origin", "http://127.0.0.1:4000")]), &uri));
    }

    #[test]
    fn https_is_told_by_origin_or_the_proxy() {
        assert!(is_https(&headers(&[("origin", "https://gw.example")])));
        assert!(is_https(&headers(&[("x-forwarded-proto", "HTTPS")])));
        assert!(!is_https(&headers(&[("origin", "http://gw.example")])));
        assert!(!is_https(&HeaderMap::new()));
    }

    #[test]
    fn the_form_field_is_decoded() {
        assert_eq!(
            form_field(b"key=s3cret+key%3B%3D%25", "key"),
            Some("s3cret key;=%".into())
        );
        assert_eq!(form_field(b"other=1&key=a%2Bb", "key"), Some("a+b".into()));
        assert_eq!(form_field(b"keys=1", "key"), None);
        assert_eq!(form_field(b"key=%zz", "key"), None);
        assert_eq!(form_field(b"key=%ff", "key"), None);
        assert_eq!(form_field(b"\xff", "key"), None);
    }

    #[test]
    fn the_script_never_writes_markup_nor_touches_cookies() {
        // Data goes into the page through textContent only (see the head of app.js).
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "document.cookie",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        // No inline script: the CSP would block it.
        for page in [INDEX_HTML, LOGIN_HTML] {
            assert!(
                !page.contains("<script>") && !page.contains("javascript:"),
                "inline script"
            );
            let handler = page.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "an inline event handler in a page");
        }
    }
}
