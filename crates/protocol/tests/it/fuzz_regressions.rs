//! Inputs the fuzzers (`fuzz/`) crashed on, kept and replayed through the same target bodies
//! and checks (`fuzz_targets`), so each bug stays fixed on stable Rust and in CI.
//!
//! Files live in `tests/fuzz-regressions/<target>/`, as libFuzzer wrote them (after `cargo fuzz
//! tmin`). Every file there is replayed by `every_kept_input_passes`; the ones that found a bug
//! also have a test of their own that says what the bug was. The committed seed corpus
//! (`fuzz/seeds/`) is replayed too: real requests, answers and streams must pass the checks.
//!
//! `*/float-last-bit.json` found no bug of this crate but a limit of serde_json's float
//! parsing (its `float_roundtrip` feature is off): `0.218446744073709551616` parses one ULP
//! away from where the value the gateway serializes parses back, so a body sent upstream may
//! differ from the caller's in a float's last bit. The checks allow that, and only that.

use crate::fuzz_targets::{TARGETS, run};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kept() -> PathBuf {
    root().join("tests/fuzz-regressions")
}

fn replay(target: &str, name: &str) {
    let path = kept().join(target).join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    run(target, &data);
}

/// Replays every file of `dir/<target>/`; returns how many there were.
fn replay_all(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let target_dir = entry.expect("directory entry").path();
        let target = target_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            TARGETS.contains(&target.as_str()),
            "{} is not named after a fuzz target",
            target_dir.display()
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(&target_dir)
            .expect("target directory")
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        for file in files {
            eprintln!("replaying {}", file.display());
            run(&target, &std::fs::read(&file).expect("kept input"));
            n += 1;
        }
    }
    n
}

#[test]
fn every_kept_input_passes() {
    assert!(replay_all(&kept()) > 0);
}

#[test]
fn seed_corpus_passes_the_checks() {
    assert!(replay_all(&root().join("../../fuzz/seeds")) > 0);
}

/// The fuzz harness must be able to fail: a stream that breaks the Anthropic grammar, and
/// chunks an OpenAI client could not read, are caught by its checks.
#[test]
fn the_checks_catch_broken_output() {
    use crate::fuzz_targets::{check_anthropic_grammar, check_openai_chunks};
    use switchyard_protocol::anthropic::StreamFromChat;

    let mut events = Vec::new();
    let mut t = StreamFromChat::new("m");
    t.push(r#"{"choices":[{"delta":{"content":"hi"}}]}"#, &mut events);
    t.finish(&mut events);
    check_anthropic_grammar(&events);
    // A block that is never closed.
    let stop = events
        .iter()
        .position(|e| e.name == "content_block_stop")
        .expect("a block");
    events.remove(stop);
    assert!(std::panic::catch_unwind(|| check_anthropic_grammar(&events)).is_err());
    assert!(std::panic::catch_unwind(|| check_openai_chunks(&["[DONE]".into(), "{}".into()])).is_err());
    assert!(std::panic::catch_unwind(|| check_openai_chunks(&["not json".into()])).is_err());
}

/// Anthropic usage counts were added unchecked (`usage_to_chat`, the stream's usage): an
/// upstream reporting `u64::MAX` input tokens and one cached token panicked where overflow is
/// checked (debug builds, the fuzz build) and wrapped to a free answer in release. They
/// saturate now.
#[test]
fn anthropic_usage_counts_saturate() {
    use switchyard_protocol::anthropic::response_to_chat;
    replay("stream_to_openai", "usage-overflow.sse");
    replay("answers", "usage-overflow.json");
    let body = std::fs::read(kept().join("answers/usage-overflow.json")).expect("kept input");
    let chat = response_to_chat(&body, 0).expect("an answer");
    assert_eq!(chat["usage"]["prompt_tokens"], u64::MAX);
    assert_eq!(chat["usage"]["total_tokens"], u64::MAX);
}

/// A Messages conversation of only thinking blocks (or empty block lists) and no system prompt
/// was accepted and became a chat request with no messages at all, which every lane refuses
/// in its own words (or, for the embedded model, answers from an empty prompt). It is a 400
/// in the caller's dialect now, naming `messages`.
#[test]
fn conversation_with_nothing_to_answer_is_refused() {
    use switchyard_protocol::anthropic::{Endpoint, MessagesRequest};
    replay("anthropic_request", "only-thinking.json");
    let body = std::fs::read(kept().join("anthropic_request/only-thinking.json")).expect("kept input");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    for endpoint in [Endpoint::Messages, Endpoint::CountTokens] {
        let e = MessagesRequest::from_value(&v, endpoint).expect_err("refused");
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("nothing to answer"), "{e}");
    }
    // A system prompt, or one readable block, is enough.
    let mut with_system = v.clone();
    with_system["system"] = "be brief".into();
    assert!(MessagesRequest::from_value(&with_system, Endpoint::Messages).is_ok());
    let mut with_text = v;
    with_text["messages"][1]["content"] = serde_json::json!([{"type": "text", "text": "hi"}]);
    assert!(MessagesRequest::from_value(&with_text, Endpoint::Messages).is_ok());
}

/// Found by the fuzz targets' checks at sizes libFuzzer does not reach: placing n tool results
/// searched the conversation each time, so a 1 MB request of 20,000 results took minutes (in
/// the fuzz build) in `to_chat` and in `from_chat`, and one 1 MB stream chunk of 80,000 parallel
/// tool-call fragments took seconds in `StreamFromChat`. These check that such inputs still
/// translate correctly (every result, in order); at n² they would not finish in a test run.
#[test]
fn many_tool_results_keep_their_order() {
    use serde_json::json;
    use switchyard_protocol::anthropic::{Endpoint, MessagesRequest, ThinkingStyle, from_chat, to_chat};
    use switchyard_protocol::openai::Role;
    const N: usize = 20_000;

    let mut messages = vec![
        json!({"role": "user", "content": "go"}),
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}),
    ];
    for i in 0..N {
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("r{i}"), "content": "x"},
            {"type": "text", "text": format!("t{i}")}
        ]}));
    }
    let body = json!({"model": "m", "max_tokens": 5, "messages": messages});
    let req = MessagesRequest::from_value(&body, Endpoint::Messages).expect("valid");
    let chat = to_chat(&req);
    // user, assistant, N tool messages in order, then one user turn with all the text.
    assert_eq!(chat.messages.len(), N + 3);
    for (i, m) in chat.messages[2..N + 2].iter().enumerate() {
        assert_eq!((m.role, m.tool_call_id.clone()), (Role::Tool, Some(format!("r{i}"))));
    }
    assert_eq!(chat.messages[N + 2].role, Role::User);

    let back = from_chat(&chat, 100, Some(ThinkingStyle::Budget)).expect("translates");
    let turns = back["messages"].as_array().expect("turns");
    assert_eq!(turns.len(), 3);
    let last = turns[2]["content"].as_array().expect("blocks");
    assert_eq!(last.len(), N + 1);
    for (i, b) in last[..N].iter().enumerate() {
        assert_eq!(b["tool_use_id"], format!("r{i}"));
    }
    assert_eq!(last[N]["type"], "text");
}

#[test]
fn many_parallel_calls_in_one_chunk() {
    use serde_json::json;
    use switchyard_protocol::anthropic::StreamFromChat;
    const N: u64 = 20_000;

    let calls: Vec<_> = (0..N)
        .map(|i| json!({"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}))
        .collect();
    let chunk = json!({"choices": [{"delta": {"tool_calls": calls}, "finish_reason": "tool_calls"}]});
    // A second fragment for every call, in reverse order.
    let more: Vec<_> = (0..N)
        .rev()
        .map(|i| json!({"index": i, "function": {"arguments": " "}}))
        .collect();
    let chunk2 = json!({"choices": [{"delta": {"tool_calls": more}}]});
    let mut t = StreamFromChat::new("m");
    let mut out = Vec::new();
    t.push(&chunk.to_string(), &mut out);
    t.push(&chunk2.to_string(), &mut out);
    t.finish(&mut out);
    let ids: Vec<&str> = out
        .iter()
        .filter(|e| e.name == "content_block_start")
        .filter_map(|e| e.data["content_block"]["id"].as_str())
        .collect();
    assert_eq!(ids.len(), N as usize);
    assert!(ids.iter().enumerate().all(|(i, id)| *id == format!("c{i}")));
    crate::fuzz_targets::check_anthropic_grammar(&out);
}

/// `from_chat` copied a caller's `stop` array, `top_k` and forced tool name into the Messages
/// body whatever their type, so `"stop": [1]` or `"top_k": -1` made a body Anthropic (and
/// this crate's own `MessagesRequest`) refuses, although `from_chat` promises a body the lane
/// takes. Only what Anthropic takes goes out now.
#[test]
fn from_chat_sends_only_what_anthropic_takes() {
    use switchyard_protocol::anthropic::from_chat;
    use switchyard_protocol::openai::ChatRequest;
    replay("openai_request", "wrongly-typed-options.json");
    let body = std::fs::read(kept().join("openai_request/wrongly-typed-options.json")).expect("kept input");
    let req = ChatRequest::from_slice(&body).expect("a valid chat request");
    let out = from_chat(&req, 100, None).expect("translates");
    assert_eq!(out["stop_sequences"], serde_json::json!(["END"]));
    assert!(out.get("top_k").is_none());
    assert_eq!(out["tool_choice"], serde_json::json!({"type": "auto"}));
}
