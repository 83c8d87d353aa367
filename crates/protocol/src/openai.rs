//! The OpenAI chat-completions dialect, which is also the gateway's canonical request.
//!
//! Fields the gateway acts on are typed (and so validated); everything else a client sends is
//! kept in `extra` and passed through untouched, so provider-specific options (`keep_alive`,
//! `reasoning_effort`, `seed` …) reach the upstream. Unknown *roles* and unknown content part
//! types are errors: a lane cannot be expected to understand them.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Everything else, passed through as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// A reasoning request that arrived in another dialect (Anthropic's `thinking`). It is
    /// never sent as is: the gateway maps it for lanes that can think (`reasoning_effort`,
    /// Anthropic `thinking`) and drops it for the others.
    #[serde(skip)]
    pub reasoning: Option<Reasoning>,
}

/// How hard a model should think, in the terms both dialects can express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoning {
    /// `low`, `medium` or `high` (OpenAI's `reasoning_effort`).
    pub effort: String,
    /// Anthropic's `budget_tokens`, when the caller gave one.
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

// Hand-written so that a wrong type says what would be valid; an untagged derive only says
// "data did not match any variant".
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: Value },
    File { file: Value },
    Refusal { refusal: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: Value },
}

/// Why a request body was refused. `path` is where in the body (`messages[2].role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<String>,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Deserializes a JSON body into `T`. Every failure says where in the body it is, and a body
/// that is not UTF-8 or not JSON says so plainly.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, InvalidRequest> {
    // The plain decoder first: tracking the path costs as much again, and only a failure
    // needs it. A failed body is decoded a second time, the same way, to say where.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => {
            // Checked only on the error path: serde_json already refuses invalid UTF-8,
            // but its message ("invalid unicode code point") does not say so plainly.
            if let Err(u) = std::str::from_utf8(body) {
                return Err(InvalidRequest {
                    message: format!(
                        "request body is not valid UTF-8 (first bad byte at offset {})",
                        u.valid_up_to()
                    ),
                    param: None,
                });
            }
            return Err(path_error(e));
        }
    };
    if let Err(e) = de.end() {
        return Err(InvalidRequest {
            message: format!("request body is not valid JSON: {e}"),
            param: None,
        });
    }
    Ok(value)
}

/// Deserializes an already parsed JSON value into `T`, naming the place of any failure.
pub fn decode_value<'de, T: Deserialize<'de>>(v: &'de Value) -> Result<T, InvalidRequest> {
    // As in `decode`: the path is tracked only to describe a failure.
    T::deserialize(v).or_else(|_| serde_path_to_error::deserialize(v).map_err(path_error))
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> InvalidRequest {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = if inner.is_syntax() || inner.is_eof() {
        format!("request body is not valid JSON: {inner}")
    } else if path == "." {
        format!("invalid request body: {inner}")
    } else {
        format!("invalid value at `{path}`: {inner}")
    };
    InvalidRequest {
        message,
        param: (path != ".").then_some(path),
    }
}

impl ChatRequest {
    /// Parses and validates a request body. Every failure names where in the body it is.
    pub fn from_slice(body: &[u8]) -> Result<Self, InvalidRequest> {
        let req: ChatRequest = decode(body)?;
        req.validate()?;
        Ok(req)
    }

    fn validate(&self) -> Result<(), InvalidRequest> {
        let bad = |param: String, message: String| {
            Err(InvalidRequest {
                message,
                param: Some(param),
            })
        };
        if self.model.is_empty() {
            return bad(
                "model".into(),
                "`model` must not be empty; GET /v1/models lists the routes and lanes".into(),
            );
        }
        if self.messages.is_empty() {
            return bad("messages".into(), "`messages` must contain at least one message".into());
        }
        for (i, m) in self.messages.iter().enumerate() {
            match m.role {
                Role::Tool if m.tool_call_id.is_none() => {
                    return bad(
                        format!("messages[{i}].tool_call_id"),
                        format!("messages[{i}] has role `tool` but no `tool_call_id`"),
                    );
                }
                Role::Assistant if m.content.is_none() && m.tool_calls.is_none() => {
                    return bad(
                        format!("messages[{i}].content"),
                        format!("messages[{i}] (assistant) needs `content` or `tool_calls`"),
                    );
                }
                Role::Assistant => {}
                _ if m.content.is_none() => {
                    return bad(
                        format!("messages[{i}].content"),
                        format!("messages[{i}] (role `{}`) has no `content`", m.role.as_str()),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Did the client ask for the final usage chunk of a stream?
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    pub fn has_images(&self) -> bool {
        self.messages.iter().any(|m| match &m.content {
            Some(Content::Parts(p)) => p.iter().any(|p| matches!(p, ContentPart::ImageUrl { .. })),
            _ => false,
        })
    }

    pub fn has_tools(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// A reasoning request: OpenAI's `reasoning_effort`, or a `thinking` object as some
    /// OpenAI-compatible servers accept.
    pub fn wants_thinking(&self) -> bool {
        self.extra
            .get("reasoning_effort")
            .is_some_and(|v| !v.is_null() && v != "none")
            || self.extra.get("thinking").is_some_and(|v| !v.is_null())
            || self.reasoning.is_some()
    }

    /// Characters of text in the prompt; the cheap base of the input-token estimate.
    pub fn prompt_chars(&self) -> usize {
        let mut n = 0;
        for m in &self.messages {
            match &m.content {
                Some(Content::Text(t)) => n += t.len(),
                Some(Content::Parts(parts)) => {
                    for p in parts {
                        if let ContentPart::Text { text } = p {
                            n += text.len();
                        }
                    }
                }
                None => {}
            }
            for c in m.tool_calls.iter().flatten() {
                n += c.function.arguments.len();
            }
        }
        // Tool definitions are part of the prompt too, and agents (Claude Code) send dozens.
        for t in self.tools.iter().flatten() {
            if let Some(f) = &t.function {
                n += f.name.len() + f.description.as_ref().map_or(0, String::len);
                n += f.parameters.as_ref().map_or(0, |p| p.to_string().len());
            }
        }
        n
    }

    /// A rough input-token estimate (about four characters a token, plus a little per
    /// message). Used only to choose routes, never for accounting.
    pub fn estimate_input_tokens(&self) -> u64 {
        (self.prompt_chars() as u64).div_ceil(4) + 4 * self.messages.len() as u64
    }
}

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// What the gateway reads of an upstream's non-streamed answer: only the usage. The body
/// itself is passed to the client as received.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseProbe {
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// What the gateway reads of one streamed chunk: the choices only for whether one has
/// finished (an answer that ends before any did was cut short) and how many there are (the
/// usage-only chunk, `choices: []`, is dropped when the client did not ask for it).
#[derive(Debug, Default, Deserialize)]
pub struct ChunkProbe {
    #[serde(default)]
    pub choices: Option<Vec<ChoiceProbe>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChoiceProbe {
    /// Present (not null) on a choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<de::IgnoredAny>,
}

impl ChunkProbe {
    /// A choice ended in this chunk.
    pub fn finished(&self) -> bool {
        self.choices.iter().flatten().any(|c| c.finish_reason.is_some())
    }
}

/// OpenAI's error envelope: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn new(kind: &str, code: &str, message: impl Into<String>, param: Option<String>) -> Self {
        ErrorBody {
            error: ErrorObject {
                message: message.into(),
                kind: kind.to_owned(),
                param,
                code: Some(code.to_owned()),
            },
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing this struct cannot fail: it holds only strings.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"error\":{}}"))
    }
}

/// The message of an upstream's error body, whatever envelope it uses: OpenAI's
/// `{"error":{"message"}}`, Ollama's `{"error":"…"}`, Gemini's `[{"error":{…}}]`, vLLM's
/// `{"object":"error","message"}` or Anthropic's `{"type":"error","error":{…}}`.
pub fn upstream_error_message(body: &[u8]) -> Option<(String, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let v = match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        v => v,
    };
    let code_of = |o: &Value| match o.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => o.get("type").and_then(Value::as_str).map(str::to_owned),
    };
    match v.get("error") {
        Some(Value::String(s)) => Some((s.clone(), None)),
        Some(o @ Value::Object(_)) => Some((o.get("message")?.as_str()?.to_owned(), code_of(o))),
        _ => Some((v.get("message")?.as_str()?.to_owned(), code_of(&v))),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest, InvalidRequest> {
        ChatRequest::from_slice(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn full_request_roundtrips_every_field() {
        let body = json!({
            "model": "default",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 100,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "temperature": 0.2,
            "keep_alive": "10m"
        });
        let req = parse(body.clone()).unwrap();
        assert!(req.is_stream() && req.wants_stream_usage() && req.has_images() && req.has_tools());
        assert_eq!(req.extra.get("keep_alive"), Some(&json!("10m")));
        // Passing through must not add, drop or change anything (nulls aside).
        let mut back = serde_json::to_value(&req).unwrap();
        let mut expected = body;
        expected["messages"][2].as_object_mut().unwrap().remove("content");
        back.as_object_mut().unwrap();
        assert_eq!(back, expected);
    }

    #[test]
    fn errors_name_the_place() {
        let e = parse(json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]})).unwrap_err();
        assert!(
            e.message.contains("messages[0].role") && e.message.contains("unknown variant `robot`"),
            "{e}"
        );
        let e = parse(json!({"model": "m", "messages": [{"role": "user", "content": 5}]})).unwrap_err();
        assert!(e.message.contains("a string or an array of content parts"), "{e}");
        let e = parse(json!({"model": 3, "messages": []})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse(json!({"model": "m", "messages": []})).unwrap_err();
        assert!(e.message.contains("at least one"), "{e}");
        let e = parse(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("tool_call_id"), "{e}");
        let e = parse(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "hologram"}]}]}))
            .unwrap_err();
        assert!(e.message.contains("hologram"), "{e}");
    }

    #[test]
    fn hostile_bodies_are_refused_not_crashed() {
        let deep = "[".repeat(100_000);
        let body = format!("{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"x\",\"x\":{deep}");
        assert!(
            ChatRequest::from_slice(body.as_bytes())
                .unwrap_err()
                .message
                .contains("recursion limit")
        );
        let e = ChatRequest::from_slice(b"{\"model\":\"\xff\xfe\",\"messages\":[]}").unwrap_err();
        assert!(e.message.contains("UTF-8") || e.message.contains("utf-8"), "{e}");
        assert!(
            ChatRequest::from_slice(b"{\"model\":")
                .unwrap_err()
                .message
                .contains("not valid JSON")
        );
        assert!(ChatRequest::from_slice(b"{} trailing").is_err());
        assert!(ChatRequest::from_slice(b"").is_err());
    }

    #[test]
    fn route_rule_inputs() {
        let r = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "abcdefgh"}], "reasoning_effort": "high"}),
        )
        .unwrap();
        assert!(r.wants_thinking() && !r.has_tools() && !r.has_images());
        assert_eq!(r.estimate_input_tokens(), 2 + 4);
    }

    #[test]
    fn upstream_error_envelopes() {
        let cases: [(&[u8], &str, Option<&str>); 5] = [
            (
                br#"{"error":{"message":"m1","type":"t","code":"rate_limit_exceeded"}}"#,
                "m1",
                Some("rate_limit_exceeded"),
            ),
            (br#"{"error":"model not found"}"#, "model not found", None),
            (
                br#"[{"error":{"code":429,"message":"m3","status":"RESOURCE_EXHAUSTED"}}]"#,
                "m3",
                Some("429"),
            ),
            (
                br#"{"object":"error","message":"m4","type":"BadRequestError","code":400}"#,
                "m4",
                Some("400"),
            ),
            (
                br#"{"type":"error","error":{"type":"overloaded_error","message":"m5"}}"#,
                "m5",
                Some("overloaded_error"),
            ),
        ];
        for (body, msg, code) in cases {
            let (m, c) = upstream_error_message(body).unwrap();
            assert_eq!((m.as_str(), c.as_deref()), (msg, code));
        }
        assert!(upstream_error_message(b"<html>").is_none());
    }

    #[test]
    fn chunk_probe_sees_usage_only_chunk() {
        let p: ChunkProbe = serde_json::from_str(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
        )
        .unwrap();
        assert_eq!(p.choices.as_ref().map(Vec::len), Some(0));
        assert!(!p.finished());
        assert_eq!(p.usage.unwrap().completion_tokens, 5);
        let last: ChunkProbe =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert!(last.finished());
        let mid: ChunkProbe =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#).unwrap();
        assert!(!mid.finished());
    }
}

/// Builders for answers the gateway produces itself (the embedded engine), in the exact
/// shapes OpenAI documents, so they pass through the same relay as upstream answers.
pub mod build {
    use super::Usage;
    use serde_json::json;

    /// One `chat.completion.chunk` with a content delta (and the role on the first one).
    pub fn chunk(
        id: &str,
        model: &str,
        created: u64,
        content: Option<&str>,
        first: bool,
        finish: Option<&str>,
    ) -> String {
        let mut delta = serde_json::Map::new();
        if first {
            delta.insert("role".into(), json!("assistant"));
        }
        if let Some(c) = content {
            delta.insert("content".into(), json!(c));
        }
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
        .to_string()
    }

    /// The usage-only chunk that ends a stream when `stream_options.include_usage` is set.
    pub fn usage_chunk(id: &str, model: &str, created: u64, usage: Usage) -> String {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage})
            .to_string()
    }

    /// Adds vLLM's `stop_reason` (the stop sequence that ended the answer) to the first choice
    /// of a built completion or chunk.
    pub fn with_stop_reason(json: &str, stop: &str) -> String {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
            return json.to_owned();
        };
        match v
            .get_mut("choices")
            .and_then(|c| c.get_mut(0))
            .and_then(serde_json::Value::as_object_mut)
        {
            Some(choice) => {
                choice.insert("stop_reason".into(), json!(stop));
                v.to_string()
            }
            None => json.to_owned(),
        }
    }

    /// A whole `chat.completion`.
    pub fn completion(id: &str, model: &str, created: u64, content: &str, finish: &str, usage: Usage) -> String {
        json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        })
        .to_string()
    }
}

impl Content {
    /// The text of the content; `None` if it holds anything but text parts.
    pub fn text_only(&self) -> Option<String> {
        match self {
            Content::Text(t) => Some(t.clone()),
            Content::Parts(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        ContentPart::Text { text } => s.push_str(text),
                        _ => return None,
                    }
                }
                Some(s)
            }
        }
    }
}
