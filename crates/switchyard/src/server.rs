//! The HTTP surface: axum routes, key checks, body limits, and rendering the core's answers
//! and errors in the caller's dialect. No routing or provider logic lives here.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use switchyard_core::gateway::{Answer, AnswerBody, Call, Gateway, Refusal};
use switchyard_core::router::Hints;
use switchyard_core::{clock, usage};
use switchyard_protocol::Dialect;
use switchyard_protocol::anthropic::{self, Endpoint, MessagesRequest};
use switchyard_protocol::openai::{self, ChatRequest, ErrorBody};
use tokio::net::TcpListener;

pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// Accepted keys with the short id the ledger records instead of the key.
    keys: Vec<(SecretString, String)>,
    max_body: usize,
    read_timeout: std::time::Duration,
}

impl AppState {
    pub fn new(gateway: Arc<Gateway>) -> Arc<Self> {
        let cfg = gateway.config();
        let keys = cfg
            .server
            .keys
            .iter()
            .map(|k| (k.clone(), key_id(k.expose_secret())))
            .collect();
        let max_body = cfg.server.max_body_bytes;
        let read_timeout = cfg.server.read_timeout;
        Arc::new(AppState {
            gateway,
            keys,
            max_body,
            read_timeout,
        })
    }
}

/// `key:` and the first 8 hex digits of the key's SHA-256: enough to tell callers apart in
/// the ledger, useless for recovering the key.
fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("key:{hex}")
}

/// The state requests see: swapped as a whole when the config is reloaded. Each request takes
/// the current one when it starts and keeps it to its end, so a reload never changes the
/// rules under a request in flight.
#[derive(Clone)]
pub struct Live(Arc<std::sync::RwLock<Arc<AppState>>>);

impl Live {
    pub fn current(&self) -> Arc<AppState> {
        // A poisoned lock still holds a whole `Arc`: the swap is one assignment.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `next` in place for the requests that start from now on.
    pub fn swap(&self, next: Arc<AppState>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

impl From<Arc<AppState>> for Live {
    fn from(s: Arc<AppState>) -> Live {
        Live(Arc::new(std::sync::RwLock::new(s)))
    }
}

/// Handlers ask for `State<Arc<AppState>>` and get the state current when their request came.
impl axum::extract::FromRef<Live> for Arc<AppState> {
    fn from_ref(live: &Live) -> Arc<AppState> {
        live.current()
    }
}

pub fn app(state: impl Into<Live>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/status", get(api_status))
        .merge(crate::dashboard::routes())
        .route("/api/usage", get(api_usage))
        .route("/api/series", get(api_series))
        .route("/api/requests", get(api_requests))
        .route("/mcp", axum::routing::any(crate::mcp::http))
        .fallback(not_found)
        // The limit is enforced in `read_body` so the 413 comes in the caller's dialect.
        .layer(DefaultBodyLimit::disable())
        .with_state(state.into())
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
///
/// Connections are served by hyper directly (not `axum::serve`) so that slow clients are cut
/// off: request headers must arrive within `server.read_timeout` (and `read_body` holds the
/// body to the same), or the connection is closed. On shutdown, the listener closes, idle
/// connections close, and requests in flight (streams included) run to their end.
pub async fn run(
    listener: TcpListener,
    state: impl Into<Live>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let live: Live = state.into();
    let read_timeout = live.current().read_timeout;
    let router = app(live);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken: wait a
                    // moment rather than spin, and go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An error in the caller's dialect: OpenAI's `{"error":{message,type,param,code}}` or
/// Anthropic's `{"type":"error","error":{type,message}}` (with the same stable `code`).
fn error_response(
    dialect: Dialect,
    status: u16,
    code: &str,
    message: impl Into<String>,
    param: Option<String>,
) -> Response {
    let body = match dialect {
        Dialect::OpenAi => {
            let kind = match status {
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            ErrorBody::new(kind, code, message, param).to_json()
        }
        Dialect::Anthropic => anthropic::error_body(anthropic::error_type(status), &message.into(), Some(code)),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// Constant-time comparison, so response timing says nothing about how much of a key matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a caller's key may come from. A browser sends the dashboard's session cookie
/// (`switchyard_session`, see `dashboard.rs`) on its own, to any request for this host, so the
/// cookie is accepted only by the read-only GET routes (`/` and `/api/*`), never by `/v1/*`
/// or `/metrics`: a page on another site must not be able to make a signed-in browser spend
/// quota and money. The cookie holds a token made from a key, never the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrom {
    Headers,
    HeadersOrCookie,
}

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Invalid,
}

impl Denied {
    /// A key was sent, and it was wrong.
    pub fn was_presented(self) -> bool {
        self == Denied::Invalid
    }
}

/// The caller's key id, `Ok(None)` when no keys are configured. A key in the headers
/// (`Authorization: Bearer`, `x-api-key`) wins over the session cookie; with
/// `KeyFrom::HeadersOrCookie`, a `switchyard_session` cookie whose value is the session token
/// of a configured key stands for that key.
pub fn check_key(state: &AppState, headers: &HeaderMap, from: KeyFrom) -> Result<Option<String>, Denied> {
    if state.keys.is_empty() {
        return Ok(None);
    }
    let in_headers = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    if let Some(presented) = in_headers {
        return state
            .keys
            .iter()
            .find(|(k, _)| same(k.expose_secret().as_bytes(), presented.as_bytes()))
            .map(|(_, id)| Some(id.clone()))
            .ok_or(Denied::Invalid);
    }
    if from == KeyFrom::Headers {
        return Err(Denied::Missing);
    }
    let mut sessions = crate::dashboard::session_cookies(headers).peekable();
    sessions.peek().ok_or(Denied::Missing)?;
    // Tokens are made per request (one SHA-256 per key) rather than kept with the keys: a
    // reload swaps the keys, and the tokens follow without anything else to keep in step.
    let tokens: Vec<(String, &String)> = state
        .keys
        .iter()
        .map(|(k, id)| (crate::dashboard::session_token(k.expose_secret()), id))
        .collect();
    sessions
        .find_map(|s| tokens.iter().find(|(t, _)| same(t.as_bytes(), s.as_bytes())))
        .map(|(_, id)| Some((*id).clone()))
        .ok_or(Denied::Invalid)
}

/// Checks the caller's key (headers only). `Ok(None)` when no keys are configured.
#[expect(clippy::result_large_err, reason = "the error is the response to send")]
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap, dialect: Dialect) -> Result<Option<String>, Response> {
    authorize_from(state, headers, dialect, KeyFrom::Headers)
}

/// For the read-only GET `/api/*` routes the dashboard calls: the headers or its cookie.
#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn authorize_read(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, Response> {
    authorize_from(state, headers, Dialect::OpenAi, KeyFrom::HeadersOrCookie)
}

#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn authorize_from(
    state: &AppState,
    headers: &HeaderMap,
    dialect: Dialect,
    from: KeyFrom,
) -> Result<Option<String>, Response> {
    check_key(state, headers, from).map_err(|denied| match denied {
        Denied::Missing => error_response(
            dialect,
            401,
            "missing_api_key",
            "this gateway needs a key: send `Authorization: Bearer KEY` or `x-api-key: KEY` (one of `server.keys`)",
            None,
        ),
        Denied::Invalid => error_response(
            dialect,
            401,
            "invalid_api_key",
            "the key sent is not one of this gateway's `server.keys`",
            None,
        ),
    })
}

pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    dialect: Dialect,
) -> Result<Bytes, Response> {
    let too_large = || {
        error_response(
            dialect,
            413,
            "request_too_large",
            format!(
                "request body is larger than this gateway accepts ({} bytes; see `server.max_body`)",
                state.max_body
            ),
            None,
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(state.read_timeout, axum::body::to_bytes(body, state.max_body)).await;
    let Ok(read) = read else {
        return Err(error_response(
            dialect,
            408,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s (`server.read_timeout`)",
                state.read_timeout.as_secs_f64()
            ),
            None,
        ));
    };
    match read {
        Ok(b) => Ok(b),
        Err(e) => {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                Err(too_large())
            } else {
                Err(error_response(
                    dialect,
                    400,
                    "body_read_failed",
                    format!("the request body could not be read: {e}"),
                    None,
                ))
            }
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn hints(headers: &HeaderMap) -> Hints {
    Hints {
        task: header_str(headers, "x-switchyard-task").map(str::to_owned),
        premium: header_str(headers, "x-switchyard-premium").is_some_and(|v| v.eq_ignore_ascii_case("allow")),
        fallback: header_str(headers, "x-switchyard-fallback").is_some_and(|v| v.eq_ignore_ascii_case("on")),
        local_only: header_str(headers, "x-switchyard-local").is_some_and(|v| v.eq_ignore_ascii_case("only")),
    }
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

async fn chat_completions(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let d = Dialect::OpenAi;
    let caller = match authorize(&state, &headers, d) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let bytes = match read_body(&state, &headers, body, d).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = match ChatRequest::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error_response(d, 400, "invalid_request", e.message, e.param),
    };
    let call = Call {
        hints: hints(&headers),
        caller,
        dialect: d,
        ..Default::default()
    };
    render(d, state.gateway.chat(req, call).await)
}

/// Headers of an Anthropic client that an Anthropic lane needs to see too.
fn anthropic_passthrough_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(v) = headers.get("anthropic-beta") {
        out.insert(HeaderName::from_static("anthropic-beta"), v.clone());
    }
    out
}

/// An Anthropic request, checked: the key, the body (kept as parsed JSON for passthrough) and
/// its canonical form. Every refusal is in Anthropic's shape.
async fn anthropic_call(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<(ChatRequest, Call), Response> {
    let d = Dialect::Anthropic;
    let caller = authorize(state, headers, d)?;
    let bytes = read_body(state, headers, body, d).await?;
    let bad = |e: openai::InvalidRequest| error_response(d, 400, "invalid_request", e.message, e.param);
    let value: serde_json::Value = openai::decode(&bytes).map_err(bad)?;
    let req = MessagesRequest::from_value(&value, endpoint).map_err(bad)?;
    let call = Call {
        hints: hints(headers),
        caller,
        dialect: d,
        native: Some(Arc::new(value)),
        passthrough_headers: anthropic_passthrough_headers(headers),
        origin: None,
    };
    Ok((anthropic::to_chat(&req), call))
}

async fn messages(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match anthropic_call(&state, &headers, body, Endpoint::Messages).await {
        Ok((chat, call)) => render(Dialect::Anthropic, state.gateway.chat(chat, call).await),
        Err(r) => r,
    }
}

async fn count_tokens(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let d = Dialect::Anthropic;
    let (chat, call) = match anthropic_call(&state, &headers, body, Endpoint::CountTokens).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.gateway.count_tokens(&chat, &call).await {
        Ok(c) => {
            let mut resp = axum::Json(serde_json::json!({"input_tokens": c.input_tokens})).into_response();
            let h = resp.headers_mut();
            set_header(h, "x-switchyard-route", &c.route);
            if let Some(lane) = &c.lane {
                set_header(h, "x-switchyard-lane", lane);
            }
            set_header(h, "x-switchyard-count", if c.exact { "exact" } else { "estimate" });
            resp
        }
        Err(e) => error_response(d, e.status(), &e.code(), e.to_string(), None),
    }
}

/// The gateway's answer, or its refusal, in the caller's dialect, with the routing headers.
fn render(dialect: Dialect, result: Result<Answer, Refusal>) -> Response {
    match result {
        Ok(answer) => {
            let mut resp = match answer.body {
                AnswerBody::Json(b) => (
                    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    b,
                )
                    .into_response(),
                AnswerBody::Stream(s) => {
                    let mut r = Body::from_stream(s).into_response();
                    let h = r.headers_mut();
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    h.insert(
                        HeaderName::from_static("x-accel-buffering"),
                        HeaderValue::from_static("no"),
                    );
                    r
                }
            };
            let h = resp.headers_mut();
            set_header(h, "x-switchyard-route", &answer.route);
            set_header(h, "x-switchyard-lane", &answer.lane);
            set_header(h, "x-switchyard-attempts", &answer.attempts);
            resp
        }
        Err(refusal) => {
            let e = &refusal.error;
            let mut resp = error_response(dialect, e.status(), &e.code(), e.to_string(), None);
            let h = resp.headers_mut();
            if let Some(route) = &refusal.route {
                set_header(h, "x-switchyard-route", route);
            }
            if !refusal.attempts.is_empty() {
                set_header(h, "x-switchyard-attempts", &refusal.attempts);
            }
            if let Some(secs) = e.retry_after_secs() {
                set_header(h, "retry-after", &secs.to_string());
            }
            resp
        }
    }
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    // Anthropic's SDKs list models too; they send `anthropic-version`.
    let d = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    if let Err(r) = authorize(&state, &headers, d) {
        return r;
    }
    let cfg = state.gateway.config();
    if d == Dialect::Anthropic {
        // Anthropic's list shape: what its SDKs' `models.list()` and Claude Code's model
        // picker read. Routes first: they are what a client should name.
        let data: Vec<serde_json::Value> = cfg
            .routes
            .keys()
            .chain(cfg.lanes.keys())
            .map(|id| {
                serde_json::json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
            })
            .collect();
        let first = data.first().map(|m| m["id"].clone());
        let last = data.last().map(|m| m["id"].clone());
        return axum::Json(serde_json::json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
            .into_response();
    }
    let mut data = Vec::new();
    for r in cfg.routes.values() {
        data.push(serde_json::json!({
            "id": r.name, "object": "model", "created": 0, "owned_by": "switchyard",
            "switchyard": {"kind": "route", "chain": r.chain, "premium": r.premium, "local_only": r.local_only},
        }));
    }
    for l in cfg.lanes.values() {
        let health = if state.gateway.health().is_open(&l.name) {
            "down"
        } else {
            "up"
        };
        data.push(serde_json::json!({
            "id": l.name, "object": "model", "created": 0, "owned_by": l.provider,
            "switchyard": {"kind": "lane", "provider": l.provider, "model": l.model, "local": l.local, "premium": l.premium, "health": health},
        }));
    }
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// Every lane's health and quota (`switchyard status` reads this).
async fn api_status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize_read(&state, &headers) {
        return r;
    }
    let gw = &state.gateway;
    let shared = gw
        .shared_status()
        .map(|(url, up)| serde_json::json!({"url": url, "up": up}));
    axum::Json(serde_json::json!({
        "service": "switchyard",
        "now_ms": gw.quota().now_ms(),
        "shared": shared,
        "lanes": gw.status(),
    }))
    .into_response()
}

/// Prometheus' text format; behind the keys like the rest of the API (scrapers send a
/// bearer token).
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers, Dialect::OpenAi) {
        return r;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.gateway.metrics(),
    )
        .into_response()
}

/// A 400 for a report's query parameter, naming it.
fn bad_query(param: &str, message: impl Into<String>) -> Response {
    error_response(Dialect::OpenAi, 400, "invalid_query", message, Some(param.to_owned()))
}

/// Query parameters of an `/api/…` report: only the `allowed` ones, each at most once.
#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn report_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, Response> {
    let Query(pairs) = query.map_err(|e| bad_query("", format!("cannot read the query string: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad_query(
                &k,
                format!("unknown parameter `{k}`; this endpoint takes {}", allowed.join(", ")),
            ));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(bad_query(&k, format!("`{k}` is given twice")));
        }
    }
    Ok(out)
}

/// `since`/`until` of a report (`24h`, `7d`, a date, a time); `until` defaults to now.
#[expect(clippy::result_large_err, reason = "the error is the response to send")]
fn report_period(q: &HashMap<String, String>, default_since: &str) -> Result<(i64, i64), Response> {
    let now = clock::wall_now_ms();
    let read =
        |name: &str, text: &str| usage::parse_since(text, now).map_err(|e| bad_query(name, format!("{name}: {e}")));
    let since = read("since", q.get("since").map_or(default_since, String::as_str))?;
    let until = q.get("until").map(|u| read("until", u)).transpose()?.unwrap_or(now);
    Ok((since, until))
}

/// Answers with a ledger read (SQLite or PostgreSQL), run after the gateway's pending records
/// are written (a request just answered is in the report).
async fn ledger_read<T, F>(state: &AppState, read: impl FnOnce(switchyard_core::ledger::Reader) -> F) -> Response
where
    T: serde::Serialize,
    F: Future<Output = Result<T, String>>,
{
    state.gateway.flush().await;
    match read(state.gateway.ledger().reader()).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => {
            let failed = format!("cannot read the ledger: {e}");
            tracing::error!("{failed}");
            error_response(Dialect::OpenAi, 500, "ledger_unavailable", failed, None)
        }
    }
}

/// Usage over a period from the ledger: `?since=24h&until=…&by=lane|route|day|provider`
/// (`switchyard usage --url` reads this).
async fn api_usage(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(r) = authorize_read(&state, &headers) {
        return r;
    }
    let q = match report_params(query, &["since", "until", "by"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (since, until) = match report_period(&q, "24h") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let by: usage::By = match q.get("by").map_or(Ok(usage::By::Lane), |b| b.parse()) {
        Ok(b) => b,
        Err(e) => return bad_query("by", format!("by: {e}")),
    };
    ledger_read(
        &state,
        |r| async move { usage::report_from(&r, since, until, by).await },
    )
    .await
}

/// Requests and tokens per lane per time bucket: `?since=1h&until=…&step=SECONDS` (by
/// default about 60 buckets; never more than 500; a step of at most 366 days).
async fn api_series(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(r) = authorize_read(&state, &headers) {
        return r;
    }
    let q = match report_params(query, &["since", "until", "step"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (since, until) = match report_period(&q, "1h") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let max_step = usage::MAX_STEP_MS / 1000;
    let step_ms = match q.get("step").map(|s| s.parse::<i64>()) {
        None => until.saturating_sub(since).max(0) / 60,
        Some(Ok(s)) if (1..=max_step).contains(&s) => s * 1000,
        Some(_) => {
            return bad_query(
                "step",
                format!("step: a whole number of seconds, from 1 to {max_step} (366 days)"),
            );
        }
    };
    ledger_read(&state, |r| async move {
        usage::series_from(&r, since, until, step_ms).await
    })
    .await
}

/// The newest requests with their attempt trails: `?limit=50` (at most 500), and
/// `&before=MS&before_id=ID` (a request's `ts_ms` and `id`) for the page after that request.
/// `before` alone skips every request of that millisecond.
async fn api_requests(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Err(r) = authorize_read(&state, &headers) {
        return r;
    }
    let q = match report_params(query, &["limit", "before", "before_id"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => 50,
        Some(Ok(l)) if l > 0 => l.min(500),
        Some(_) => return bad_query("limit", "limit: a whole number from 1 (at most 500 are returned)"),
    };
    let before = match q.get("before").map(|b| b.parse::<i64>()).transpose() {
        Ok(b) => b,
        Err(_) => return bad_query("before", "before: milliseconds since the Unix epoch (a `ts_ms`)"),
    };
    let before_id = q.get("before_id").cloned();
    if before_id.is_some() && before.is_none() {
        return bad_query(
            "before_id",
            "before_id: only with `before` (the same request's `ts_ms`)",
        );
    }
    ledger_read(&state, |r| async move {
        let cursor = before.map(|ts_ms| (ts_ms, before_id));
        usage::requests_from(&r, limit, cursor)
            .await
            .map(|page| usage::RequestsPage::new(&page))
    })
    .await
}

async fn healthz() -> Response {
    // `service` lets `switchyard claude` tell this gateway from anything else on the port.
    axum::Json(serde_json::json!({"status": "ok", "service": "switchyard"})).into_response()
}

async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let d = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    error_response(
        d,
        404,
        "not_found",
        format!(
            "no such endpoint `{}`; this gateway serves POST /v1/chat/completions, POST /v1/messages, \
             POST /v1/messages/count_tokens, GET /v1/models, GET /healthz, GET /metrics, \
             GET /api/status, GET /api/usage, GET /api/series, GET /api/requests, POST /mcp and the dashboard at GET /",
            uri.path()
        ),
        None,
    )
}
