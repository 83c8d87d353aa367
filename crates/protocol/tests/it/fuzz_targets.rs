//! The fuzz targets' bodies and the checks they make, shared by the cargo-fuzz project
//! (`fuzz/`, which includes this file) and the regression tests here (`fuzz_regressions`),
//! so a kept crash is replayed through exactly the code that found it. Stable Rust only: no
//! libFuzzer here.
//!
//! Each target runs what the gateway runs on untrusted bytes (a client's body, an upstream's
//! answer or stream), through the pure code of this crate: crates/core/src/gateway.rs adds only
//! IO and bookkeeping around these calls (`Relay` for streams). The checks are the promises the
//! crate makes to the gateway and its clients: a parsed request serializes to the same request;
//! a translated request is one this crate itself accepts; an Anthropic client gets a
//! well-formed event sequence; an OpenAI client gets chunk JSON and one `[DONE]`; the SSE the
//! gateway writes decodes back to what it meant, however the bytes were cut. A failed check
//! panics, and libFuzzer keeps the input as a crash.

use serde_json::Value;
use switchyard_protocol::anthropic::{
    self, Endpoint, Event, MessagesRequest, PassthroughProbe, StreamFromChat, StreamToChat, ThinkingStyle,
};
use switchyard_protocol::openai::{self, ChatRequest, ChunkProbe, ResponseProbe, build, upstream_error_message};
use switchyard_protocol::sse::{SseDecoder, SseEvent, encode_data};

/// The targets, by the name of their binary in `fuzz/` and of their folder of kept inputs.
pub const TARGETS: [&str; 6] = [
    "openai_request",
    "anthropic_request",
    "answers",
    "stream_to_anthropic",
    "stream_to_openai",
    "sse_decoder",
];

/// Runs one target on one input.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "openai_request" => openai_request(data),
        "anthropic_request" => anthropic_request(data),
        "answers" => answers(data),
        "stream_to_anthropic" => stream_to_anthropic(data),
        "stream_to_openai" => stream_to_openai(data),
        "sse_decoder" => sse_decoder(data),
        _ => panic!("no fuzz target `{target}`"),
    }
}

/// A `POST /v1/chat/completions` body, parsed as the server does (`ChatRequest::from_slice`),
/// then what the gateway does next that is pure: the routing inputs (token estimate, images,
/// tools, thinking), the body sent to an OpenAI-dialect lane (the request serialized again,
/// which must parse back to the same request), and the Messages body for an Anthropic lane
/// (`from_chat`, which must be a Messages request this crate itself accepts).
pub fn openai_request(data: &[u8]) {
    let Ok(req) = ChatRequest::from_slice(data) else {
        return;
    };
    let _ = req.estimate_input_tokens();
    let _ = (
        req.is_stream(),
        req.wants_stream_usage(),
        req.has_images(),
        req.has_tools(),
        req.wants_thinking(),
    );
    let body = serde_json::to_vec(&req).expect("a parsed request serializes");
    let again = ChatRequest::from_slice(&body).expect("the body sent upstream parses as a request");
    assert_same_request(&again, &req, "the body sent upstream is not the request");
    for style in [None, Some(ThinkingStyle::Budget), Some(ThinkingStyle::Adaptive)] {
        let Ok(body) = anthropic::from_chat(&req, 4096, style) else {
            continue;
        };
        let bytes = serde_json::to_vec(&body).expect("a Messages body serializes");
        let v: Value = serde_json::from_slice(&bytes).expect("and parses");
        // A conversation of system messages only has no turns: Anthropic refuses it, and so
        // does this crate; that is the lane's answer to give.
        if body["messages"].as_array().is_some_and(|m| !m.is_empty())
            && let Err(e) = MessagesRequest::from_value(&v, Endpoint::Messages)
        {
            panic!("from_chat made a body that is not a Messages request: {e}\n{v}");
        }
    }
}

/// A `POST /v1/messages` (or `count_tokens`) body, parsed as the server does (`decode` to a
/// JSON value, kept for passthrough, then `MessagesRequest::from_value`), translated to the
/// canonical request (`to_chat`), and what the gateway does with that: the routing inputs and
/// the body an OpenAI-dialect lane is sent, which must be a chat request this crate accepts.
pub fn anthropic_request(data: &[u8]) {
    let Ok(value) = openai::decode::<Value>(data) else {
        return;
    };
    for endpoint in [Endpoint::Messages, Endpoint::CountTokens] {
        let Ok(req) = MessagesRequest::from_value(&value, endpoint) else {
            continue;
        };
        let _ = req.is_stream();
        let chat = anthropic::to_chat(&req);
        let _ = chat.estimate_input_tokens();
        let _ = (chat.has_images(), chat.has_tools(), chat.wants_thinking());
        let body = serde_json::to_vec(&chat).expect("the canonical request serializes");
        match ChatRequest::from_slice(&body) {
            // `reasoning` is not part of the wire body: the gateway maps it per lane.
            Ok(again) => assert_same_request(&again, &chat, "the body sent upstream is not the canonical request"),
            Err(e) => panic!(
                "to_chat made a body that is not a chat request: {e}\n{}",
                String::from_utf8_lossy(&body)
            ),
        }
        let _ = anthropic::from_chat(&chat, 4096, Some(ThinkingStyle::Budget));
    }
}

/// Two requests are the same on the wire. Numbers that are not integers may differ in their
/// last bit: serde_json (without its `float_roundtrip` feature, which the workspace does not
/// turn on) parses some decimals one ULP off, so a float can change by 1e-16 of itself on its
/// way through the gateway. Harmless for sampling parameters; everything else must be equal.
fn assert_same_request(a: &ChatRequest, b: &ChatRequest, what: &str) {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    let (x, y) = (
        serde_json::to_value(a).expect("request serializes"),
        serde_json::to_value(b).expect("request serializes"),
    );
    assert!(same(&x, &y), "{what}:\n{x}\n{y}");
}

/// An upstream's whole (non-streamed) answer or error body, through everything the gateway
/// reads it with: the usage probes of both dialects, the error-envelope reader, and the answer
/// translators both ways, whose output must be the shape they promise.
pub fn answers(data: &[u8]) {
    let _ = serde_json::from_slice::<ResponseProbe>(data);
    let _ = anthropic::response_usage(data);
    let _ = upstream_error_message(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = build::with_stop_reason(s, "STOP");
    }
    if let Ok(m) = anthropic::response_from_chat(data) {
        assert_eq!(m["type"], "message");
        assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
        for b in m["content"].as_array().expect("content") {
            match b["type"].as_str() {
                Some("text") => assert!(b["text"].as_str().is_some_and(|t| !t.is_empty())),
                Some("tool_use") => assert!(b["id"].is_string() && b["name"].is_string() && b["input"].is_object()),
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert!(m["usage"]["input_tokens"].is_u64() && m["usage"]["output_tokens"].is_u64());
    }
    if let Ok(c) = anthropic::response_to_chat(data, 0) {
        let text = c.to_string();
        let probe: ResponseProbe = serde_json::from_str(&text).expect("the probe reads the translated answer");
        assert!(probe.usage.is_some());
        let msg = &c["choices"][0]["message"];
        assert_eq!(msg["role"], "assistant");
        for call in msg["tool_calls"].as_array().into_iter().flatten() {
            let args = call["function"]["arguments"].as_str().expect("arguments string");
            let _: Value = serde_json::from_str(args).expect("arguments are JSON");
        }
    }
}

/// An OpenAI-dialect upstream's stream, cut where the input says, through the SSE decoder and
/// `StreamFromChat` as the gateway relays it to an Anthropic client. Whatever the upstream
/// sends, the client must get a well-formed Anthropic event stream, framed so that it decodes
/// back to the same events, and the same one however the bytes were cut.
pub fn stream_to_anthropic(data: &[u8]) {
    let cut = Cut::parse(data);
    let events = relay_to_anthropic(&decode(&cut.chunks));
    check_anthropic_grammar(&events);
    check_anthropic_framing(&events);
    if cut.chunks.len() > 1 {
        assert_eq!(
            relay_to_anthropic(&decode(&[cut.stream])),
            events,
            "chunk boundaries changed the answer"
        );
    }
}

/// An Anthropic upstream's stream, cut where the input says, through the SSE decoder and
/// `StreamToChat` (and the passthrough probe) as the gateway relays it to an OpenAI client.
/// Every chunk must be JSON the client and the gateway's own probe can read, `[DONE]` only
/// last, and the result the same however the bytes were cut.
pub fn stream_to_openai(data: &[u8]) {
    let cut = Cut::parse(data);
    let chunks = relay_to_openai(&decode(&cut.chunks));
    check_openai_chunks(&chunks);
    if cut.chunks.len() > 1 {
        assert_eq!(
            relay_to_openai(&decode(&[cut.stream])),
            chunks,
            "chunk boundaries changed the answer"
        );
    }
}

/// The SSE decoder on arbitrary bytes cut at arbitrary places (the property test in sse.rs
/// does this for generated, well-formed streams): the events must not depend on the cuts, and
/// re-encoding them as the passthrough relay does (`encode_data`) must decode to the same.
pub fn sse_decoder(data: &[u8]) {
    let cut = Cut::parse(data);
    let events = decode(&cut.chunks);
    assert_eq!(decode(&[cut.stream]), events, "chunk boundaries changed the events");
    let bytewise: Vec<&[u8]> = cut.stream.chunks(1).collect();
    assert_eq!(decode(&bytewise), events, "byte-at-a-time feeding changed the events");
    let mut buf = Vec::new();
    for e in &events {
        encode_data(&mut buf, e.event.as_deref(), &e.data);
    }
    assert_eq!(decode(&[&buf]), events, "re-encoded events decode differently");
}

/// A fuzz input for the stream targets: a small header that says where to cut, then the
/// stream's bytes.
///
/// - byte 0: bit 7 set = feed the stream one byte at a time; bits 0–3 = number of cuts `k`.
/// - then `k` little-endian `u16` cut offsets (taken modulo the stream length + 1).
/// - the rest is the stream.
///
/// A seed is therefore `\x00` followed by a real stream (no cuts).
pub struct Cut<'a> {
    pub stream: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
}

impl<'a> Cut<'a> {
    pub fn parse(data: &'a [u8]) -> Cut<'a> {
        let Some((&head, mut rest)) = data.split_first() else {
            return Cut {
                stream: data,
                chunks: Vec::new(),
            };
        };
        let mut cuts = Vec::new();
        for _ in 0..(head & 0x0f) {
            let Some((c, r)) = rest.split_first_chunk::<2>() else {
                break;
            };
            cuts.push(usize::from(u16::from_le_bytes(*c)));
            rest = r;
        }
        let stream = rest;
        let chunks = if head & 0x80 != 0 {
            stream.chunks(1).collect()
        } else {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::with_capacity(points.len() + 1);
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            chunks
        };
        Cut { stream, chunks }
    }
}

/// Decodes a stream fed in `chunks`, as the gateway reads an upstream body.
pub fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out);
    }
    d.finish(&mut out);
    out
}

/// An OpenAI-dialect upstream answering an Anthropic client (`Pipe::ToAnthropic`): `[DONE]`
/// finishes, an `error` chunk fails, and a stream that closes without either is finished if a
/// choice had ended and failed otherwise.
pub fn relay_to_anthropic(events: &[SseEvent]) -> Vec<Event> {
    let mut t = StreamFromChat::new("fuzz-model");
    let mut out = Vec::new();
    let mut finished_choice = false;
    let mut done = false;
    for ev in events {
        if ev.data.trim() == "[DONE]" {
            t.finish(&mut out);
            done = true;
            break;
        }
        if let Ok(p) = serde_json::from_str::<ChunkProbe>(&ev.data) {
            finished_choice |= p.finished();
            let _ = p.usage;
            if p.error.is_some() {
                done = true;
            }
        }
        t.push(&ev.data, &mut out);
        if done || t.is_finished() {
            done = true;
            break;
        }
    }
    if !done {
        if finished_choice {
            t.finish(&mut out);
        } else {
            t.fail("api_error", "the upstream stream ended before its answer did", &mut out);
        }
    }
    out
}

/// An Anthropic upstream answering an OpenAI client (`Pipe::ToOpenAi`). `None` as the last
/// element means the stream closed before `message_stop` (the gateway then writes its own
/// error chunk).
pub fn relay_to_openai(events: &[SseEvent]) -> Vec<String> {
    let mut t = StreamToChat::new(1_700_000_000);
    let mut probe = PassthroughProbe::default();
    let mut out = Vec::new();
    for ev in events {
        // The same events, as an Anthropic client's passthrough would read them.
        probe.observe(&ev.data);
        t.push(&ev.data, &mut out);
        if t.is_done() {
            break;
        }
    }
    let _ = probe.usage();
    out
}

/// The SSE the gateway writes for these events decodes back to exactly them.
pub fn check_anthropic_framing(events: &[Event]) {
    let mut buf = Vec::new();
    for e in events {
        e.encode(&mut buf);
    }
    let back = decode(&[&buf]);
    assert_eq!(back.len(), events.len(), "encoded events decode to a different count");
    for (b, e) in back.iter().zip(events) {
        assert_eq!(b.event.as_deref(), Some(e.name));
        let v: Value = serde_json::from_str(&b.data).expect("event data is JSON");
        assert_eq!(v, e.data);
    }
}

/// The Anthropic stream grammar: `message_start`, then content blocks (start, deltas of the
/// block's kind, stop; indexes 0, 1, 2 … in order), then `message_delta` and `message_stop`.
/// An `error` event may end the stream at any point. `ping` may come anywhere.
pub fn check_anthropic_grammar(events: &[Event]) {
    #[derive(PartialEq, Debug)]
    enum State {
        Before,
        InMessage,
        InBlock(u64, &'static str),
        AfterDelta,
        Stopped,
        Failed,
    }
    let mut state = State::Before;
    let mut next_index = 0u64;
    for e in events {
        assert_eq!(e.data["type"], e.name, "event `{}` has a different `type`", e.name);
        assert!(
            state != State::Stopped && state != State::Failed,
            "`{}` after the end of the stream",
            e.name
        );
        state = match (e.name, state) {
            ("ping", s) => s,
            ("error", _) => {
                assert!(e.data["error"]["type"].is_string() && e.data["error"]["message"].is_string());
                State::Failed
            }
            ("message_start", State::Before) => {
                let m = &e.data["message"];
                assert!(m["id"].is_string() && m["model"].is_string() && m["content"].is_array());
                State::InMessage
            }
            ("content_block_start", State::InMessage) => {
                let i = e.data["index"].as_u64().expect("block index");
                assert_eq!(i, next_index, "blocks must be numbered in order");
                next_index += 1;
                let block = &e.data["content_block"];
                let kind = match block["type"].as_str() {
                    Some("text") => "text_delta",
                    Some("tool_use") => {
                        assert!(block["id"].is_string() && block["name"].is_string());
                        "input_json_delta"
                    }
                    other => panic!("unexpected block type {other:?}"),
                };
                State::InBlock(i, kind)
            }
            ("content_block_delta", State::InBlock(i, kind)) => {
                assert_eq!(e.data["index"].as_u64(), Some(i));
                assert_eq!(e.data["delta"]["type"].as_str(), Some(kind));
                if kind == "input_json_delta" {
                    // The translator sends a call's arguments whole: they must be an object.
                    let args = e.data["delta"]["partial_json"].as_str().expect("partial_json");
                    let v: Value = serde_json::from_str(args).expect("tool input is JSON");
                    assert!(v.is_object(), "tool input is not an object: {args}");
                } else {
                    assert!(e.data["delta"]["text"].is_string());
                }
                State::InBlock(i, kind)
            }
            ("content_block_stop", State::InBlock(i, _)) => {
                assert_eq!(e.data["index"].as_u64(), Some(i));
                State::InMessage
            }
            ("message_delta", State::InMessage) => {
                let stop = e.data["delta"]["stop_reason"].as_str().expect("stop_reason");
                assert!(
                    ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"].contains(&stop),
                    "unknown stop_reason {stop}"
                );
                assert!(e.data["usage"]["output_tokens"].is_u64());
                State::AfterDelta
            }
            ("message_stop", State::AfterDelta) => State::Stopped,
            (name, s) => panic!("`{name}` out of order (state {s:?})"),
        };
    }
}

/// What an OpenAI client is sent: chunk objects (or one error object, last), and `[DONE]`
/// only at the very end. Every chunk is readable by the gateway's own probe.
pub fn check_openai_chunks(chunks: &[String]) {
    for (n, c) in chunks.iter().enumerate() {
        let last = n + 1 == chunks.len();
        if c == "[DONE]" {
            assert!(last, "[DONE] before the end");
            continue;
        }
        let v: Value = serde_json::from_str(c).expect("a chunk is JSON");
        if let Some(e) = v.get("error") {
            assert!(last, "something after an error chunk");
            assert!(e["message"].is_string() && e["type"].is_string());
            continue;
        }
        assert_eq!(v["object"], "chat.completion.chunk");
        assert!(v["id"].is_string() && v["model"].is_string() && v["created"].is_u64());
        let choices = v["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(v["usage"].is_object(), "a chunk without choices must carry usage");
        }
        for ch in choices {
            assert!(ch["delta"].is_object());
        }
        let probe: ChunkProbe = serde_json::from_str(c).expect("the gateway's probe reads every chunk");
        let _ = probe.finished();
    }
    if chunks.last().is_some_and(|c| c == "[DONE]") {
        assert!(chunks.len() >= 3, "[DONE] comes after the finish and usage chunks");
        let usage: Value = serde_json::from_str(&chunks[chunks.len() - 2]).expect("usage chunk");
        assert!(usage["usage"]["total_tokens"].is_u64());
    }
}
