//! The dashboard at `GET /`: one HTML page, its script and its stylesheet, compiled into the
//! binary (no build step, nothing loaded from elsewhere), and the login page shown instead
//! when `server.keys` is set and the browser has not presented one. The page draws what
//! `/api/status`, `/api/usage`, `/api/series` and `/api/requests` return; this module serves
//! files and reads the `switchyard_key` cookie, nothing more. Which routes accept the cookie
//! is decided in `server.rs` (`KeyFrom`).

use crate::server::{AppState, KeyFrom, check_key};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const LOGIN_HTML: &str = include_str!("dashboard/login.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const LOGIN_JS: &str = include_str!("dashboard/login.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The cookie the login page sets (URI-encoded key). Read by `check_key` for GET routes only.
pub const COOKIE: &str = "switchyard_key";

/// Scripts only from this origin (so no inline script can run, whatever a lane name or an
/// upstream's error text contains), fetches only to this origin, and no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<crate::server::Live> {
    Router::new()
        .route("/", get(page))
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/login.js",
            get(|| async { asset(LOGIN_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}

/// The dashboard, or (401) the login page when keys are set and none valid was presented.
async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match check_key(&state, &headers, KeyFrom::HeadersOrCookie) {
        Ok(_) => html(StatusCode::OK, INDEX_HTML.to_owned()),
        Err(denied) => {
            // The only thing substituted into the page is this fixed attribute, never request data.
            let rejected = if denied.was_presented() { "" } else { "hidden" };
            html(StatusCode::UNAUTHORIZED, LOGIN_HTML.replace("{{rejected}}", rejected))
        }
    }
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
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
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

/// The key in the `switchyard_key` cookie, decoded (the login page writes it with
/// `encodeURIComponent`, so keys with `;`, `=` or spaces survive). Every `Cookie` header is
/// read: HTTP/2 clients may send one per cookie.
pub fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|v| !v.is_empty())
        .and_then(percent_decode)
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
    use super::*;

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::COOKIE,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn the_key_is_found_among_other_cookies_and_decoded() {
        assert_eq!(
            cookie_key(&cookies(&["a=1; switchyard_key=k1; b=2"])),
            Some("k1".into())
        );
        assert_eq!(
            cookie_key(&cookies(&["a=1", "switchyard_key=s3%3B%20%3D%25%C3%A9"])),
            Some("s3; =%é".into())
        );
        assert_eq!(cookie_key(&cookies(&["switchyard_keyx=k1; xswitchyard_key=k2"])), None);
        assert_eq!(cookie_key(&cookies(&["switchyard_key="])), None);
        assert_eq!(cookie_key(&cookies(&["switchyard_key=%4"])), None);
        assert_eq!(cookie_key(&cookies(&["switchyard_key=%zz"])), None);
        assert_eq!(cookie_key(&cookies(&["switchyard_key=%ff"])), None);
        assert_eq!(cookie_key(&HeaderMap::new()), None);
    }

    #[test]
    fn the_script_never_writes_markup() {
        // Data goes into the page through textContent only (see the head of app.js).
        for (name, js) in [("app.js", APP_JS), ("login.js", LOGIN_JS)] {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!js.contains(sink), "{name} uses {sink}");
            }
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
