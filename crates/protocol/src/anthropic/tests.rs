#![expect(clippy::unwrap_used)]
use super::*;
use crate::sse::{SseDecoder, SseEvent};
use proptest::prelude::*;
use serde_json::json;

fn parse(v: Value) -> Result<MessagesRequest, InvalidRequest> {
    MessagesRequest::from_value(&v, Endpoint::Messages)
}

fn chat_json(req: &ChatRequest) -> Value {
    serde_json::to_value(req).unwrap()
}

/// A request shaped like the one Claude Code 2.1 sends in print mode (captured from
/// `claude -p`, trimmed): system blocks with cache_control, a mid-conversation system message,
/// adaptive thinking, context_management, output_config, metadata, tools.
fn claude_code_like() -> Value {
    json!({
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "stream": true,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "say hi", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "Available agent types: …"}
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ],
        "metadata": {"user_id": "{\"device_id\":\"abc\"}"},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "some_future_field": {"x": 1}
    })
}

#[test]
fn claude_code_request_translates() {
    let req = parse(claude_code_like()).unwrap();
    assert!(req.is_stream());
    assert!(req.extra.contains_key("context_management") && req.extra.contains_key("some_future_field"));
    let chat = to_chat(&req);
    assert_eq!(
        chat_json(&chat),
        json!({
            "model": "claude-opus-4-8",
            "messages": [
                {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.1.197;\nYou are Claude Code."},
                {"role": "user", "content": "<system-reminder>ctx</system-reminder>\nsay hi\nAvailable agent types: …"}
            ],
            "stream": true,
            "max_tokens": 64000,
            "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run a command",
                       "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]
        })
    );
    assert_eq!(
        chat.reasoning,
        Some(Reasoning {
            effort: "high".into(),
            budget_tokens: None
        })
    );
    assert!(chat.wants_thinking() && chat.has_tools());
}

#[test]
fn every_inbound_block_and_field() {
    let req = parse(json!({
        "model": "m", "max_tokens": 100,
        "system": "be brief",
        "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": true},
        "tools": [{"name": "get", "input_schema": {"type": "object"}}, {"type": "custom", "name": "put"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"}, "title": "a.pdf"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}},
                {"type": "search_result", "source": "s", "title": "t", "content": []}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"k": 1}},
                {"type": "tool_use", "id": "toolu_2", "name": "put", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                    {"type": "text", "text": "denied"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "UE5H"}}
                ]},
                {"type": "text", "text": "go on"}
            ]},
            {"role": "assistant", "content": "prefill"}
        ]
    }))
    .unwrap();
    let chat = to_chat(&req);
    assert_eq!(
        chat_json(&chat),
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,UERG", "filename": "a.pdf"}},
                    {"type": "text", "text": "plain doc"},
                    {"type": "text", "text": "[a `search_result` block was omitted: this model cannot read it]"}
                ]},
                {"role": "assistant", "content": "calling", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": "{\"k\":1}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "put", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: denied"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,UE5H"}},
                    {"type": "text", "text": "go on"}
                ]},
                {"role": "assistant", "content": "prefill"}
            ],
            "max_tokens": 100,
            "tools": [
                {"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "put", "parameters": {"type": "object", "properties": {}}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "parallel_tool_calls": false,
            "stop": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40
        })
    );
    assert_eq!(
        chat.reasoning,
        Some(Reasoning {
            effort: "low".into(),
            budget_tokens: Some(2000)
        })
    );
    // The canonical request it produced is itself valid.
    ChatRequest::from_slice(&serde_json::to_vec(&chat).unwrap()).unwrap();
}

#[test]
fn tool_choice_and_thinking_variants() {
    let with = |choice: Value, thinking: Value| {
        let req = parse(
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice, "thinking": thinking}),
        )
        .unwrap();
        let c = to_chat(&req);
        (c.tool_choice, c.reasoning.map(|r| r.effort))
    };
    assert_eq!(
        with(json!({"type": "any"}), json!({"type": "disabled"})),
        (Some(json!("required")), None)
    );
    assert_eq!(
        with(
            json!({"type": "auto"}),
            json!({"type": "enabled", "budget_tokens": 30000})
        ),
        (Some(json!("auto")), Some("high".into()))
    );
    assert_eq!(
        with(json!({"type": "none"}), json!({"type": "adaptive"})),
        (Some(json!("none")), Some("medium".into()))
    );
    // Only server tools: no tools and no tool_choice reach the lane.
    let req = parse(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "any"}}),
    )
    .unwrap();
    let c = to_chat(&req);
    assert!(c.tools.is_none() && c.tool_choice.is_none());
}

#[test]
fn refusals_name_the_place() {
    let e = parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    // count_tokens needs no max_tokens.
    MessagesRequest::from_value(
        &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        Endpoint::CountTokens,
    )
    .unwrap();
    let e = parse(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "robot", "content": "x"}]})).unwrap_err();
    assert!(e.message.contains("messages[0].role"), "{e}");
    let e =
        parse(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image"}]}]}))
            .unwrap_err();
    assert!(
        e.message.contains("messages[0].content[0]") && e.message.contains("`image` block"),
        "{e}"
    );
    let e =
        parse(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}))
            .unwrap_err();
    assert!(e.message.contains("string `type`"), "{e}");
    let e = parse(json!({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]}))
    .unwrap_err();
    assert!(e.message.contains("cannot be in a `user` message"), "{e}");
    let e = parse(json!({"model": "", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]})).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("model"));
    let e = parse(json!({"model": "m", "max_tokens": 1, "messages": []})).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages"));
    assert!(MessagesRequest::from_value(&json!([1]), Endpoint::Messages).is_err());
}

#[test]
fn every_outbound_field() {
    let chat: ChatRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "sys one"},
            {"role": "developer", "content": [{"type": "text", "text": "sys two"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,UERG"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": ""},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": ""}
        ],
        "stream": true,
        "max_completion_tokens": 500,
        "stop": "STOP",
        "temperature": 1.7, "top_p": 0.5, "top_k": 3,
        "user": "u-1",
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
                  {"type": "function", "function": {"name": "g"}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "response_format": {"type": "json_object"}
    }))
    .unwrap();
    let body = from_chat(&chat, 4096, Some(ThinkingStyle::Budget)).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "system": "sys one\n\nsys two",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
                    {"type": "tool_use", "id": "c2", "name": "g", "input": {"_arguments": "not json"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
                    {"type": "tool_result", "tool_use_id": "c2"},
                    {"type": "text", "text": "thanks"}
                ]}
            ],
            "max_tokens": 500,
            "stream": true,
            "stop_sequences": ["STOP"],
            "temperature": 1.0, "top_p": 0.5, "top_k": 3,
            "metadata": {"user_id": "u-1"},
            "tools": [
                {"name": "f", "description": "d", "input_schema": {"type": "object"}},
                {"name": "g", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })
    );
}

#[test]
fn outbound_thinking_and_limits() {
    let mk = |extra: Value| {
        let mut v =
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "top_k": 5});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value::<ChatRequest>(v).unwrap()
    };
    let b = from_chat(
        &mk(json!({"reasoning_effort": "high", "max_tokens": 32000})),
        4096,
        Some(ThinkingStyle::Budget),
    )
    .unwrap();
    assert_eq!(b["thinking"], json!({"type": "enabled", "budget_tokens": 24576}));
    assert!(b.get("temperature").is_none() && b.get("top_k").is_none());
    // The budget stays below max_tokens; without room for the minimum (1024), no thinking.
    let b = from_chat(
        &mk(json!({"reasoning_effort": "high", "max_tokens": 3000})),
        4096,
        Some(ThinkingStyle::Budget),
    )
    .unwrap();
    assert_eq!(b["thinking"]["budget_tokens"], 2999);
    let b = from_chat(
        &mk(json!({"reasoning_effort": "low", "max_tokens": 800})),
        4096,
        Some(ThinkingStyle::Budget),
    )
    .unwrap();
    assert!(b.get("thinking").is_none() && b["temperature"] == 0.2);
    let mut r = mk(json!({}));
    r.reasoning = Some(Reasoning {
        effort: "medium".into(),
        budget_tokens: Some(5000),
    });
    let b = from_chat(&r, 4096, Some(ThinkingStyle::Budget)).unwrap();
    assert_eq!(
        (b["max_tokens"].clone(), b["thinking"]["budget_tokens"].clone()),
        (json!(4096), json!(4095))
    );
    let audio: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}))
    .unwrap();
    assert!(
        from_chat(&audio, 10, Some(ThinkingStyle::Budget))
            .unwrap_err()
            .contains("audio")
    );
}

#[test]
fn thinking_is_only_sent_where_claude_accepts_it() {
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let mk = |extra: Value| {
        let mut v = json!({"model": "m", "max_tokens": 30000, "reasoning_effort": "high", "top_p": 0.5,
                           "messages": [{"role": "user", "content": "x"}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value::<ChatRequest>(v).unwrap()
    };
    // Newer models think adaptively, with the effort beside it; top_p below 0.95 is dropped.
    let b = from_chat(&mk(json!({})), 1, Some(ThinkingStyle::Adaptive)).unwrap();
    assert_eq!(
        (b["thinking"].clone(), b["output_config"].clone()),
        (json!({"type": "adaptive"}), json!({"effort": "high"}))
    );
    assert!(b.get("top_p").is_none());
    // A lane that does not think gets no thinking, whatever the caller asked.
    let b = from_chat(&mk(json!({})), 1, None).unwrap();
    assert!(b.get("thinking").is_none() && b["top_p"] == 0.5);
    // A forced tool choice and thinking cannot go together.
    let b = from_chat(
        &mk(json!({"tools": tools, "tool_choice": "required"})),
        1,
        Some(ThinkingStyle::Budget),
    )
    .unwrap();
    assert!(b.get("thinking").is_none() && b["tool_choice"]["type"] == "any");
    // Nor can a tool loop whose last call was made without thinking.
    let looped = mk(json!({"tools": tools, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}]}));
    assert!(
        from_chat(&looped, 1, Some(ThinkingStyle::Budget))
            .unwrap()
            .get("thinking")
            .is_none()
    );
    assert!(from_chat(&mk(json!({"tools": tools})), 1, Some(ThinkingStyle::Budget)).unwrap()["thinking"].is_object());
    assert_eq!(thinking_style("claude-sonnet-4-5-20250929"), ThinkingStyle::Budget);
    assert_eq!(thinking_style("claude-opus-4-8"), ThinkingStyle::Adaptive);
    // Anthropic's effort levels become OpenAI's three.
    let req = parse(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                          "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}),
    )
    .unwrap();
    assert_eq!(to_chat(&req).reasoning.unwrap().effort, "high");
}

#[test]
fn awkward_inbound_shapes() {
    // A system note between a tool call and its result does not separate them.
    let req = parse(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}, {"type": "text", "text": "b"}]},
        {"role": "system", "content": "reminder"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}
    ]}))
    .unwrap();
    let msgs = chat_json(&to_chat(&req))["messages"].clone();
    assert_eq!(
        msgs,
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "a\nb", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            {"role": "user", "content": "reminder\n[a `file` image was omitted: this model cannot fetch it]"}
        ])
    );
}

#[test]
fn parallel_calls_sharing_an_index_stay_apart() {
    // Ollama sends every parallel call with index 0; only the id tells them apart.
    let chunks = [
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "Read", "arguments": "{\"p\":1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "Write", "arguments": "{\"q\":2}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ];
    let events = translate_from_chat(&[&openai_sse(&chunks)]);
    let calls: Vec<Value> = events
        .iter()
        .filter(|e| e.name == "content_block_start")
        .map(|e| json!([e.data["content_block"]["id"], e.data["content_block"]["name"]]))
        .collect();
    assert_eq!(calls, [json!(["a", "Read"]), json!(["b", "Write"])]);
    let args: Vec<&str> = events
        .iter()
        .filter_map(|e| e.data["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(args, ["{\"p\":1}", "{\"q\":2}"]);
    // `"error": null` is no error.
    let mut ok = chunk(json!({"content": "hi"}), None);
    ok["error"] = Value::Null;
    let events = translate_from_chat(&[&openai_sse(&[ok])]);
    assert!(events.iter().all(|e| e.name != "error"), "{events:?}");
    assert_eq!(events.last().unwrap().name, "message_stop");
}

#[test]
fn conversation_survives_a_round_trip() {
    let original = json!({
        "model": "m", "max_tokens": 64, "system": "sys",
        "messages": [
            {"role": "user", "content": "what is 2+2?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "let me check"},
                {"type": "tool_use", "id": "t1", "name": "calc", "input": {"expr": "2+2"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "4"},
                {"type": "text", "text": "and?"}
            ]}
        ],
        "tools": [{"name": "calc", "description": "math", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["###"], "top_k": 7
    });
    let chat = to_chat(&parse(original.clone()).unwrap());
    let mut back = from_chat(&chat, 1, Some(ThinkingStyle::Budget)).unwrap();
    // Strings come back as blocks; otherwise the body is the same.
    back["messages"][0]["content"] = json!("what is 2+2?");
    assert_eq!(back, original);
}

#[test]
fn whole_answers_both_ways() {
    let openai = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "qwen",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "ok",
            "reasoning_content": "private thoughts",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"q\":\"x\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37, "prompt_tokens_details": {"cached_tokens": 10}}
    });
    let msg = response_from_chat(openai.to_string().as_bytes()).unwrap();
    assert_eq!(
        msg,
        json!({
            "id": "msg_abc", "type": "message", "role": "assistant", "model": "qwen",
            "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "call_9", "name": "f", "input": {"q": "x"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 10}
        })
    );
    let back = response_to_chat(msg.to_string().as_bytes(), 5).unwrap();
    assert_eq!(
        back,
        json!({
            "id": "msg_abc", "object": "chat.completion", "created": 5, "model": "qwen",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "ok",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"q\":\"x\"}"}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
        })
    );
    let anth = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "hi"}],
        "stop_reason": "max_tokens", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 2}});
    let c = response_to_chat(anth.to_string().as_bytes(), 0).unwrap();
    assert_eq!(c["choices"][0]["message"]["reasoning_content"], "hm");
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(response_usage(anth.to_string().as_bytes()).unwrap().total_tokens, 5);
    assert!(response_from_chat(b"{}").is_err());
    assert!(response_to_chat(b"[]", 0).is_err());
}

#[test]
fn a_matched_stop_sequence_is_reported_as_such() {
    let openai = json!({"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "END",
        "message": {"role": "assistant", "content": "abc"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
    let m = response_from_chat(openai.to_string().as_bytes()).unwrap();
    assert_eq!(
        (m["stop_reason"].clone(), m["stop_sequence"].clone()),
        (json!("stop_sequence"), json!("END"))
    );
    // vLLM reports a stop *token* id as a number: that is not a stop sequence.
    let mut eos = openai.clone();
    eos["choices"][0]["stop_reason"] = json!(106);
    let m = response_from_chat(eos.to_string().as_bytes()).unwrap();
    assert_eq!(
        (m["stop_reason"].clone(), m["stop_sequence"].clone()),
        (json!("end_turn"), Value::Null)
    );
    let mut last = chunk(json!({}), Some("stop"));
    last["choices"][0]["stop_reason"] = json!("END");
    let events = translate_from_chat(&[&openai_sse(&[chunk(json!({"content": "abc"}), None), last])]);
    let delta = &events.iter().find(|e| e.name == "message_delta").unwrap().data["delta"];
    assert_eq!(delta, &json!({"stop_reason": "stop_sequence", "stop_sequence": "END"}));
}

#[test]
fn stop_reason_tables() {
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        assert_eq!(stop_reason_from_finish(finish), stop);
        assert_eq!(finish_from_stop_reason(stop), finish);
    }
    assert_eq!(finish_from_stop_reason("stop_sequence"), "stop");
    assert_eq!(finish_from_stop_reason("pause_turn"), "stop");
}

#[test]
fn error_shapes() {
    assert_eq!(
        serde_json::from_str::<Value>(&error_body("not_found_error", "no such model", Some("model_not_found")))
            .unwrap(),
        json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model", "code": "model_not_found"}})
    );
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(error_type(status), kind, "{status}");
    }
}

// ----- streams -----

fn openai_sse(chunks: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        crate::sse::encode_data(&mut out, None, &c.to_string());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn openai_stream_with_tools() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Let me "}), None),
        chunk(json!({"content": "look."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "Read", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "Bash", "arguments": "{\"comm"}}]}),
            None,
        ),
        // Interleaved: a fragment of the first call after the second started.
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"file_path\":\"/x\"}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "and\":\"ls\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen", "choices": [],
               "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}}),
    ]
}

/// Runs OpenAI SSE bytes, cut into the given pieces, through the decoder and translator.
fn translate_from_chat(pieces: &[&[u8]]) -> Vec<Event> {
    let mut dec = SseDecoder::new();
    let mut tr = StreamFromChat::new("asked-model");
    let mut out = Vec::new();
    let mut evs: Vec<SseEvent> = Vec::new();
    for p in pieces {
        dec.push(p, &mut evs);
    }
    dec.finish(&mut evs);
    for e in evs {
        if e.data == "[DONE]" {
            tr.finish(&mut out);
        } else {
            tr.push(&e.data, &mut out);
        }
    }
    out
}

#[test]
fn openai_stream_becomes_the_full_anthropic_event_sequence() {
    let sse = openai_sse(&openai_stream_with_tools());
    let events = translate_from_chat(&[&sse]);
    let got: Vec<Value> = events.iter().map(|e| json!([e.name, e.data])).collect();
    assert_eq!(
        got,
        vec![
            json!(["message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": "qwen", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}]),
            json!(["ping", {"type": "ping"}]),
            json!(["content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]),
            json!(["content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}]),
            json!(["content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "look."}}]),
            json!(["content_block_stop", {"type": "content_block_stop", "index": 0}]),
            json!(["content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_a", "name": "Read", "input": {}}}]),
            json!(["content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"file_path\":\"/x\"}"}}]),
            json!(["content_block_stop", {"type": "content_block_stop", "index": 1}]),
            json!(["content_block_start", {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_b", "name": "Bash", "input": {}}}]),
            json!(["content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"command\":\"ls\"}"}}]),
            json!(["content_block_stop", {"type": "content_block_stop", "index": 2}]),
            json!(["message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens": 11, "output_tokens": 9}}]),
            json!(["message_stop", {"type": "message_stop"}]),
        ]
    );
}

#[test]
fn stream_ends_cleanly_without_text_and_fails_with_an_error_event() {
    // A length stop with no text at all still yields a well-formed message.
    let sse = openai_sse(&[chunk(json!({"role": "assistant"}), Some("length"))]);
    let names: Vec<&str> = translate_from_chat(&[&sse]).iter().map(|e| e.name).collect();
    assert_eq!(names, ["message_start", "ping", "message_delta", "message_stop"]);
    let mut tr = StreamFromChat::new("m");
    let mut out = Vec::new();
    tr.push(&chunk(json!({"content": "partial"}), None).to_string(), &mut out);
    tr.push(
        r#"{"error":{"message":"upstream died","type":"server_error"}}"#,
        &mut out,
    );
    tr.finish(&mut out);
    let last = out.last().unwrap();
    assert_eq!(last.name, "error");
    assert_eq!(last.data["error"]["message"], "upstream died");
    assert!(tr.is_finished());
}

fn anthropic_sse() -> Vec<u8> {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_9", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "there"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_7", "name": "get", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ];
    let mut out = Vec::new();
    for e in events {
        let name = e["type"].as_str().unwrap().to_owned();
        crate::sse::encode_data(&mut out, Some(&name), &e.to_string());
    }
    out
}

fn translate_to_chat(pieces: &[&[u8]]) -> Vec<String> {
    let mut dec = SseDecoder::new();
    let mut tr = StreamToChat::new(42);
    let mut evs = Vec::new();
    for p in pieces {
        dec.push(p, &mut evs);
    }
    dec.finish(&mut evs);
    let mut out = Vec::new();
    for e in evs {
        tr.push(&e.data, &mut out);
    }
    out
}

/// What an OpenAI client would rebuild from the chunks: text, reasoning, tool calls, finish,
/// usage.
fn rebuild(chunks: &[String]) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut done = false;
    for c in chunks {
        if c == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(c).unwrap();
        if let Some(u) = v.get("usage") {
            usage = u.clone();
        }
        let Some(ch) = v["choices"].get(0) else { continue };
        let d = &ch["delta"];
        text.push_str(d["content"].as_str().unwrap_or_default());
        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or_default());
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let e = calls.entry(tc["index"].as_u64().unwrap()).or_default();
            if let Some(id) = tc["id"].as_str() {
                e.0 = id.into();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                e.1 = n.into();
            }
            e.2.push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
        }
        if !ch["finish_reason"].is_null() {
            finish = ch["finish_reason"].clone();
        }
    }
    json!({"text": text, "reasoning": reasoning, "calls": calls.values().map(|c| json!([c.0, c.1, c.2])).collect::<Vec<_>>(),
           "finish": finish, "usage": usage, "done": done})
}

#[test]
fn anthropic_stream_becomes_openai_chunks() {
    let out = translate_to_chat(&[&anthropic_sse()]);
    assert_eq!(
        rebuild(&out),
        json!({"text": "Hi there", "reasoning": "hmm", "calls": [["toolu_7", "get", "{\"a\":1}"]], "finish": "tool_calls",
               "usage": {"prompt_tokens": 112, "completion_tokens": 30, "total_tokens": 142}, "done": true})
    );
    let first: Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        (first["id"].as_str(), first["model"].as_str(), first["created"].as_u64()),
        (Some("msg_9"), Some("claude-x"), Some(42))
    );
    let mut probe = PassthroughProbe::default();
    let mut dec = SseDecoder::new();
    let mut evs = Vec::new();
    dec.push(&anthropic_sse(), &mut evs);
    for e in &evs {
        probe.observe(&e.data);
    }
    assert!(probe.stopped && probe.error.is_none());
    assert_eq!(
        probe.usage(),
        Some(Usage {
            prompt_tokens: 112,
            completion_tokens: 30,
            total_tokens: 142
        })
    );
}

#[test]
fn anthropic_error_event_becomes_an_openai_error_chunk() {
    let mut tr = StreamToChat::new(0);
    let mut out = Vec::new();
    tr.push(
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        &mut out,
    );
    tr.finish(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let v: Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts {
        out.push(bytes[prev..c].to_vec());
        prev = c;
    }
    out.push(bytes[prev..].to_vec());
    out
}

proptest! {
    /// Wherever the network cuts the bytes, the translation is the same.
    #[test]
    fn openai_to_anthropic_is_independent_of_chunk_boundaries(cuts in proptest::collection::vec(0usize..10_000, 0..40)) {
        let sse = openai_sse(&openai_stream_with_tools());
        let whole = translate_from_chat(&[&sse]);
        let pieces = split_at(&sse, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(translate_from_chat(&refs), whole);
    }

    #[test]
    fn anthropic_to_openai_is_independent_of_chunk_boundaries(cuts in proptest::collection::vec(0usize..10_000, 0..40)) {
        let sse = anthropic_sse();
        let whole = translate_to_chat(&[&sse]);
        let pieces = split_at(&sse, &cuts);
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(translate_to_chat(&refs), whole);
    }

    /// Arbitrary text deltas arrive intact, in order, in one text block.
    #[test]
    fn text_deltas_arrive_intact(parts in proptest::collection::vec(".{0,12}", 1..20)) {
        let mut chunks: Vec<Value> = parts.iter().map(|p| chunk(json!({"content": p}), None)).collect();
        chunks.push(chunk(json!({}), Some("stop")));
        let events = translate_from_chat(&[&openai_sse(&chunks)]);
        let text: String = events.iter().filter(|e| e.name == "content_block_delta")
            .map(|e| e.data["delta"]["text"].as_str().unwrap_or_default().to_owned()).collect();
        prop_assert_eq!(text, parts.concat());
        let starts = events.iter().filter(|e| e.name == "content_block_start").count();
        prop_assert_eq!(starts, usize::from(parts.iter().any(|p| !p.is_empty())));
        prop_assert_eq!(events.last().map(|e| e.name), Some("message_stop"));
    }

    /// The fuzz target's entry point, on stable: random bytes, and random edits of valid
    /// requests and streams.
    #[test]
    fn fuzz_entry_accepts_any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..4000, byte in any::<u8>()) {
        fuzz_entry(&raw);
        let odd_usage = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":5}}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":3}}\n\n".to_vec();
        fuzz_entry(&odd_usage);
        for mut seed in [claude_code_like().to_string().into_bytes(), openai_sse(&openai_stream_with_tools()), anthropic_sse(), odd_usage] {
            let at = cut % seed.len();
            seed[at] = byte;
            fuzz_entry(&seed);
            fuzz_entry(&seed[..at]);
        }
    }

    /// No input makes the translators panic.
    #[test]
    fn arbitrary_input_never_panics(data in ".{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut a = StreamFromChat::new("m");
        let mut b = StreamToChat::new(0);
        let (mut o1, mut o2) = (Vec::new(), Vec::new());
        a.push(&data, &mut o1);
        b.push(&data, &mut o2);
        a.finish(&mut o1);
        b.finish(&mut o2);
        let _ = response_from_chat(&raw);
        let _ = response_to_chat(&raw, 0);
        if let Ok(v) = serde_json::from_slice::<Value>(&raw)
            && let Ok(req) = MessagesRequest::from_value(&v, Endpoint::CountTokens)
        {
            let _ = from_chat(&to_chat(&req), 16, Some(ThinkingStyle::Adaptive));
        }
    }
}
