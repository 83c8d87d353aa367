//! An HTTP upstream (OpenAI-compatible or native Anthropic): one pooled HTTP client per
//! provider, the request, the time-to-first-byte bound, and the classification of whatever
//! comes back. Bodies arrive here already in the provider's dialect; answers leave in it too
//! (the gateway translates).
//!
//! "First byte" means the answer has begun in a form the client can be given: for a plain
//! request the whole (2xx) body, for a stream its first complete event. Until then every
//! failure can still fall back to the next lane.

use crate::classify::{ErrorClass, UpstreamError, classify_status};
use crate::config::{ProviderConfig, ProviderKind};
use crate::ratelimit::{self, Observed};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::ExposeSecret;
use std::sync::Once;
use std::time::Duration;
use switchyard_protocol::Dialect;
use switchyard_protocol::anthropic;
use switchyard_protocol::openai::{ChunkProbe, ResponseProbe, Usage};
use switchyard_protocol::sse::{SseDecoder, SseEvent};
use tokio::time::{Instant, timeout_at};

/// Error bodies are read up to this size; the rest is not needed to classify them.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Pooled connections: how long one may sit idle, and how many per host.
const POOL_IDLE: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE: usize = 1024;
/// TCP keep-alive probes on upstream connections: first after this long idle, then this often.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

pub struct Upstream {
    pub config: ProviderConfig,
    client: Client,
    chat_url: Endpoint,
    models_url: Endpoint,
    count_url: Endpoint,
    headers: HeaderMap,
}

/// How requests reach the provider.
enum Client {
    /// Plain HTTP that no proxy in the environment intercepts (a server on this machine or
    /// the user's own: Ollama, llama.cpp, vLLM): hyper's pooled client, directly. reqwest's
    /// layers above it (redirect and retry services, which parse the URL again on every
    /// request) were about a quarter of the request path's instructions.
    Direct(Box<hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>>),
    /// TLS (HTTP/2 where the server offers it), or a proxy from `HTTP_PROXY` and its kin.
    Reqwest(reqwest::Client),
}

/// A provider URL, parsed once for either client.
struct Endpoint {
    uri: Uri,
    url: reqwest::Url,
}

/// An answer's body, from either client. Its errors are already described (never a URL).
type Body = UnsyncBoxBody<Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A started answer.
pub enum Started {
    Complete {
        body: Bytes,
        usage: Option<Usage>,
        /// Budgets the provider reported in its headers.
        observed: Vec<Observed>,
    },
    Stream(UpstreamStream),
}

impl Started {
    /// Budgets the provider reported in its headers.
    pub fn observed_mut(&mut self) -> &mut Vec<Observed> {
        match self {
            Started::Complete { observed, .. } => observed,
            Started::Stream(s) => &mut s.observed,
        }
    }
}

/// A stream whose first event has arrived.
pub struct UpstreamStream {
    /// Events decoded so far (at least one).
    pub first: Vec<SseEvent>,
    pub decoder: SseDecoder,
    pub rest: BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// Budgets the provider reported in its headers.
    pub observed: Vec<Observed>,
}

/// Installs the TLS crypto provider (ring) once per process. Every HTTP client needs it.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    // Another component may have installed a provider first; either is fine.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Upstream {
    pub fn new(config: ProviderConfig) -> Result<Self, String> {
        install_crypto();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("switchyard/", env!("CARGO_PKG_VERSION"))),
        );
        let bad_key = || {
            format!(
                "provider `{}`: api_key contains characters not allowed in a header",
                config.name
            )
        };
        if config.kind == ProviderKind::Anthropic {
            headers.insert("anthropic-version", HeaderValue::from_static(anthropic::VERSION));
        }
        if let Some(key) = &config.api_key {
            let (name, mut v) = match config.kind {
                ProviderKind::OpenAi => (
                    header::AUTHORIZATION,
                    HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).map_err(|_| bad_key())?,
                ),
                ProviderKind::Anthropic => (
                    http::HeaderName::from_static("x-api-key"),
                    HeaderValue::from_str(key.expose_secret()).map_err(|_| bad_key())?,
                ),
            };
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        let url = |path: &str| {
            let bad =
                |e: &dyn std::fmt::Display| format!("provider `{}`: base_url is not a valid URL: {e}", config.name);
            let url = reqwest::Url::parse(&format!("{}/{path}", config.base_url)).map_err(|e| bad(&e))?;
            let uri = url.as_str().parse::<Uri>().map_err(|e| bad(&e))?;
            Ok::<_, String>(Endpoint { uri, url })
        };
        let (chat, count) = match config.kind {
            ProviderKind::OpenAi => ("chat/completions", "chat/completions/input_tokens"),
            ProviderKind::Anthropic => ("messages", "messages/count_tokens"),
        };
        let chat_url = url(chat)?;
        let proxied = hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(&chat_url.uri)
            .is_some();
        let client = if chat_url.uri.scheme() == Some(&http::uri::Scheme::HTTP) && !proxied {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(config.timeouts.connect));
            connector.set_nodelay(true);
            // As reqwest does: a pooled connection to a peer that vanished is found out.
            connector.set_keepalive(Some(TCP_KEEPALIVE));
            connector.set_keepalive_interval(Some(TCP_KEEPALIVE));
            connector.set_keepalive_retries(Some(3));
            Client::Direct(Box::new(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_max_idle_per_host(POOL_MAX_IDLE)
                    .pool_timer(hyper_util::rt::TokioTimer::new())
                    .build(connector),
            ))
        } else {
            Client::Reqwest(
                reqwest::Client::builder()
                    .connect_timeout(config.timeouts.connect)
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_max_idle_per_host(POOL_MAX_IDLE)
                    .tcp_nodelay(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("provider `{}`: cannot build its HTTP client: {e}", config.name))?,
            )
        };
        Ok(Upstream {
            chat_url,
            models_url: url("models")?,
            count_url: url(count)?,
            config,
            client,
            headers,
        })
    }

    /// Sends one request with this provider's headers (and `extra`'s, which replace them) and
    /// waits for the answer's head.
    async fn request(
        &self,
        method: Method,
        to: &Endpoint,
        extra: Option<&HeaderMap>,
        body: Vec<u8>,
    ) -> Result<http::Response<Body>, UpstreamError> {
        let mut headers = self.headers.clone();
        if let Some(extra) = extra {
            for name in extra.keys() {
                headers.remove(name);
            }
            headers.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        match &self.client {
            Client::Direct(client) => {
                let mut req = http::Request::new(Full::new(Bytes::from(body)));
                *req.method_mut() = method;
                *req.uri_mut() = to.uri.clone();
                *req.headers_mut() = headers;
                match client.request(req).await {
                    Ok(resp) => Ok(resp.map(|b| b.map_err(|e| BoxError::from(describe_chain(&e))).boxed_unsync())),
                    Err(e) => {
                        let class = if e.is_connect() {
                            ErrorClass::Connect
                        } else {
                            ErrorClass::Unavailable
                        };
                        Err(UpstreamError::transport(class, describe_chain(&e)))
                    }
                }
            }
            Client::Reqwest(client) => {
                match client
                    .request(method, to.url.clone())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        Ok(http::Response::from(resp)
                            .map(|b| b.map_err(|e| BoxError::from(describe(&e))).boxed_unsync()))
                    }
                    Err(e) => Err(transport_error(&e)),
                }
            }
        }
    }

    /// The dialect its answers come in.
    pub fn dialect(&self) -> Dialect {
        match self.config.kind {
            ProviderKind::OpenAi => Dialect::OpenAi,
            ProviderKind::Anthropic => Dialect::Anthropic,
        }
    }

    /// Anthropic's `count_tokens`: the exact input tokens of a Messages body.
    pub async fn count_tokens(&self, body: Vec<u8>, extra: &HeaderMap) -> Result<u64, UpstreamError> {
        self.count_tokens_inner(body, extra).await.map_err(|e| self.scrub(e))
    }

    /// An upstream's error text goes to the ledger, the log and the caller: some providers
    /// echo the key they were sent ("Incorrect API key provided: sk-…"). Never pass it on.
    fn scrub(&self, mut e: UpstreamError) -> UpstreamError {
        if let Some(key) = &self.config.api_key {
            let key = key.expose_secret();
            if key.len() >= 6 && e.message.contains(key) {
                e.message = e.message.replace(key, "[redacted]");
            }
        }
        e
    }

    async fn count_tokens_inner(&self, body: Vec<u8>, extra: &HeaderMap) -> Result<u64, UpstreamError> {
        let req = self.request(Method::POST, &self.count_url, Some(extra), body);
        let resp = match tokio::time::timeout(self.config.timeouts.first_byte, req).await {
            Err(_) => return Err(self.timed_out(self.config.timeouts.first_byte)),
            Ok(r) => r?,
        };
        let status = resp.status().as_u16();
        let deadline = Instant::now() + self.config.timeouts.idle;
        let body = read_limited(resp, deadline, MAX_ERROR_BODY).await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(classify_status(status, &HeaderMap::new(), &body));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("input_tokens").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| {
                UpstreamError::transport(ErrorClass::BadResponse, "count_tokens answer has no `input_tokens`")
            })
    }

    /// Sends one chat request (already in this provider's dialect) and waits for its first
    /// byte. `extra` headers go with it (a client's `anthropic-beta` on a passthrough).
    pub async fn send(&self, body: Vec<u8>, stream: bool, extra: &HeaderMap) -> Result<Started, UpstreamError> {
        self.send_inner(body, stream, extra).await.map_err(|e| self.scrub(e))
    }

    async fn send_inner(&self, body: Vec<u8>, stream: bool, extra: &HeaderMap) -> Result<Started, UpstreamError> {
        let t = self.config.timeouts;
        let deadline = Instant::now() + t.first_byte;
        let req = self.request(Method::POST, &self.chat_url, (!extra.is_empty()).then_some(extra), body);
        let resp = match timeout_at(deadline, req).await {
            Err(_) => return Err(self.timed_out(t.first_byte)),
            Ok(r) => r?,
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = resp.headers().clone();
            let body = read_limited(resp, deadline, MAX_ERROR_BODY).await.unwrap_or_default();
            return Err(classify_status(status, &headers, &body));
        }
        let observed = ratelimit::observe(resp.headers(), crate::clock::wall_now_ms());
        if !stream {
            // The body of a plain answer arrives all at once when generation ends; give it the
            // idle allowance on top of what is left of the first-byte one.
            let body = match timeout_at(deadline.max(Instant::now()) + t.idle, resp.into_body().collect()).await {
                Err(_) => return Err(self.timed_out(t.first_byte)),
                Ok(Err(e)) => return Err(UpstreamError::transport(ErrorClass::Unavailable, e.to_string())),
                Ok(Ok(b)) => b.to_bytes(),
            };
            let usage = match self.config.kind {
                ProviderKind::OpenAi => {
                    serde_json::from_slice::<ResponseProbe>(&body)
                        .map_err(|e| {
                            UpstreamError::transport(ErrorClass::BadResponse, format!("answer is not valid JSON: {e}"))
                        })?
                        .usage
                }
                ProviderKind::Anthropic => anthropic::response_usage(&body),
            };
            return Ok(Started::Complete { body, usage, observed });
        }
        let mut rest = resp
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other)
            .boxed();
        let mut decoder = SseDecoder::new();
        let mut first = Vec::new();
        while first.is_empty() {
            match timeout_at(deadline, rest.next()).await {
                Err(_) => return Err(self.timed_out(t.first_byte)),
                Ok(Some(Ok(chunk))) => decoder.push(&chunk, &mut first),
                Ok(Some(Err(e))) => {
                    return Err(UpstreamError::transport(
                        ErrorClass::StreamInterrupted,
                        format!("stream broke before its first event: {e}"),
                    ));
                }
                Ok(None) => {
                    decoder.finish(&mut first);
                    if first.is_empty() {
                        return Err(UpstreamError::transport(
                            ErrorClass::BadResponse,
                            "stream ended without any event",
                        ));
                    }
                }
            }
        }
        // A first event that is not JSON is not an answer (a proxy's error page, a broken
        // server): before the first byte reaches the client, that is a fallback case.
        let probe = match first.first() {
            Some(e) if e.data.trim() != "[DONE]" => match serde_json::from_str::<ChunkProbe>(&e.data) {
                Ok(p) => Some(p),
                Err(err) => {
                    return Err(UpstreamError::transport(
                        ErrorClass::BadResponse,
                        format!("the stream's first event is not JSON: {err}"),
                    ));
                }
            },
            _ => None,
        };
        // Some providers (OpenRouter among them) report a failure as a 200 whose first event is
        // an error. Before the first byte reaches the client that is still a fallback case.
        if let Some(err) = probe.and_then(|p| p.error) {
            let status = err
                .get("code")
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(502);
            let body = serde_json::to_vec(&serde_json::json!({ "error": err })).unwrap_or_default();
            let mut e = classify_status(status, &HeaderMap::new(), &body);
            if e.class == ErrorClass::BadRequest {
                e.class = ErrorClass::BadResponse;
            }
            return Err(e);
        }
        Ok(Started::Stream(UpstreamStream {
            first,
            decoder,
            rest,
            observed,
        }))
    }

    /// Is the provider answering? Any HTTP answer below 500 except an auth refusal counts:
    /// a server that says 404 to `/models` is up.
    pub async fn probe(&self) -> bool {
        let req = self.request(Method::GET, &self.models_url, None, Vec::new());
        match tokio::time::timeout(self.config.timeouts.connect + Duration::from_secs(5), req).await {
            Ok(Ok(r)) => {
                let s = r.status().as_u16();
                s < 500 && s != 401 && s != 403
            }
            _ => false,
        }
    }

    fn timed_out(&self, after: Duration) -> UpstreamError {
        UpstreamError::transport(
            ErrorClass::Timeout,
            format!("no answer within {:?} (first_byte timeout)", after),
        )
    }
}

async fn read_limited(resp: http::Response<Body>, deadline: Instant, limit: usize) -> Option<Vec<u8>> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while out.len() < limit {
        match timeout_at(deadline.max(Instant::now() + Duration::from_secs(1)), body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(c) = f.data_ref() {
                    out.extend_from_slice(c);
                }
            }
            _ => break,
        }
    }
    out.truncate(limit);
    Some(out)
}

/// What a hyper error's cause chain says happened (connection refused, reset). hyper's own
/// messages carry no URL.
fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    deepest_cause(e).unwrap_or_else(|| e.to_string())
}

/// reqwest's own Display is "error sending request for url (…)"; the cause chain says what
/// actually happened (connection refused, reset, DNS).
fn describe(e: &reqwest::Error) -> String {
    // Without a cause, say what kind of failure it was; reqwest's Display would print the URL,
    // and a URL may carry a key in its query.
    deepest_cause(e).unwrap_or_else(|| {
        if e.is_timeout() {
            "timed out".into()
        } else if e.is_body() || e.is_decode() {
            "the answer's body could not be read".into()
        } else {
            "the request failed".into()
        }
    })
}

/// The message of the last error in `e`'s chain of causes, if it has one and it says something.
fn deepest_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut last = None;
    let mut src = e.source();
    while let Some(s) = src {
        last = Some(s);
        src = s.source();
    }
    last.map(ToString::to_string).filter(|m| !m.is_empty())
}

fn transport_error(e: &reqwest::Error) -> UpstreamError {
    let class = if e.is_connect() {
        ErrorClass::Connect
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Unavailable
    };
    UpstreamError::transport(class, describe(e))
}
