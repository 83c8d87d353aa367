//! The Anthropic dialect end to end: `/v1/messages` answered by OpenAI-speaking lanes, passed
//! through to an Anthropic lane, OpenAI clients answered by an Anthropic lane, errors in
//! Anthropic's shape, `count_tokens`, and the real clients (the `anthropic` Python SDK and
//! Claude Code) when they are installed.

use crate::support::*;
use serde_json::{Value, json};
use std::process::Command;
use switchyard_core::ledger::recent;

async fn post_messages(gw: &Running, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client()
        .post(format!("{}/v1/messages?beta=true", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

/// `(event name, data)` of an SSE body.
async fn sse_events(r: reqwest::Response) -> Vec<(String, Value)> {
    let text = r.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data: String = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (name, serde_json::from_str(&data).unwrap_or(Value::String(data)))
        })
        .collect()
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 128000, "stream": stream,
           "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
           "messages": [{"role": "user", "content": "Say hello"}],
           "thinking": {"type": "adaptive"}, "context_management": {"edits": []},
           "output_config": {"effort": "high"}, "metadata": {"user_id": "u"}})
}

const OPENAI_LANE: &str = "lanes:\n  l0: { provider: p0, model: m0, max_output_tokens: 4096 }\n";

#[tokio::test]
async fn messages_are_answered_by_an_openai_lane_plain_and_streamed() {
    let up = FakeUpstream::start("alpha").await;
    let cfg = config_for(&[up.base_url()], "aliases:\n  \"claude-*\": default\n")
        .replace("lanes:\n  l0: { provider: p0, model: m0 }\n", OPENAI_LANE);
    let gw = Running::start(&cfg);

    let r = post_messages(&gw, ask("claude-opus-4-8", false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("assistant"), Some("end_turn"))
    );
    assert_eq!(v["content"], json!([{"type": "text", "text": "hello from alpha"}]));
    assert_eq!(v["usage"], json!({"input_tokens": 7, "output_tokens": 3}));
    // What the OpenAI lane got: a clean canonical request, max_tokens clamped to the lane,
    // no Anthropic-only fields, no reasoning ask for a lane that cannot think.
    let got = up.last_chat().body;
    assert_eq!(got["model"], "m0");
    assert_eq!(got["max_tokens"], 4096);
    assert_eq!(
        got["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    for k in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
        "reasoning_effort",
        "system",
    ] {
        assert!(got.get(k).is_none(), "{k} leaked to the lane: {got}");
    }

    let r = post_messages(&gw, ask("claude-opus-4-8", true), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    let events = sse_events(r).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    // Every event's data names its own type, as the SDKs expect.
    assert!(events.iter().all(|(n, d)| d["type"] == json!(n)), "{events:?}");
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "hello from alpha");
    assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[7].1["usage"], json!({"input_tokens": 7, "output_tokens": 3}));

    // The ledger knows the dialect and the usage of both.
    let mut gw = gw;
    gw.stop();
    let rows: Vec<_> = recent(&gw.ledger_path(), 10)
        .unwrap()
        .into_iter()
        .map(|r| (r.dialect, r.status, r.tokens_in, r.tokens_out))
        .collect();
    let row = ("anthropic".to_owned(), "ok".to_owned(), Some(7), Some(3));
    assert_eq!(rows, [row.clone(), row]);
}

#[tokio::test]
async fn tool_use_round_trips_through_an_openai_lane() {
    let up = FakeUpstream::start("tools").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));
    let tools = json!([{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                       {"type": "web_search_20250305", "name": "web_search"}]);
    for stream in [false, true] {
        let body = json!({"model": "default", "max_tokens": 100, "stream": stream, "tools": tools,
                          "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
                          "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        let r = post_messages(&gw, body, &[]).await;
        assert_eq!(r.status(), 200);
        let (blocks, stop) = if stream {
            let events = sse_events(r).await;
            let start = events
                .iter()
                .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
                .unwrap();
            let args: String = events
                .iter()
                .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
                .collect();
            let mut block = start.1["content_block"].clone();
            block["input"] = serde_json::from_str(&args).unwrap();
            let stop = events.iter().find(|(n, _)| n == "message_delta").unwrap().1["delta"]["stop_reason"].clone();
            (json!([block]), stop)
        } else {
            let v: Value = r.json().await.unwrap();
            (v["content"].clone(), v["stop_reason"].clone())
        };
        assert_eq!(
            blocks,
            json!([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}])
        );
        assert_eq!(stop, "tool_use");
        let got = up.last_chat().body;
        // The client tool is offered as a function; Anthropic's server tool is not.
        assert_eq!(got["tools"].as_array().unwrap().len(), 1);
        assert_eq!(got["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(
            (got["tool_choice"].clone(), got["parallel_tool_calls"].clone()),
            (json!("auto"), json!(false))
        );
    }
    // The tool's result goes back as an OpenAI tool message right after the call.
    let body = json!({"model": "default", "max_tokens": 100, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]}]});
    let r = post_messages(&gw, body, &[]).await;
    assert_eq!(r.status(), 200);
    let got = up.last_chat().body;
    assert_eq!(
        got["messages"],
        json!([{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    );
}

fn anthropic_config(up: &FakeUpstream, extra: &str) -> String {
    format!(
        "providers:\n  claude-api: {{ kind: anthropic, base_url: \"{}\", api_key: \"sk-ant-provider\", timeouts: {{ first_byte: 2s, idle: 2s }} }}\n\
         lanes:\n  claude: {{ provider: claude-api, model: claude-sonnet-4-5 }}\n\
         routes:\n  default: [claude]\n{extra}",
        up.base_url()
    )
}

#[tokio::test]
async fn an_anthropic_lane_gets_the_callers_own_body_and_headers() {
    let up = FakeUpstream::start("claude").await;
    let gw = Running::start(&anthropic_config(&up, "aliases:\n  \"claude-*\": default\n"));
    let mut body = ask("claude-opus-4-8", false);
    body["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]},
                              {"role": "assistant", "content": [{"type": "thinking", "thinking": "…", "signature": "sig"}, {"type": "text", "text": "Hi"}]},
                              {"role": "user", "content": "again"}]);
    let beta = "claude-code-20250219,context-management-2025-06-27";
    let r = post_messages(
        &gw,
        body.clone(),
        &[("anthropic-beta", beta), ("x-api-key", "client-key")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "hello from claude");
    let got = up.last_chat();
    assert_eq!(got.path, "/v1/messages");
    // Everything but the model, max_tokens (64000 for Sonnet 4.5) and thinking is the
    // caller's own. Claude Code asked Opus 4.8 for adaptive thinking at effort "high";
    // Sonnet 4.5 takes a budget instead.
    let mut expected = body;
    expected["model"] = json!("claude-sonnet-4-5");
    expected["max_tokens"] = json!(64000);
    expected["thinking"] = json!({"type": "enabled", "budget_tokens": 24576});
    assert_eq!(got.body, expected);
    assert_eq!(got.headers["anthropic-beta"], beta);
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert_eq!(got.headers["x-api-key"], "sk-ant-provider");
    assert!(!format!("{:?}", got.headers).contains("client-key"));

    // Streams pass through event by event.
    let r = post_messages(&gw, ask("claude-opus-4-8", true), &[]).await;
    let events = sse_events(r).await;
    assert_eq!(events.first().unwrap().0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert!(events.iter().any(|(n, _)| n == "ping"));
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "hello from claude");

    // count_tokens asks the Anthropic lane, with the caller's body.
    let r = client()
        .post(format!("{}/v1/messages/count_tokens?beta=true", gw.url))
        .json(&json!({"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-count"), "exact");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"input_tokens": 42}));

    let mut gw = gw;
    gw.stop();
    let usage: Vec<_> = recent(&gw.ledger_path(), 10)
        .unwrap()
        .into_iter()
        .map(|r| (r.tokens_in, r.tokens_out))
        .collect();
    // Cached input counts as input.
    assert_eq!(usage, [(Some(12), Some(3)), (Some(12), Some(3))]);
}

#[tokio::test]
async fn openai_clients_are_answered_by_an_anthropic_lane() {
    let up = FakeUpstream::start("claude").await;
    let gw = Running::start(&anthropic_config(&up, ""));
    let body = json!({"model": "default", "max_tokens": 50, "temperature": 1.5,
                      "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Say hello"}]});
    let r = gw.post(body.clone(), &[]).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "hello from claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(
        up.last_chat().body,
        json!({"model": "claude-sonnet-4-5", "system": "sys", "max_tokens": 50, "temperature": 1.0,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]})
    );
    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = sse_data(gw.post(body, &[]).await).await;
    assert_eq!(stream_text(&events), "hello from claude");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    );

    // An Anthropic stream cut before `message_stop` ends in an error, never a clean [DONE].
    up.set(Behavior::BreakAfter(4));
    let events = sse_data(
        gw.post(
            json!({"model": "default", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
            &[],
        )
        .await,
    )
    .await;
    assert!(events.last().unwrap().contains("\"error\""), "{events:?}");
    assert!(!events.contains(&"[DONE]".to_owned()));
}

#[tokio::test]
async fn errors_come_in_anthropics_shape() {
    let up = FakeUpstream::start("e").await;
    let gw = Running::start(&config_for(&[up.base_url()], "server: { keys: [k1] }\n"));
    let auth = [("x-api-key", "k1")];
    let kind = |v: &Value| (v["type"].clone(), v["error"]["type"].clone());

    let r = post_messages(&gw, ask("default", false), &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        kind(&r.json().await.unwrap()),
        (json!("error"), json!("authentication_error"))
    );

    let r = post_messages(
        &gw,
        json!({"model": "default", "messages": [{"role": "user", "content": "x"}]}),
        &auth,
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(kind(&v), (json!("error"), json!("invalid_request_error")));
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"), "{v}");

    let r = client()
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "k1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not valid JSON"));

    let r = post_messages(&gw, ask("gpt-9", false), &auth).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(kind(&v), (json!("error"), json!("not_found_error")));
    assert_eq!(v["error"]["code"], "model_not_found");

    // Every lane down: overloaded, in Anthropic's words, with the attempts in the header.
    up.set(Behavior::status(503, r#"{"error":{"message":"busy"}}"#));
    let r = post_messages(&gw, ask("default", false), &auth).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:overloaded");
    assert_eq!(
        kind(&r.json().await.unwrap()),
        (json!("error"), json!("overloaded_error"))
    );

    // A lane's own refusal of the caller's request is passed on as invalid_request_error.
    up.set(Behavior::status(400, r#"{"error":{"message":"bad tool schema"}}"#));
    let r = post_messages(&gw, ask("default", true), &auth).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("bad tool schema"));

    // count_tokens without an Anthropic lane: the gateway's estimate, said to be one.
    let r = client()
        .post(format!("{}/v1/messages/count_tokens", gw.url))
        .header("x-api-key", "k1")
        .json(&json!({"model": "default", "system": "x".repeat(400), "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-count"), "estimate");
    let n = r.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap();
    assert!((100..=120).contains(&n), "{n}");
}

#[tokio::test]
async fn a_request_no_lane_can_take_is_a_400_not_a_retryable_503() {
    // A premium-only route without premium allowed, and tools for the embedded-style refusal,
    // are both permanent: Claude Code must not retry them for minutes.
    let up = FakeUpstream::start("p").await;
    let cfg = format!(
        "providers:\n  paid: {{ kind: openai, base_url: \"{}\", premium: true }}\nlanes:\n  l0: {{ provider: paid, model: m }}\nroutes:\n  default: [l0]\n",
        up.base_url()
    );
    let gw = Running::start(&cfg);
    let r = post_messages(&gw, ask("default", false), &[]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_capable_lane");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn the_embedded_engine_answers_messages_and_names_the_stop_sequence() {
    // The deterministic stand-in for llama.cpp (it echoes the question word by word).
    let gw = Running::start_with(
        "providers:\n  local: { kind: embedded }\nlanes:\n  tiny: { provider: local }\nroutes:\n  default: [tiny]\n",
        &[("SWITCHYARD_ENGINE", "fake")],
    );
    let body = |stream: bool| {
        json!({"model": "default", "max_tokens": 50, "stream": stream, "stop_sequences": ["gamma"],
               "messages": [{"role": "user", "content": "alpha beta gamma delta"}]})
    };
    let v: Value = post_messages(&gw, body(false), &[]).await.json().await.unwrap();
    assert_eq!(v["content"], json!([{"type": "text", "text": "echo: alpha beta"}]));
    assert_eq!(
        (v["stop_reason"].clone(), v["stop_sequence"].clone()),
        (json!("stop_sequence"), json!("gamma"))
    );
    let events = sse_events(post_messages(&gw, body(true), &[]).await).await;
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "gamma"})
    );
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "echo: alpha beta");
}

/// A client program is required (CI installs them) or, on a developer's machine without it,
/// the test says so and skips.
fn required(what: &str) -> bool {
    if std::env::var("SWITCHYARD_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!("{what} is not installed but SWITCHYARD_REQUIRE_CLIENTS=1");
    }
    eprintln!("skipped: {what} is not installed (set SWITCHYARD_REQUIRE_CLIENTS=1 to require it)");
    false
}

const SDK_SCRIPT: &str = r#"
import json, sys, anthropic
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="k1")
out = {}
m = c.messages.create(model="claude-opus-4-8", max_tokens=4000, system="Be brief.",
                      messages=[{"role": "user", "content": "Say hello"}])
out["create"] = [m.content[0].text, m.stop_reason, m.usage.input_tokens, m.usage.output_tokens]
with c.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                       messages=[{"role": "user", "content": "Say hello"}]) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
out["stream"] = [text, final.stop_reason, final.usage.output_tokens]
tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
t = c.messages.create(model="claude-sonnet-4-5", max_tokens=100, tools=tools,
                      messages=[{"role": "user", "content": "Weather in Paris?"}])
out["tools"] = [t.stop_reason, t.content[0].type, t.content[0].name, t.content[0].input]
with c.messages.stream(model="claude-sonnet-4-5", max_tokens=100, tools=tools,
                       messages=[{"role": "user", "content": "Weather in Paris?"}]) as s:
    f = s.get_final_message()
out["tools_stream"] = [f.stop_reason, f.content[-1].name, f.content[-1].input]
out["models"] = [m.id for m in c.models.list()]
out["count"] = c.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]).input_tokens
try:
    c.messages.create(model="gpt-9", max_tokens=5, messages=[{"role": "user", "content": "x"}])
except anthropic.NotFoundError as e:
    out["error"] = [e.status_code, e.body["error"]["type"]]
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_anthropic_python_sdk_works_against_an_openai_lane() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import anthropic"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk && !required("the `anthropic` Python package") {
        return;
    }
    let up = FakeUpstream::start("sdk").await;
    let gw = Running::start(&config_for(
        &[up.base_url()],
        "server: { keys: [k1] }\naliases:\n  \"claude-*\": default\n",
    ));
    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", SDK_SCRIPT, &url]).output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({
            "create": ["hello from sdk", "end_turn", 7, 3],
            "stream": ["hello from sdk", "end_turn", 3],
            "tools": ["tool_use", "tool_use", "get_weather", {"city": "Paris"}],
            "tools_stream": ["tool_use", "get_weather", {"city": "Paris"}],
            "models": ["default", "l0"],
            "count": 5,
            "error": [404, "not_found_error"]
        })
    );
}

fn claude_bin() -> Option<String> {
    let bin = std::env::var("SWITCHYARD_CLAUDE_BIN").unwrap_or_else(|_| "claude".into());
    Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(bin)
}

#[tokio::test]
async fn claude_code_runs_a_tool_through_an_openai_lane() {
    let Some(bin) = claude_bin() else {
        required("Claude Code (`claude`, or SWITCHYARD_CLAUDE_BIN)");
        return;
    };
    // The lane plays the model: it asks Claude Code to run `echo`, then reports what came back.
    let up = FakeUpstream::start("lane").await;
    let marker = format!("sy-{}", std::process::id());
    up.set(Behavior::UseTool {
        tool: "Bash".into(),
        arguments: json!({"command": format!("echo {marker}"), "description": "print a marker"}).to_string(),
    });
    let gw = Running::start(&config_for(&[up.base_url()], "aliases:\n  \"claude-*\": default\n"));
    let home = tempfile::tempdir().unwrap();
    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["-p", "Print the marker", "--allowedTools", "Bash(echo:*)"])
            .env("ANTHROPIC_BASE_URL", &url)
            .env("ANTHROPIC_AUTH_TOKEN", "any")
            .env_remove("ANTHROPIC_API_KEY")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("HOME", home.path())
            .current_dir(home.path())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "claude failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The answer quotes the tool's real output: Claude Code ran `echo` on the lane's request
    // and sent the result back through the translation.
    assert!(stdout.contains(&format!("the tool said: {marker}")), "{stdout}");
    // The lane saw Claude Code's tools, and later the tool's result as an OpenAI tool message.
    let reqs = up.requests();
    assert!(
        reqs.iter()
            .any(|r| r.body["tools"].as_array().is_some_and(|t| t.len() > 5))
    );
    assert!(reqs.iter().any(|r| {
        let last = r.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        last["role"] == "tool" && last["content"].as_str().is_some_and(|c| c.contains(&marker))
    }));
}

#[tokio::test]
async fn switchyard_claude_starts_its_own_gateway() {
    let Some(bin) = claude_bin() else {
        required("Claude Code (`claude`, or SWITCHYARD_CLAUDE_BIN)");
        return;
    };
    let up = FakeUpstream::start("inproc").await;
    up.set(Behavior::UseTool {
        tool: "none".into(),
        arguments: "{}".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_for(&[up.base_url()], "aliases:\n  \"claude-*\": default\n")
        // Nothing listens there: `switchyard claude` must start its own gateway.
        + &format!("server: {{ listen: \"{}\" }}\nstorage: {{ ledger: \"{}\" }}\n", refused_addr(), dir.path().join("l.db").display());
    let path = dir.path().join("switchyard.yaml");
    std::fs::write(&path, cfg).unwrap();
    let home = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["claude", "--config"])
            .arg(&path)
            .args(["--claude-bin", &bin, "-p", "Say hello"])
            .env("HOME", &home)
            .current_dir(&home)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello from inproc"), "{stdout}");
}
