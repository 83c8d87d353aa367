//! Lanes served in-process: the interface between the executor and an embedded engine.
//!
//! The engine itself (llama.cpp) lives in `switchyard-engine`, the only crate that builds C++;
//! the binary hands the gateway a factory for it. Here the engine's events are turned into
//! exactly the bytes an OpenAI-compatible upstream would send (a `chat.completion`, or SSE
//! chunks ending in `[DONE]`), so one relay, one ledger path and one set of tests serve both.

use crate::classify::{ErrorClass, UpstreamError};
use crate::config::ProviderConfig;
use crate::upstream::{Started, UpstreamStream};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_protocol::openai::{ChatRequest, Role, Usage, build};
use switchyard_protocol::sse::{SseDecoder, SseEvent};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub struct LocalMessage {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalRequest {
    pub messages: Vec<LocalMessage>,
    pub max_tokens: Option<u32>,
    /// 0 means greedy.
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u32>,
    pub stop: Vec<String>,
    /// Generate through end-of-generation tokens and the prompt format's own stops, until
    /// `max_tokens` or a caller's stop (llama-server's and vLLM's `ignore_eos`; for benchmarks).
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// One of the caller's stop sequences (this one) ended the answer.
    StopSequence(String),
    Length,
}

impl Finish {
    pub fn as_str(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::StopSequence(_) => "stop",
            Finish::Length => "length",
        }
    }

    /// The matched stop sequence, reported beside `finish_reason` as vLLM does (`stop_reason`),
    /// so an Anthropic client gets `stop_reason: stop_sequence` and which one.
    pub fn stop_sequence(&self) -> Option<&str> {
        match self {
            Finish::StopSequence(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LocalEvent {
    Text(String),
    Done { finish: Finish, usage: Usage },
    Failed(LocalError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LocalError {
    /// The queue is full: try another lane.
    Overloaded(String),
    /// The engine cannot run (model missing, failed to load …).
    Unavailable(String),
    /// The prompt does not fit the context.
    ContextOverflow(String),
}

impl LocalError {
    fn into_upstream(self) -> UpstreamError {
        match self {
            LocalError::Overloaded(m) => UpstreamError::transport(ErrorClass::Overloaded, m),
            LocalError::Unavailable(m) => UpstreamError::transport(ErrorClass::Unavailable, m),
            LocalError::ContextOverflow(m) => UpstreamError::transport(ErrorClass::ContextOverflow, m),
        }
    }
}

impl std::fmt::Display for LocalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalError::Overloaded(m) | LocalError::Unavailable(m) | LocalError::ContextOverflow(m) => f.write_str(m),
        }
    }
}

/// An in-process model. Dropping the receiver cancels the generation.
pub trait LocalEngine: Send + Sync + 'static {
    fn generate(&self, req: LocalRequest) -> Result<mpsc::Receiver<LocalEvent>, LocalError>;
    /// The model's name, as it appears in answers.
    fn model(&self) -> &str;
}

/// Builds the engine of an `embedded` provider. Supplied by the binary.
pub type EngineFactory = Arc<dyn Fn(&ProviderConfig) -> Result<Arc<dyn LocalEngine>, String> + Send + Sync>;

fn unsupported(msg: String) -> UpstreamError {
    UpstreamError::transport(ErrorClass::Unsupported, msg)
}

/// What the engine is asked. Requests it cannot honour (images, tools) are refused with
/// `unsupported`, which falls back to the next lane.
pub fn to_local(req: &ChatRequest) -> Result<LocalRequest, UpstreamError> {
    if req.has_tools() {
        return Err(unsupported("the embedded model cannot call tools".into()));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool | Role::Function => {
                return Err(unsupported("the embedded model cannot take tool results".into()));
            }
        };
        let content = match &m.content {
            None => String::new(),
            Some(c) => c
                .text_only()
                .ok_or_else(|| unsupported("the embedded model reads text only (no images, audio or files)".into()))?,
        };
        messages.push(LocalMessage { role, content });
    }
    let num = |k: &str| req.extra.get(k).and_then(Value::as_f64);
    let stop = match req.extra.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    Ok(LocalRequest {
        messages,
        max_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .map(|n| n.min(u64::from(u32::MAX)) as u32),
        temperature: num("temperature").map(|t| t as f32),
        top_p: num("top_p").map(|t| t as f32),
        seed: req.extra.get("seed").and_then(Value::as_u64).map(|s| s as u32),
        stop,
        ignore_eos: req.extra.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts a generation and waits for its first event, like an upstream's first byte.
pub async fn send(
    engine: &dyn LocalEngine,
    req: &ChatRequest,
    stream: bool,
    first_byte: Duration,
) -> Result<Started, UpstreamError> {
    let lreq = to_local(req)?;
    let mut rx = engine.generate(lreq).map_err(LocalError::into_upstream)?;
    let first = match tokio::time::timeout(first_byte, rx.recv()).await {
        Err(_) => {
            return Err(UpstreamError::transport(
                ErrorClass::Timeout,
                format!("no token within {first_byte:?}"),
            ));
        }
        Ok(None) => {
            return Err(UpstreamError::transport(
                ErrorClass::Unavailable,
                "the engine stopped without answering",
            ));
        }
        Ok(Some(LocalEvent::Failed(e))) => return Err(e.into_upstream()),
        Ok(Some(ev)) => ev,
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let model = engine.model().to_owned();
    let created = now_secs();
    if !stream {
        let mut text = String::new();
        let mut ev = Some(first);
        loop {
            match ev {
                Some(LocalEvent::Text(t)) => text.push_str(&t),
                Some(LocalEvent::Done { finish, usage }) => {
                    let mut body = build::completion(&id, &model, created, &text, finish.as_str(), usage);
                    if let Some(stop) = finish.stop_sequence() {
                        body = build::with_stop_reason(&body, stop);
                    }
                    return Ok(Started::Complete {
                        body: Bytes::from(body),
                        usage: Some(usage),
                        observed: Vec::new(),
                    });
                }
                Some(LocalEvent::Failed(e)) => return Err(e.into_upstream()),
                None => {
                    return Err(UpstreamError::transport(
                        ErrorClass::Unavailable,
                        "the engine stopped mid-answer",
                    ));
                }
            }
            ev = rx.recv().await;
        }
    }
    let mut encoder = ChunkEncoder {
        id,
        model,
        created,
        first: true,
    };
    let first_events = encoder
        .encode(first)
        .into_iter()
        .map(|data| SseEvent { event: None, data })
        .collect();
    let rest = futures_util::stream::unfold((rx, encoder), |(mut rx, mut enc)| async move {
        let ev = rx.recv().await?;
        let mut bytes = Vec::new();
        for data in enc.encode(ev) {
            switchyard_protocol::sse::encode_data(&mut bytes, None, &data);
        }
        Some((Ok(Bytes::from(bytes)), (rx, enc)))
    })
    .boxed();
    Ok(Started::Stream(UpstreamStream {
        first: first_events,
        decoder: SseDecoder::new(),
        rest,
        observed: Vec::new(),
    }))
}

struct ChunkEncoder {
    id: String,
    model: String,
    created: u64,
    first: bool,
}

impl ChunkEncoder {
    /// The SSE `data` payloads for one engine event.
    fn encode(&mut self, ev: LocalEvent) -> Vec<String> {
        let first = std::mem::replace(&mut self.first, false);
        match ev {
            LocalEvent::Text(t) => vec![build::chunk(&self.id, &self.model, self.created, Some(&t), first, None)],
            LocalEvent::Done { finish, usage } => {
                vec![
                    {
                        let c = build::chunk(&self.id, &self.model, self.created, None, first, Some(finish.as_str()));
                        match finish.stop_sequence() {
                            Some(stop) => build::with_stop_reason(&c, stop),
                            None => c,
                        }
                    },
                    build::usage_chunk(&self.id, &self.model, self.created, usage),
                    "[DONE]".to_owned(),
                ]
            }
            LocalEvent::Failed(e) => {
                let body =
                    switchyard_protocol::openai::ErrorBody::new("server_error", "engine_failed", e.to_string(), None);
                vec![body.to_json()]
            }
        }
    }
}

/// A deterministic engine for tests: answers "echo: <last user message>" word by word, with
/// exact token counts (one per word), honouring `max_tokens`, stop sequences and
/// cancellation, and refusing work past `queue` waiting requests.
pub struct FakeEngine {
    pub delay: Duration,
    permits: Arc<tokio::sync::Semaphore>,
}

impl FakeEngine {
    pub fn new(delay: Duration, queue: usize) -> Self {
        FakeEngine {
            delay,
            permits: Arc::new(tokio::sync::Semaphore::new(queue)),
        }
    }
}

impl LocalEngine for FakeEngine {
    fn generate(&self, req: LocalRequest) -> Result<mpsc::Receiver<LocalEvent>, LocalError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| LocalError::Overloaded("the fake engine's queue is full".into()))?;
        let (tx, rx) = mpsc::channel(16);
        let last = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let text = format!("echo: {last}");
        let prompt_tokens = req
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count() as u64 + 1)
            .sum();
        let delay = self.delay;
        tokio::spawn(async move {
            let _permit = permit;
            let mut produced = String::new();
            let mut n = 0u64;
            let max = req.max_tokens.map_or(u64::MAX, u64::from);
            let mut finish = Finish::Stop;
            for (i, w) in text.split(' ').enumerate() {
                if n >= max {
                    finish = Finish::Length;
                    break;
                }
                let piece = if i == 0 { w.to_owned() } else { format!(" {w}") };
                produced.push_str(&piece);
                n += 1;
                if let Some(s) = req.stop.iter().find(|s| produced.contains(s.as_str())) {
                    finish = Finish::StopSequence(s.clone());
                    break;
                }
                tokio::time::sleep(delay).await;
                if tx.send(LocalEvent::Text(piece)).await.is_err() {
                    return; // cancelled by the client
                }
            }
            let usage = Usage {
                prompt_tokens,
                completion_tokens: n,
                total_tokens: prompt_tokens + n,
            };
            let _ = tx.send(LocalEvent::Done { finish, usage }).await;
        });
        Ok(rx)
    }

    fn model(&self) -> &str {
        "fake-echo"
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_a_text_model_cannot_serve_are_unsupported() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
        );
        assert_eq!(to_local(&r).unwrap_err().class, ErrorClass::Unsupported);
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert_eq!(to_local(&r).unwrap_err().class, ErrorClass::Unsupported);
        let r = req(
            json!({"model": "m", "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                            "max_tokens": 5, "temperature": 0, "seed": 7, "stop": ["\n"]}),
        );
        let l = to_local(&r).unwrap();
        assert_eq!(
            l.messages[0],
            LocalMessage {
                role: "system",
                content: "be brief".into()
            }
        );
        assert_eq!(
            (l.max_tokens, l.temperature, l.seed, l.stop.clone()),
            (Some(5), Some(0.0), Some(7), vec!["\n".to_owned()])
        );
        assert!(!l.ignore_eos);
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "ignore_eos": true}));
        assert!(to_local(&r).unwrap().ignore_eos);
    }

    #[tokio::test]
    async fn engine_output_becomes_openai_answers() {
        let engine = FakeEngine::new(Duration::ZERO, 4);
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 3}));
        let Started::Complete { body, usage, .. } = send(&engine, &r, false, Duration::from_secs(5)).await.unwrap()
        else {
            panic!("expected a complete answer")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "echo: one two");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(usage.unwrap().completion_tokens, 3);

        let Started::Stream(mut s) = send(&engine, &r, true, Duration::from_secs(5)).await.unwrap() else {
            panic!("expected a stream")
        };
        let mut events = std::mem::take(&mut s.first);
        while let Some(chunk) = s.rest.next().await {
            s.decoder.push(&chunk.unwrap(), &mut events);
        }
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data.last(), Some(&"[DONE]"));
        let first: Value = serde_json::from_str(data[0]).unwrap();
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "echo:"})
        );
        let usage: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], 3);
    }

    #[tokio::test]
    async fn a_full_queue_is_overloaded() {
        let engine = FakeEngine::new(Duration::from_secs(60), 1);
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        let _held = engine.generate(to_local(&r).unwrap()).unwrap();
        let e = send(&engine, &r, true, Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(e.class, ErrorClass::Overloaded);
    }
}
