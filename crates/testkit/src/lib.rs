//! Fake OpenAI-compatible upstreams for tests: a small axum server whose behaviour a test sets
//! and changes while it runs (answer, stream slowly, stall, break the connection, 429, 5xx),
//! and which records every request it got so a test can check what the gateway forwarded.
//!
//! Answers use OpenAI's documented shapes: `chat.completion` objects, `chat.completion.chunk`
//! events ending in `data: [DONE]`, the usage-only chunk when `stream_options.include_usage`
//! is set, and `tool_calls` when the request offers tools.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test support")]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer normally (streamed when asked).
    Answer,
    /// Answer with this status, body and headers.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Accept the request and never answer.
    Stall,
    /// Streams: send the headers, then nothing.
    StallAfterHeaders,
    /// Stream with this pause before every chunk.
    Slow(Duration),
    /// Streams: send this many chunks, then break the connection.
    BreakAfter(usize),
    /// A 200 whose body is not what it claims: cut-off JSON, or an SSE event that is not JSON
    /// followed by the end of the stream.
    Garbage,
    /// Streams: send this many events, then end the body cleanly without `[DONE]`.
    EndWithoutDone(usize),
    /// An agent's turn: call `tool` with `arguments` when it is offered, and once the
    /// conversation ends in that tool's result, answer "hello from NAME; the tool said: RESULT".
    UseTool { tool: String, arguments: String },
}

impl Behavior {
    pub fn status(status: u16, body: &str) -> Self {
        Behavior::Status {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A free tier the fake enforces, as a provider would: past `max` chat requests it answers
/// `status` with `body` and `headers`.
#[derive(Debug, Clone)]
pub struct Quota {
    pub max: usize,
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

struct Inner {
    name: String,
    behavior: Mutex<Behavior>,
    quota: Mutex<Option<Quota>>,
    /// Sent with every successful chat answer (a provider's rate-limit headers).
    answer_headers: Mutex<Vec<(String, String)>>,
    /// Chat requests refused by the quota.
    refused: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    chat_hits: AtomicUsize,
    /// Streams whose body was dropped before it was all sent (the gateway hung up).
    cancelled: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeUpstream {
    /// Starts a fake on a free loopback port. `name` appears in its answers
    /// ("hello from NAME") so tests can tell who answered.
    pub async fn start(name: &str) -> FakeUpstream {
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            behavior: Mutex::new(Behavior::Answer),
            quota: Mutex::new(None),
            answer_headers: Mutex::new(Vec::new()),
            refused: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            chat_hits: AtomicUsize::new(0),
            cancelled: Arc::new(AtomicUsize::new(0)),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/models", get(models))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeUpstream { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set(&self, b: Behavior) {
        *self.inner.behavior.lock().unwrap() = b;
    }

    /// Enforces a free tier: past `q.max` chat requests, every one is refused.
    pub fn enforce(&self, q: Quota) {
        *self.inner.quota.lock().unwrap() = Some(q);
    }

    /// Headers sent with every successful chat answer.
    pub fn answer_headers(&self, headers: &[(&str, &str)]) {
        *self.inner.answer_headers.lock().unwrap() = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// Chat requests answered (not refused by an enforced quota).
    pub fn served(&self) -> usize {
        self.hits() - self.inner.refused.load(Ordering::SeqCst)
    }

    /// Chat requests received so far.
    pub fn hits(&self) -> usize {
        self.inner.chat_hits.load(Ordering::SeqCst)
    }

    /// Streamed answers the gateway stopped reading before their end (it cancelled them).
    pub fn cancelled(&self) -> usize {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn last_chat(&self) -> Recorded {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.path.ends_with("/chat/completions") || r.path.ends_with("/messages"))
            .expect("no chat request yet")
    }
}

/// A loopback address where nothing listens: connecting to it is refused.
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn record(inner: &Inner, path: &str, headers: &HeaderMap, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    inner.requests.lock().unwrap().push(Recorded {
        path: path.to_owned(),
        headers: headers.clone(),
        body: v.clone(),
    });
    v
}

async fn models(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    record(&inner, "/v1/models", &headers, b"");
    let b = inner.behavior.lock().unwrap().clone();
    match b {
        Behavior::Stall => std::future::pending().await,
        Behavior::Status { status, .. } if status >= 500 || status == 401 || status == 403 => {
            StatusCode::from_u16(status).unwrap().into_response()
        }
        _ => axum::Json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": inner.name}]}))
            .into_response(),
    }
}

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = record(&inner, "/v1/chat/completions", &headers, &body);
    let seen = inner.chat_hits.fetch_add(1, Ordering::SeqCst);
    let quota = inner.quota.lock().unwrap().clone();
    if let Some(q) = quota.filter(|q| seen - inner.refused.load(Ordering::SeqCst) >= q.max) {
        inner.refused.fetch_add(1, Ordering::SeqCst);
        return status_response(q.status, q.body, q.headers);
    }
    let answer_headers = inner.answer_headers.lock().unwrap().clone();
    let mut resp = chat_answer(&inner, &req).await;
    for (k, v) in answer_headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

async fn chat_answer(inner: &Inner, req: &Value) -> Response {
    let behavior = inner.behavior.lock().unwrap().clone();
    let stream = req["stream"] == json!(true);
    match behavior {
        Behavior::Status { status, body, headers } => return status_response(status, body, headers),
        Behavior::Stall => return std::future::pending().await,
        Behavior::Garbage if !stream => {
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(r#"{"id":"chatcmpl-fake","object":"chat.completion","choi"#))
                .unwrap();
        }
        Behavior::Garbage => {
            return Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from("data: {\"choices\": [{\"delta\": \n\n"))
                .unwrap();
        }
        _ => {}
    }
    let model = req["model"].as_str().unwrap_or("?").to_owned();
    let mut text = format!("hello from {}", inner.name);
    let mut tool = req["tools"][0]["function"]["name"].as_str().map(str::to_owned);
    let mut arguments = "{\"city\":\"Paris\"}".to_owned();
    if let Behavior::UseTool {
        tool: wanted,
        arguments: args,
    } = &behavior
    {
        let last = req["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        let offered = req["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["function"]["name"] == json!(wanted));
        tool = None;
        if last["role"] == "tool" {
            text = format!(
                "hello from {}; the tool said: {}",
                inner.name,
                last["content"].as_str().unwrap_or("").trim()
            );
        } else if offered {
            tool = Some(wanted.clone());
            arguments.clone_from(args);
        }
    }
    let prompt_tokens = 7;
    let words: Vec<String> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| if i == 0 { w.to_owned() } else { format!(" {w}") })
        .collect();
    let completion_tokens = words.len() as u64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    if !stream {
        let message = match &tool {
            Some(name) => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]}),
            None => json!({"role": "assistant", "content": text}),
        };
        let finish = if tool.is_some() { "tool_calls" } else { "stop" };
        return axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<String> = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string()];
    match &tool {
        Some(name) => events.push(
            chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]}), Value::Null)
                .to_string(),
        ),
        None => events.extend(words.iter().map(|w| chunk(json!({"content": w}), Value::Null).to_string())),
    }
    events.push(chunk(json!({}), json!(if tool.is_some() { "tool_calls" } else { "stop" })).to_string());
    if req["stream_options"]["include_usage"] == json!(true) {
        events.push(json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": usage}).to_string());
    }
    events.push("[DONE]".to_owned());

    let (delay, break_after, stall_after_headers) = match behavior {
        Behavior::Slow(d) => (Some(d), None, false),
        Behavior::BreakAfter(n) => (None, Some(n), false),
        Behavior::StallAfterHeaders => (None, None, true),
        Behavior::EndWithoutDone(n) => {
            events.truncate(n);
            (None, None, false)
        }
        _ => (None, None, false),
    };
    let guard = Arc::new(Mutex::new(CancelGuard {
        count: inner.cancelled.clone(),
        left: events.len(),
    }));
    let body = futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| {
        let guard = guard.clone();
        async move {
            guard.lock().unwrap().left -= 1;
            if stall_after_headers {
                std::future::pending::<()>().await;
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if break_after.is_some_and(|n| i >= n) {
                // Let what was sent so far reach the wire before the connection dies.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(std::io::Error::other("fake upstream breaks the connection"));
            }
            Ok::<_, std::io::Error>(Bytes::from(format!("data: {e}\n\n")))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

fn status_response(status: u16, body: String, headers: Vec<(String, String)>) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(Body::from(body)).unwrap()
}

/// `POST /v1/messages`: a fake Anthropic. Answers "hello from NAME" as a Messages answer, or as
/// the full event sequence when streaming; the error behaviours as for chat.
async fn messages(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = record(&inner, "/v1/messages", &headers, &body);
    inner.chat_hits.fetch_add(1, Ordering::SeqCst);
    let behavior = inner.behavior.lock().unwrap().clone();
    match behavior {
        Behavior::Status { status, body, headers } => return status_response(status, body, headers),
        Behavior::Stall => return std::future::pending().await,
        _ => {}
    }
    let model = req["model"].as_str().unwrap_or("?").to_owned();
    let text = format!("hello from {}", inner.name);
    let usage = json!({"input_tokens": 9, "cache_read_input_tokens": 3, "output_tokens": 3});
    if req["stream"] != json!(true) {
        return axum::Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
        }))
        .into_response();
    }
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 9, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    for (i, w) in text.split(' ').enumerate() {
        let w = if i == 0 { w.to_owned() } else { format!(" {w}") };
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 3}}));
    events.push(json!({"type": "message_stop"}));
    let break_after = match behavior {
        Behavior::BreakAfter(n) => Some(n),
        _ => None,
    };
    let body = futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, e)| async move {
        if break_after.is_some_and(|n| i >= n) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(std::io::Error::other("fake upstream breaks the connection"));
        }
        let name = e["type"].as_str().unwrap_or("x").to_owned();
        Ok::<_, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {e}\n\n")))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

/// `POST /v1/messages/count_tokens`: always 42.
async fn count_tokens(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&inner, "/v1/messages/count_tokens", &headers, &body);
    axum::Json(json!({"input_tokens": 42})).into_response()
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

struct ReceiverInner {
    got: Mutex<Vec<Delivery>>,
    /// Answer 500 to this many requests before accepting.
    fail_first: AtomicUsize,
    /// Hold every request open without answering.
    stall: std::sync::atomic::AtomicBool,
    attempts: AtomicUsize,
}

/// A notification endpoint (Slack, a webhook, ntfy): records every POST it accepts, and can
/// fail the first few or hang, as a real one sometimes does.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<ReceiverInner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(ReceiverInner {
            got: Mutex::new(Vec::new()),
            fail_first: AtomicUsize::new(0),
            stall: std::sync::atomic::AtomicBool::new(false),
            attempts: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn fail_first(&self, n: usize) {
        self.inner.fail_first.store(n, Ordering::SeqCst);
    }

    pub fn stall(&self, on: bool) {
        self.inner.stall.store(on, Ordering::SeqCst);
    }

    /// Requests that arrived, accepted or not.
    pub fn attempts(&self) -> usize {
        self.inner.attempts.load(Ordering::SeqCst)
    }

    /// Accepted deliveries so far.
    pub fn got(&self) -> Vec<Delivery> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Waits up to `within` until `check` holds for the deliveries; returns them either way.
    pub async fn wait_until(&self, within: Duration, check: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let got = self.got();
            if check(&got) || tokio::time::Instant::now() >= end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(
    State(inner): State<Arc<ReceiverInner>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.attempts.fetch_add(1, Ordering::SeqCst);
    if inner.stall.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let failing = inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response();
    }
    inner.got.lock().unwrap().push(Delivery {
        path: uri.path().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    (StatusCode::OK, "ok").into_response()
}

/// Counts a streamed answer as cancelled when its body is dropped with events still unsent.
struct CancelGuard {
    count: Arc<AtomicUsize>,
    left: usize,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.left > 0 {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A loopback address that accepts connections and resets them at once (TCP RST), as a
/// crashed server behind a load balancer can.
pub async fn resetting_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            // SO_LINGER with a zero timeout makes the close send RST instead of FIN.
            s.set_zero_linger().unwrap();
            drop(s);
        }
    });
    addr
}
