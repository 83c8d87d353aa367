//! The Anthropic Messages dialect (`POST /v1/messages`), and its translation to and from the
//! canonical request (OpenAI chat) in both directions:
//!
//! - inbound: a Messages request → [`ChatRequest`] ([`to_chat`]); an OpenAI answer → a
//!   Messages answer ([`response_from_chat`], [`StreamFromChat`]). This is how Claude Code and
//!   the Anthropic SDKs reach any lane.
//! - outbound: a [`ChatRequest`] → a Messages request ([`from_chat`]); a Messages answer → an
//!   OpenAI answer ([`response_to_chat`], [`StreamToChat`]). This is how the native Anthropic
//!   provider answers OpenAI clients.
//!
//! What a lane cannot use is dropped here, on purpose and in one place: Anthropic server tools
//! (`web_search_…`, `bash_…`), `cache_control`, `context_management`, `metadata`, signed
//! thinking blocks of earlier turns. When the lane *is* Anthropic and the caller spoke
//! Anthropic, the gateway sends the caller's own body instead, so nothing is lost there.
//!
//! Every function here is total: hostile input gives an error or a best-effort answer, never a
//! panic, and takes time in proportion to its size (see the fuzz targets in `fuzz/`).

use crate::openai::{
    self, ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, InvalidRequest, Message, Reasoning,
    Role, Tool, ToolCall, Usage,
};
use crate::sse::encode_data;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// The `anthropic-version` this gateway speaks (and sends upstream).
pub const VERSION: &str = "2023-06-01";

// ---------------------------------------------------------------------------------------------
// Request wire types (inbound). Only what the translation reads is typed; the rest of a body is
// kept in `extra` (and, for passthrough, the gateway keeps the whole original body).

/// `POST /v1/messages` (and `/v1/messages/count_tokens`) body.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub system: Option<InContent>,
    /// Required by `/v1/messages`, absent from `count_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u64>,
    #[serde(default)]
    pub tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub thinking: Option<Thinking>,
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    /// `metadata`, `context_management`, `service_tier`, `container`, `mcp_servers` and
    /// whatever comes next: accepted, not translated.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InRole {
    User,
    Assistant,
    /// A system message inside the conversation (Claude Code's `mid-conversation-system` beta).
    System,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InMessage {
    pub role: InRole,
    pub content: InContent,
}

/// Content: a string, or a list of blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum InContent {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for InContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InContent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<InContent, E> {
                Ok(InContent::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<InContent, E> {
                Ok(InContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InContent, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(b) = seq.next_element()? {
                    blocks.push(b);
                }
                Ok(InContent::Blocks(blocks))
            }
        }
        d.deserialize_any(V)
    }
}

impl InContent {
    /// The text of the content: text blocks joined by newlines, everything else left out.
    pub fn text(&self) -> String {
        match self {
            InContent::Text(t) => t.clone(),
            InContent::Blocks(blocks) => {
                let texts: Vec<&str> = blocks
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                texts.join("\n")
            }
        }
    }
}

/// One content block. Types this gateway does not know are kept as `Other` (and rendered as a
/// short note for lanes that are not Anthropic), so a new block type never fails a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: Option<InContent>,
        is_error: bool,
    },
    Thinking {
        thinking: String,
    },
    RedactedThinking,
    Other {
        kind: String,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub media_type: Option<String>,
    /// base64 data (`base64`) or the text itself (`text`).
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Text {
            text: String,
        }
        #[derive(Deserialize)]
        struct Media {
            source: Source,
            #[serde(default)]
            title: Option<String>,
        }
        #[derive(Deserialize)]
        struct Use {
            id: String,
            name: String,
            #[serde(default)]
            input: Value,
        }
        #[derive(Deserialize)]
        struct Result_ {
            tool_use_id: String,
            #[serde(default)]
            content: Option<InContent>,
            #[serde(default)]
            is_error: Option<bool>,
        }
        #[derive(Deserialize)]
        struct Think {
            #[serde(default)]
            thinking: String,
        }
        let v = Value::deserialize(d)?;
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return Err(de::Error::custom("a content block needs a string `type`"));
        };
        let kind = kind.to_owned();
        let fail = |e: serde_json::Error| de::Error::custom(format!("`{kind}` block: {e}"));
        Ok(match kind.as_str() {
            "text" => Block::Text {
                text: Text::deserialize(&v).map_err(fail)?.text,
            },
            "image" => Block::Image {
                source: Media::deserialize(&v).map_err(fail)?.source,
            },
            "document" => {
                let m = Media::deserialize(&v).map_err(fail)?;
                Block::Document {
                    source: m.source,
                    title: m.title,
                }
            }
            "tool_use" => {
                let u = Use::deserialize(&v).map_err(fail)?;
                Block::ToolUse {
                    id: u.id,
                    name: u.name,
                    input: u.input,
                }
            }
            "tool_result" => {
                let r = Result_::deserialize(&v).map_err(fail)?;
                Block::ToolResult {
                    tool_use_id: r.tool_use_id,
                    content: r.content,
                    is_error: r.is_error.unwrap_or(false),
                }
            }
            "thinking" => Block::Thinking {
                thinking: Think::deserialize(&v).map_err(fail)?.thinking,
            },
            "redacted_thinking" => Block::RedactedThinking,
            _ => Block::Other { kind },
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// Absent or `custom` for a client tool; anything else (`web_search_20250305`,
    /// `bash_20250124` …) is a tool Anthropic runs itself.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolDef {
    /// A tool the client runs (as opposed to one Anthropic's servers run).
    pub fn is_client_tool(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == "custom")
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Thinking {
    /// `enabled`, `adaptive` or `disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Which endpoint a body was sent to: `count_tokens` takes no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Messages,
    CountTokens,
}

impl MessagesRequest {
    /// Parses and checks a body that is already JSON. The value itself is what a passthrough
    /// sends on, so it is parsed once, by the caller.
    pub fn from_value(v: &Value, endpoint: Endpoint) -> Result<Self, InvalidRequest> {
        if !v.is_object() {
            return Err(InvalidRequest {
                message: "request body must be a JSON object".into(),
                param: None,
            });
        }
        let req: MessagesRequest = openai::decode_value(v)?;
        req.validate(endpoint)?;
        Ok(req)
    }

    fn validate(&self, endpoint: Endpoint) -> Result<(), InvalidRequest> {
        let bad = |param: &str, message: String| {
            Err(InvalidRequest {
                message,
                param: Some(param.to_owned()),
            })
        };
        if self.model.is_empty() {
            return bad(
                "model",
                "`model` must not be empty; GET /v1/models lists the routes and lanes".into(),
            );
        }
        if self.messages.is_empty() {
            return bad("messages", "`messages` must contain at least one message".into());
        }
        // Thinking blocks are dropped in translation (and empty block lists give nothing): a
        // conversation of only those, without a system prompt, would reach a lane as no
        // messages at all. Refused here, in the caller's terms.
        let readable = |m: &InMessage| match &m.content {
            _ if m.role == InRole::Assistant => true,
            InContent::Text(_) => true,
            InContent::Blocks(blocks) => blocks
                .iter()
                .any(|b| !matches!(b, Block::Thinking { .. } | Block::RedactedThinking)),
        };
        if self.system.as_ref().is_none_or(|s| s.text().is_empty()) && !self.messages.iter().any(readable) {
            return bad(
                "messages",
                "`messages` has nothing to answer: every message is empty or holds only thinking blocks".into(),
            );
        }
        if endpoint == Endpoint::Messages {
            match self.max_tokens {
                None => return bad("max_tokens", "`max_tokens` is required".into()),
                Some(0) => return bad("max_tokens", "`max_tokens` must be at least 1".into()),
                Some(_) => {}
            }
        }
        for (i, m) in self.messages.iter().enumerate() {
            if let InContent::Blocks(blocks) = &m.content {
                for (j, b) in blocks.iter().enumerate() {
                    let wrong = match (m.role, b) {
                        (InRole::User | InRole::System, Block::ToolUse { .. }) => Some("tool_use"),
                        (InRole::Assistant | InRole::System, Block::ToolResult { .. }) => Some("tool_result"),
                        _ => None,
                    };
                    if let Some(kind) = wrong {
                        let role = match m.role {
                            InRole::User => "user",
                            InRole::Assistant => "assistant",
                            InRole::System => "system",
                        };
                        return bad(
                            &format!("messages[{i}].content[{j}]"),
                            format!("messages[{i}].content[{j}]: a `{kind}` block cannot be in a `{role}` message"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Inbound: Messages request → canonical.

fn message(role: Role, content: Option<Content>) -> Message {
    Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

fn image_part(source: &Source) -> ContentPart {
    let url = match (source.kind.as_str(), &source.url, &source.data) {
        ("url", Some(u), _) => u.clone(),
        (_, _, Some(data)) => format!(
            "data:{};base64,{data}",
            source.media_type.as_deref().unwrap_or("image/png")
        ),
        (_, Some(u), None) => u.clone(),
        // A `file_id` lives in Anthropic's Files API: no other model can fetch it.
        _ => {
            return ContentPart::Text {
                text: format!("[a `{}` image was omitted: this model cannot fetch it]", source.kind),
            };
        }
    };
    ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }
}

fn document_part(source: &Source, title: Option<&str>) -> ContentPart {
    match (source.kind.as_str(), &source.data, &source.url) {
        ("text", Some(text), _) => ContentPart::Text {
            text: match title {
                Some(t) => format!("{t}\n\n{text}"),
                None => text.clone(),
            },
        },
        ("base64", Some(data), _) => {
            let media = source.media_type.as_deref().unwrap_or("application/pdf");
            let mut file = json!({"file_data": format!("data:{media};base64,{data}")});
            if let Some(t) = title {
                file["filename"] = json!(t);
            }
            ContentPart::File { file }
        }
        (_, _, Some(url)) => ContentPart::Text {
            text: format!("[document: {url}]"),
        },
        _ => ContentPart::Text {
            text: format!("[a `{}` document was omitted]", source.kind),
        },
    }
}

/// Appends parts to the conversation as a user turn, merging with a user turn just before it
/// (Anthropic joins consecutive turns of one role; many chat templates refuse them).
fn push_user(messages: &mut Vec<Message>, mut parts: Vec<ContentPart>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last.role == Role::User
    {
        let mut merged = match last.content.take() {
            Some(Content::Text(t)) => vec![ContentPart::Text { text: t }],
            Some(Content::Parts(p)) => p,
            None => Vec::new(),
        };
        merged.append(&mut parts);
        last.content = Some(Content::Parts(merged));
        return;
    }
    messages.push(message(Role::User, Some(Content::Parts(parts))));
}

/// Text-only part lists become one string: the most widely accepted form of content.
fn simplify(messages: &mut [Message]) {
    for m in messages {
        if let Some(Content::Parts(parts)) = &m.content
            && parts.iter().all(|p| matches!(p, ContentPart::Text { .. }))
        {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            m.content = Some(Content::Text(texts.join("\n")));
        }
    }
}

fn effort_for_budget(budget: u64) -> &'static str {
    match budget {
        0..=4095 => "low",
        4096..=16383 => "medium",
        _ => "high",
    }
}

/// Anthropic's effort levels (`low` … `max`) in OpenAI's three.
fn normalize_effort(e: &str) -> &'static str {
    match e {
        "minimal" | "low" => "low",
        "high" | "max" | "xhigh" => "high",
        _ => "medium",
    }
}

/// The reasoning a Messages request asks for, if any.
pub fn reasoning_of(req: &MessagesRequest) -> Option<Reasoning> {
    let t = req.thinking.as_ref()?;
    let effort = req
        .output_config
        .as_ref()
        .and_then(|o| o.effort.as_deref())
        .map(|e| normalize_effort(e).to_owned());
    match t.kind.as_str() {
        "enabled" => Some(Reasoning {
            effort: effort.unwrap_or_else(|| effort_for_budget(t.budget_tokens.unwrap_or(8192)).to_owned()),
            budget_tokens: t.budget_tokens,
        }),
        "adaptive" => Some(Reasoning {
            effort: effort.unwrap_or_else(|| "medium".to_owned()),
            budget_tokens: None,
        }),
        _ => None,
    }
}

/// Translates a Messages request into the canonical request.
///
/// - `system` (string or blocks) becomes the first message; a system message inside the
///   conversation becomes text of the user turn it sits in.
/// - `tool_result` blocks become `tool` messages, placed right after the assistant turn that
///   called them (as OpenAI requires); their images follow in the user turn.
/// - `tool_use` blocks become `tool_calls`; thinking blocks of earlier turns are dropped (their
///   signatures mean nothing to another model).
/// - `thinking` becomes [`ChatRequest::reasoning`]; server tools are dropped.
pub fn to_chat(req: &MessagesRequest) -> ChatRequest {
    let mut messages: Vec<Message> = Vec::with_capacity(req.messages.len() + 1);
    // Where tool results go: right after the last assistant turn and the results already
    // placed after it. Kept, not searched for: searching made n results cost n².
    let mut results_at: Option<usize> = None;
    if let Some(system) = &req.system {
        let text = system.text();
        if !text.is_empty() {
            messages.push(message(Role::System, Some(Content::Text(text))));
        }
    }
    for m in &req.messages {
        let blocks: Vec<Block> = match &m.content {
            InContent::Text(t) => vec![Block::Text { text: t.clone() }],
            InContent::Blocks(b) => b.clone(),
        };
        match m.role {
            InRole::User | InRole::System => {
                let mut parts = Vec::new();
                let mut results = Vec::new();
                for b in blocks {
                    match b {
                        Block::Text { text } => parts.push(ContentPart::Text { text }),
                        Block::Image { source } => parts.push(image_part(&source)),
                        Block::Document { source, title } => parts.push(document_part(&source, title.as_deref())),
                        Block::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                        } => {
                            let (text, images) = tool_result_content(content.as_ref());
                            let text = if is_error { format!("Error: {text}") } else { text };
                            let mut msg = message(Role::Tool, Some(Content::Text(text)));
                            msg.tool_call_id = Some(tool_use_id);
                            results.push(msg);
                            parts.extend(images);
                        }
                        Block::Other { kind } => parts.push(ContentPart::Text {
                            text: format!("[a `{kind}` block was omitted: this model cannot read it]"),
                        }),
                        Block::ToolUse { .. } | Block::Thinking { .. } | Block::RedactedThinking => {}
                    }
                }
                // Right after the assistant turn that made the calls (and its earlier results),
                // even if a system note was merged into a user turn in between. Before any
                // assistant turn, at the end.
                if !results.is_empty() {
                    let at = results_at.unwrap_or(messages.len());
                    let n = results.len();
                    messages.splice(at..at, results);
                    results_at = results_at.map(|i| i + n);
                }
                push_user(&mut messages, parts);
            }
            InRole::Assistant => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for b in blocks {
                    match b {
                        Block::Text { text: t } => {
                            if !text.is_empty() && !t.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(&t);
                        }
                        Block::ToolUse { id, name, input } => calls.push(ToolCall {
                            id,
                            kind: "function".into(),
                            function: FunctionCall {
                                name,
                                arguments: if input.is_null() {
                                    "{}".into()
                                } else {
                                    input.to_string()
                                },
                            },
                        }),
                        _ => {}
                    }
                }
                let mut msg = message(Role::Assistant, Some(Content::Text(text)));
                if !calls.is_empty() {
                    msg.tool_calls = Some(calls);
                }
                messages.push(msg);
                results_at = Some(messages.len());
            }
        }
    }
    simplify(&mut messages);

    let tools: Vec<Tool> = req
        .tools
        .iter()
        .flatten()
        .filter(|t| t.is_client_tool())
        .map(|t| Tool {
            kind: "function".into(),
            function: Some(FunctionDef {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: Some(
                    t.input_schema
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
                strict: None,
            }),
            extra: Map::new(),
        })
        .collect();
    let mut extra = Map::new();
    let mut tool_choice = None;
    if !tools.is_empty()
        && let Some(c) = &req.tool_choice
    {
        tool_choice = match (c.kind.as_str(), &c.name) {
            ("any", _) => Some(json!("required")),
            ("none", _) => Some(json!("none")),
            ("tool", Some(name)) => Some(json!({"type": "function", "function": {"name": name}})),
            _ => Some(json!("auto")),
        };
        if c.disable_parallel_tool_use == Some(true) {
            extra.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if let Some(s) = req.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        extra.insert("stop".into(), json!(s));
    }
    if let Some(t) = req.temperature {
        extra.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        extra.insert("top_p".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        extra.insert("top_k".into(), json!(k));
    }
    ChatRequest {
        model: req.model.clone(),
        messages,
        stream: req.stream,
        stream_options: None,
        max_tokens: req.max_tokens,
        max_completion_tokens: None,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        response_format: None,
        extra,
        reasoning: reasoning_of(req),
    }
}

/// A tool result's text, and its images (which a `tool` message cannot carry).
fn tool_result_content(content: Option<&InContent>) -> (String, Vec<ContentPart>) {
    match content {
        None => (String::new(), Vec::new()),
        Some(InContent::Text(t)) => (t.clone(), Vec::new()),
        Some(InContent::Blocks(blocks)) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for b in blocks {
                match b {
                    Block::Text { text } => texts.push(text.clone()),
                    Block::Image { source } => images.push(image_part(source)),
                    Block::Document { source, title } => {
                        if let ContentPart::Text { text } = document_part(source, title.as_deref()) {
                            texts.push(text);
                        }
                    }
                    Block::Other { kind } => texts.push(format!("[a `{kind}` block was omitted]")),
                    _ => {}
                }
            }
            (texts.join("\n"), images)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound: canonical → Messages request.

/// Anthropic refuses empty text blocks.
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn media_source(url: &str) -> Value {
    // data:<media>;base64,<data>
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media) = meta.strip_suffix(";base64")
    {
        return json!({"type": "base64", "media_type": media, "data": data});
    }
    json!({"type": "url", "url": url})
}

fn blocks_of(content: Option<&Content>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) => out.extend(text_block(t)),
        Some(Content::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Text { text } => out.extend(text_block(text)),
                    ContentPart::Refusal { refusal } => out.extend(text_block(refusal)),
                    ContentPart::ImageUrl { image_url } => {
                        out.push(json!({"type": "image", "source": media_source(&image_url.url)}));
                    }
                    ContentPart::File { file } => {
                        let data = file.get("file_data").and_then(Value::as_str).unwrap_or_default();
                        if !data.starts_with("data:") {
                            return Err("Anthropic takes files as inline data only (`file_data`)".into());
                        }
                        out.push(json!({"type": "document", "source": media_source(data)}));
                    }
                    ContentPart::InputAudio { .. } => return Err("Anthropic models do not take audio input".into()),
                }
            }
        }
    }
    Ok(out)
}

/// One turn of a Messages body being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
    /// How many `tool_result` blocks open the turn. Kept rather than counted on each merge:
    /// counting made a conversation of n tool results cost n² (seconds for a 1 MB body).
    results: usize,
}

fn is_tool_result(b: &Value) -> bool {
    b["type"] == "tool_result"
}

/// Adds blocks as a turn of `role`, merged into the previous turn when it has the same role.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, mut blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    let leading = blocks.iter().take_while(|b| is_tool_result(b)).count();
    if let Some(last) = turns.last_mut()
        && last.role == role
    {
        // Tool results must open a user turn: they go after the results already there and
        // before any other content.
        if blocks.iter().any(is_tool_result) {
            let at = last.results;
            last.blocks.splice(at..at, blocks);
            // `at` was the end of the leading run, so the block after the new ones is not a
            // result: the run now ends where the new blocks' own leading run does.
            last.results = at + leading;
        } else {
            // No results among the new blocks: the leading run is unchanged.
            last.blocks.append(&mut blocks);
        }
        return;
    }
    turns.push(Turn {
        role,
        blocks,
        results: leading,
    });
}

/// How a Claude model takes a thinking request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingStyle {
    /// `{"type":"enabled","budget_tokens":N}` (Claude 3.7 to 4.5).
    Budget,
    /// `{"type":"adaptive"}` with `output_config.effort` (later models).
    Adaptive,
}

/// The thinking style of a Claude model, from its name. Models this table does not know are
/// taken to be newer ones, which think adaptively.
pub fn thinking_style(model: &str) -> ThinkingStyle {
    let m = model.to_ascii_lowercase();
    let budget = [
        "claude-3",
        "claude-opus-4-0",
        "claude-opus-4-1",
        "claude-opus-4-2025",
        "claude-opus-4-5",
        "claude-sonnet-4-0",
        "claude-sonnet-4-2025",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    ];
    if budget.iter().any(|p| m.starts_with(p)) || m == "claude-opus-4" || m == "claude-sonnet-4" {
        ThinkingStyle::Budget
    } else {
        ThinkingStyle::Adaptive
    }
}

/// Whether a Messages conversation may have thinking turned on: Claude refuses it when the
/// last assistant turn called tools without a thinking block first (a tool loop begun without
/// thinking, e.g. by another model).
pub fn thinking_allowed(messages: &[Value]) -> bool {
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "assistant") else {
        return true;
    };
    let Some(blocks) = last["content"].as_array() else {
        return true;
    };
    let calls_tools = blocks.iter().any(|b| b["type"] == "tool_use");
    let thinks_first = blocks
        .first()
        .is_some_and(|b| b["type"] == "thinking" || b["type"] == "redacted_thinking");
    !calls_tools || thinks_first
}

/// Translates a canonical request into a Messages body. `default_max_tokens` fills the
/// `max_tokens` Anthropic requires when the caller gave none. `thinking` is how the lane's
/// model thinks, or `None` when it should not (the reasoning ask is then dropped). Fails only
/// for content Anthropic cannot take (audio), which the gateway treats as "this lane is
/// unsuitable".
pub fn from_chat(req: &ChatRequest, default_max_tokens: u64, thinking: Option<ThinkingStyle>) -> Result<Value, String> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System | Role::Developer => {
                if let Some(t) = m.content.as_ref().and_then(Content::text_only)
                    && !t.is_empty()
                {
                    system.push(t);
                }
            }
            Role::User => push_turn(&mut turns, "user", blocks_of(m.content.as_ref())?),
            Role::Assistant => {
                let mut blocks = blocks_of(m.content.as_ref())?;
                for c in m.tool_calls.iter().flatten() {
                    let input = parse_arguments(&c.function.arguments);
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.function.name, "input": input}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool | Role::Function => {
                let text = m.content.as_ref().map(text_of).unwrap_or_default();
                let id = m.tool_call_id.clone().or_else(|| m.name.clone()).unwrap_or_default();
                let mut block = json!({"type": "tool_result", "tool_use_id": id});
                if !text.is_empty() {
                    block["content"] = json!(text);
                }
                push_turn(&mut turns, "user", vec![block]);
            }
        }
    }
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max_tokens)
        .max(1);
    let turns: Vec<Value> = turns
        .into_iter()
        .map(|t| json!({"role": t.role, "content": t.blocks}))
        .collect();
    let mut body = json!({"model": req.model, "messages": turns, "max_tokens": max_tokens});
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if req.is_stream() {
        body["stream"] = json!(true);
    }
    let x = &req.extra;
    // Only what Anthropic takes goes out: stop strings, a whole `top_k`, a tool named by a
    // string. A caller's mistake elsewhere (`"stop": [1]`) is dropped here, as wrongly typed
    // sampling options are, rather than turned into the lane's 400.
    let stop: Vec<&str> = match x.get("stop") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let stop: Vec<&str> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    if !stop.is_empty() {
        body["stop_sequences"] = json!(stop);
    }
    // OpenAI's temperature runs to 2, Anthropic's to 1.
    if let Some(t) = x.get("temperature").and_then(Value::as_f64) {
        body["temperature"] = json!(t.clamp(0.0, 1.0));
    }
    if let Some(v) = x.get("top_p").filter(|v| v.is_number()) {
        body["top_p"] = v.clone();
    }
    if let Some(v) = x.get("top_k").filter(|v| v.is_u64()) {
        body["top_k"] = v.clone();
    }
    if let Some(u) = x.get("user").and_then(Value::as_str) {
        body["metadata"] = json!({"user_id": u});
    }
    if let Some(tools) = &req.tools {
        let defs: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.function.as_ref())
            .map(|f| {
                let mut d = json!({
                    "name": f.name,
                    "input_schema": f.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(desc) = &f.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        if !defs.is_empty() {
            body["tools"] = json!(defs);
            let mut choice = match &req.tool_choice {
                Some(Value::String(s)) if s == "required" => json!({"type": "any"}),
                Some(Value::String(s)) if s == "none" => json!({"type": "none"}),
                Some(Value::Object(o)) => match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                    Some(name) => json!({"type": "tool", "name": name}),
                    None => json!({"type": "auto"}),
                },
                _ => json!({"type": "auto"}),
            };
            if x.get("parallel_tool_calls") == Some(&json!(false)) {
                choice["disable_parallel_tool_use"] = json!(true);
            }
            if req.tool_choice.is_some() || choice.get("disable_parallel_tool_use").is_some() {
                body["tool_choice"] = choice;
            }
        }
    }
    let reasoning = req.reasoning.clone().or_else(|| {
        x.get("reasoning_effort")
            .and_then(Value::as_str)
            .filter(|e| *e != "none" && *e != "minimal")
            .map(|e| Reasoning {
                effort: normalize_effort(e).to_owned(),
                budget_tokens: None,
            })
    });
    // Claude refuses thinking with a forced tool choice, and in a tool loop whose last call
    // was made without thinking (which an OpenAI client's history always is).
    let forced_tool = body["tool_choice"]["type"] == "any" || body["tool_choice"]["type"] == "tool";
    let loop_ok = body["messages"].as_array().is_none_or(|m| thinking_allowed(m));
    if let (Some(r), Some(style)) = (reasoning, thinking)
        && !forced_tool
        && loop_ok
    {
        let on = match style {
            ThinkingStyle::Adaptive => {
                body["thinking"] = json!({"type": "adaptive"});
                body["output_config"] = json!({"effort": normalize_effort(&r.effort)});
                true
            }
            ThinkingStyle::Budget => {
                // The budget must be at least 1024 and below max_tokens; with no room, none.
                let budget = budget_for(&r).max(1024).min(max_tokens.saturating_sub(1));
                if budget >= 1024 {
                    body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
                }
                budget >= 1024
            }
        };
        if on && let Some(o) = body.as_object_mut() {
            // Thinking takes the default sampling: no temperature, top_k, or top_p below 0.95.
            o.remove("temperature");
            o.remove("top_k");
            if o.get("top_p").and_then(Value::as_f64).is_some_and(|p| p < 0.95) {
                o.remove("top_p");
            }
        }
    }
    Ok(body)
}

/// A thinking budget for a reasoning ask: the caller's own, or one for its effort.
pub fn budget_for(r: &Reasoning) -> u64 {
    r.budget_tokens.unwrap_or(match r.effort.as_str() {
        "low" => 2048,
        "high" => 24576,
        _ => 8192,
    })
}

fn text_of(c: &Content) -> String {
    match c {
        Content::Text(t) => t.clone(),
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A tool call's `arguments` as the object Anthropic wants. Arguments that are not a JSON
/// object (a model's mistake) are kept, as a string, rather than lost.
fn parse_arguments(args: &str) -> Value {
    if args.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_arguments": args}),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers: stop reasons, usage, whole messages.

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason_from_finish(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_from_stop_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage (`input_tokens` counts only the uncached part) → OpenAI usage.
pub fn usage_to_chat(u: &Value) -> Usage {
    // Saturating: the counts are the upstream's word, and `u64::MAX` plus one must not wrap
    // to a free answer in the ledger (or panic, where overflow is checked).
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let input = n("input_tokens")
        .saturating_add(n("cache_read_input_tokens"))
        .saturating_add(n("cache_creation_input_tokens"));
    let output = n("output_tokens");
    Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input.saturating_add(output),
    }
}

/// The usage of a whole Messages answer.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("usage").map(usage_to_chat)
}

fn message_id(openai_id: Option<&str>) -> String {
    match openai_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{}", id.trim_start_matches("chatcmpl-")),
        _ => "msg_switchyard".to_owned(),
    }
}

/// An OpenAI `chat.completion` → an Anthropic `message`. Reasoning text of another model is
/// not turned into a thinking block: such a block would carry no valid signature, and Claude
/// refuses unsigned thinking when the conversation later reaches it.
pub fn response_from_chat(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("answer is not valid JSON: {e}"))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("answer has no `choices`")?;
    let msg = choice.get("message").cloned().unwrap_or_default();
    let mut content = Vec::new();
    match msg.get("content") {
        Some(Value::String(s)) => content.extend(text_block(s)),
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    content.extend(text_block(t));
                }
            }
        }
        _ => {}
    }
    let mut tool_calls = 0;
    for (i, c) in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = c.get("function").cloned().unwrap_or_default();
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("toolu_{i}"), str::to_owned);
        content.push(json!({
            "type": "tool_use", "id": id,
            "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
            "input": parse_arguments(f.get("arguments").and_then(Value::as_str).unwrap_or_default()),
        }));
        tool_calls += 1;
    }
    let finish = choice.get("finish_reason").and_then(Value::as_str).unwrap_or("stop");
    let mut stop = stop_reason_from_finish(finish);
    if tool_calls > 0 && stop == "end_turn" {
        stop = "tool_use";
    }
    let matched = matched_stop(choice).filter(|_| stop == "end_turn");
    if matched.is_some() {
        stop = "stop_sequence";
    }
    let u = v.get("usage").cloned().unwrap_or_default();
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = u
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut usage = json!({
        "input_tokens": n("prompt_tokens").saturating_sub(cached),
        "output_tokens": n("completion_tokens"),
    });
    if cached > 0 {
        usage["cache_read_input_tokens"] = json!(cached);
    }
    Ok(json!({
        "id": message_id(v.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": v.get("model").and_then(Value::as_str).unwrap_or_default(),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": matched,
        "usage": usage,
    }))
}

/// The stop sequence that ended an OpenAI answer, where the server says (vLLM's and
/// Switchyard's engine's `stop_reason` string beside `finish_reason`).
fn matched_stop(choice: &Value) -> Option<String> {
    if choice.get("finish_reason").and_then(Value::as_str) != Some("stop") {
        return None;
    }
    choice
        .get("stop_reason")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An Anthropic `message` → an OpenAI `chat.completion`. Thinking text becomes
/// `reasoning_content`, as OpenAI-compatible servers report it.
pub fn response_to_chat(body: &[u8], created: u64) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("answer is not valid JSON: {e}"))?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("answer has no `content`")?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                if !text.is_empty() && !t.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            Some("thinking") => reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": b.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let stop = v.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let usage = usage_to_chat(v.get("usage").unwrap_or(&Value::Null));
    Ok(json!({
        "id": v.get("id").and_then(Value::as_str).unwrap_or("msg_switchyard"),
        "object": "chat.completion",
        "created": created,
        "model": v.get("model").and_then(Value::as_str).unwrap_or_default(),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_from_stop_reason(stop)}],
        "usage": usage,
    }))
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405..=412 | 414..=428 | 430..=499 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`, with the gateway's stable `code` beside them.
pub fn error_body(kind: &str, message: &str, code: Option<&str>) -> String {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    json!({"type": "error", "error": e}).to_string()
}

// ---------------------------------------------------------------------------------------------
// Streams.

/// One Anthropic stream event: its `event:` name and its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub name: &'static str,
    pub data: Value,
}

impl Event {
    fn new(name: &'static str, data: Value) -> Self {
        Event { name, data }
    }

    /// Appends the event in SSE framing.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_data(out, Some(self.name), &self.data.to_string());
    }
}

#[derive(Debug, Default)]
struct PendingTool {
    id: String,
    name: String,
    arguments: String,
}

/// OpenAI chunks → Anthropic events, for a Messages client answered by an OpenAI-speaking lane.
///
/// Text is streamed as it comes. Tool calls are collected and sent, whole, when the answer
/// ends: OpenAI servers may interleave the fragments of parallel calls, while Anthropic's
/// stream must finish one block before starting the next. A `ping` is sent now and then while
/// they are collected, so the connection never looks dead.
#[derive(Debug)]
pub struct StreamFromChat {
    id: String,
    model: String,
    started: bool,
    finished: bool,
    /// Index of the open text block.
    text_open: Option<usize>,
    next_index: usize,
    /// In the order they began. Ollama gives every parallel call `index: 0`, so a fragment
    /// with a new `id` starts a new call even when its index is taken.
    tools: Vec<PendingTool>,
    /// The latest call in `tools` for each `index`. Looked up, not searched for: a search
    /// made an upstream's n parallel calls cost n² (seconds for one 1 MB chunk).
    latest: BTreeMap<u64, usize>,
    finish: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<Value>,
    quiet_chunks: u32,
}

impl StreamFromChat {
    /// `model` names the model in `message_start` until the upstream's own chunks say it.
    pub fn new(model: &str) -> Self {
        StreamFromChat {
            id: String::new(),
            model: model.to_owned(),
            started: false,
            finished: false,
            text_open: None,
            next_index: 0,
            tools: Vec::new(),
            latest: BTreeMap::new(),
            finish: None,
            stop_sequence: None,
            usage: None,
            quiet_chunks: 0,
        }
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(Event::new(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(Some(&self.id)), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
        out.push(Event::new("ping", json!({"type": "ping"})));
    }

    fn close_text(&mut self, out: &mut Vec<Event>) {
        if let Some(i) = self.text_open.take() {
            out.push(Event::new(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    /// Feeds the JSON of one OpenAI `data:` event (not `[DONE]`: call [`Self::finish`]).
    pub fn push(&mut self, data: &str, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("the upstream reported an error");
            self.fail("api_error", message, out);
            return;
        }
        if self.id.is_empty()
            && let Some(id) = chunk.get("id").and_then(Value::as_str)
        {
            id.clone_into(&mut self.id);
        }
        if !self.started
            && let Some(m) = chunk.get("model").and_then(Value::as_str).filter(|m| !m.is_empty())
        {
            m.clone_into(&mut self.model);
        }
        self.start(out);
        let before = out.len();
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        let delta = choice.get("delta").cloned().unwrap_or_default();
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let index = match self.text_open {
                Some(i) => i,
                None => {
                    let i = self.next_index;
                    self.next_index += 1;
                    self.text_open = Some(i);
                    out.push(Event::new(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                    ));
                    i
                }
            };
            out.push(Event::new(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for (pos, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let key = call.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let id = call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
            let existing = self.latest.get(&key).copied();
            let at = match (existing, id) {
                (Some(i), Some(id)) if !self.tools[i].id.is_empty() && self.tools[i].id != id => None,
                (Some(i), _) => Some(i),
                (None, _) => None,
            };
            let at = at.unwrap_or_else(|| {
                self.tools.push(PendingTool::default());
                self.latest.insert(key, self.tools.len() - 1);
                self.tools.len() - 1
            });
            let t = &mut self.tools[at];
            if let Some(id) = id {
                id.clone_into(&mut t.id);
            }
            if let Some(f) = call.get("function") {
                if let Some(n) = f.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    n.clone_into(&mut t.name);
                }
                if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                    t.arguments.push_str(a);
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
            self.stop_sequence = matched_stop(choice);
        }
        if out.len() == before {
            self.quiet_chunks += 1;
            if self.quiet_chunks.is_multiple_of(32) {
                out.push(Event::new("ping", json!({"type": "ping"})));
            }
        } else {
            self.quiet_chunks = 0;
        }
    }

    /// The answer ended (`[DONE]`, or the stream closed cleanly): closes the open block, sends
    /// the collected tool calls, the stop reason and usage, and `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close_text(out);
        let tools = std::mem::take(&mut self.tools);
        self.latest.clear();
        let had_tools = !tools.is_empty();
        for (n, t) in tools.into_iter().enumerate() {
            let k = n;
            let i = self.next_index;
            self.next_index += 1;
            let id = if t.id.is_empty() {
                format!("toolu_{}_{k}", self.id.trim_start_matches("chatcmpl-"))
            } else {
                t.id
            };
            out.push(Event::new(
                "content_block_start",
                json!({"type": "content_block_start", "index": i,
                       "content_block": {"type": "tool_use", "id": id, "name": t.name, "input": {}}}),
            ));
            // A well-formed object, whatever the model wrote (see `parse_arguments`).
            let args = parse_arguments(&t.arguments).to_string();
            out.push(Event::new(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args}}),
            ));
            out.push(Event::new(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
        let mut stop = stop_reason_from_finish(self.finish.as_deref().unwrap_or("stop"));
        if had_tools && stop == "end_turn" {
            stop = "tool_use";
        }
        if !had_tools && stop == "tool_use" {
            stop = "end_turn";
        }
        let matched = self.stop_sequence.take().filter(|_| stop == "end_turn");
        if matched.is_some() {
            stop = "stop_sequence";
        }
        let u = self.usage.take().unwrap_or_default();
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let cached = u
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut usage =
            json!({"input_tokens": n("prompt_tokens").saturating_sub(cached), "output_tokens": n("completion_tokens")});
        if cached > 0 {
            usage["cache_read_input_tokens"] = json!(cached);
        }
        out.push(Event::new(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": matched}, "usage": usage}),
        ));
        out.push(Event::new("message_stop", json!({"type": "message_stop"})));
        self.finished = true;
    }

    /// Ends the stream with an `error` event (the answer is incomplete).
    pub fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.finished = true;
        out.push(Event::new(
            "error",
            json!({"type": "error", "error": {"type": kind, "message": message}}),
        ));
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Anthropic events → OpenAI chunks, for an OpenAI client answered by an Anthropic lane. The
/// output is the `data:` payloads, ending with a usage-only chunk and `[DONE]`.
#[derive(Debug)]
pub struct StreamToChat {
    id: String,
    model: String,
    created: u64,
    /// Anthropic block index → OpenAI tool-call index.
    tool_index: BTreeMap<u64, usize>,
    next_tool: usize,
    usage: StreamUsage,
    finish: Option<&'static str>,
    done: bool,
}

impl StreamToChat {
    pub fn new(created: u64) -> Self {
        StreamToChat {
            id: "msg_switchyard".into(),
            model: String::new(),
            created,
            tool_index: BTreeMap::new(),
            next_tool: 0,
            usage: StreamUsage::default(),
            finish: None,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
        .to_string()
    }

    /// Feeds one Anthropic event (its JSON; the `type` inside names it).
    pub fn push(&mut self, data: &str, out: &mut Vec<String>) {
        if self.done {
            return;
        }
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.usage.observe(&ev);
        match ev.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                let m = ev.get("message").cloned().unwrap_or_default();
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    id.clone_into(&mut self.id);
                }
                if let Some(model) = m.get("model").and_then(Value::as_str) {
                    model.clone_into(&mut self.model);
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = ev.get("content_block").cloned().unwrap_or_default();
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let k = self.next_tool;
                        self.next_tool += 1;
                        self.tool_index.insert(index, k);
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": k, "id": block.get("id"), "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""}}]}),
                            None,
                        ));
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = ev.get("delta").cloned().unwrap_or_default();
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        out.push(self.chunk(json!({"content": d.get("text")}), None));
                    }
                    Some("thinking_delta") => {
                        out.push(self.chunk(json!({"reasoning_content": d.get("thinking")}), None));
                    }
                    Some("input_json_delta") => {
                        if let Some(k) = self.tool_index.get(&index) {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": k, "function": {"arguments": d.get("partial_json")}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = ev
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.finish = Some(finish_from_stop_reason(s));
                }
            }
            "message_stop" => self.finish(out),
            "error" => {
                let e = ev.get("error").cloned().unwrap_or_default();
                out.push(
                    json!({"error": {
                        "message": e.get("message").and_then(Value::as_str).unwrap_or("the upstream reported an error"),
                        "type": e.get("type").and_then(Value::as_str).unwrap_or("api_error"),
                        "code": e.get("type"),
                    }})
                    .to_string(),
                );
                self.done = true;
            }
            _ => {} // ping, and event types added later
        }
    }

    /// Ends the answer: the finish chunk, the usage chunk and `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if self.done {
            return;
        }
        self.done = true;
        out.push(self.chunk(json!({}), Some(self.finish.unwrap_or("stop"))));
        let usage = self.usage.usage().unwrap_or_default();
        out.push(
            json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                   "choices": [], "usage": usage})
            .to_string(),
        );
        out.push("[DONE]".to_owned());
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The usage of an Anthropic stream: input counts from `message_start`, updated by
/// `message_delta` (which also carries the output count so far).
#[derive(Debug, Default)]
struct StreamUsage {
    input: Map<String, Value>,
    output_tokens: u64,
    seen: bool,
}

impl StreamUsage {
    fn observe(&mut self, ev: &Value) {
        let u = match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => ev.get("message").and_then(|m| m.get("usage")),
            Some("message_delta") => ev.get("usage"),
            _ => None,
        };
        let Some(u) = u.and_then(Value::as_object) else {
            return;
        };
        self.seen = true;
        if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
            self.output_tokens = o;
        }
        for k in ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] {
            if let Some(v) = u.get(k).filter(|v| v.is_u64()) {
                self.input.insert(k.to_owned(), v.clone());
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        if !self.seen {
            return None;
        }
        let mut u = usage_to_chat(&Value::Object(self.input.clone()));
        u.completion_tokens = self.output_tokens;
        u.total_tokens = u.prompt_tokens.saturating_add(u.completion_tokens);
        Some(u)
    }
}

/// What the gateway reads of an Anthropic stream it passes through untouched: usage, whether
/// it failed, whether it ended.
#[derive(Debug, Default)]
pub struct PassthroughProbe {
    usage: StreamUsage,
    pub error: Option<String>,
    pub stopped: bool,
}

impl PassthroughProbe {
    pub fn observe(&mut self, data: &str) {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.usage.observe(&ev);
        match ev.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_stop" => self.stopped = true,
            "error" => {
                let msg = ev
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("error event");
                self.error = Some(msg.to_owned());
            }
            _ => {}
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }
}

/// Everything a hostile peer can reach, for the fuzz target (`fuzz/`) and its stable twin in
/// the tests: must never panic, whatever `data` is.
pub fn fuzz_entry(data: &[u8]) {
    use crate::sse::SseDecoder;
    let _ = response_from_chat(data);
    let _ = response_to_chat(data, 0);
    let _ = response_usage(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        for endpoint in [Endpoint::Messages, Endpoint::CountTokens] {
            if let Ok(req) = MessagesRequest::from_value(&v, endpoint) {
                let chat = to_chat(&req);
                let _ = from_chat(&chat, 1024, Some(ThinkingStyle::Budget));
            }
        }
        if let Ok(chat) = serde_json::from_value::<ChatRequest>(v) {
            let _ = from_chat(&chat, 1024, Some(ThinkingStyle::Adaptive));
        }
    }
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    decoder.push(data, &mut events);
    decoder.finish(&mut events);
    let mut from = StreamFromChat::new("m");
    let mut to = StreamToChat::new(0);
    let mut probe = PassthroughProbe::default();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for e in &events {
        from.push(&e.data, &mut a);
        to.push(&e.data, &mut b);
        probe.observe(&e.data);
    }
    from.finish(&mut a);
    to.finish(&mut b);
    let _ = probe.usage();
    let mut buf = Vec::new();
    for e in &a {
        e.encode(&mut buf);
    }
}

#[cfg(test)]
mod tests;
