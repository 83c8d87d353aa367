//! The happy path: plain and streamed answers, usage, tools, images and response_format
//! passed through, model listing and health.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn plain_answer_carries_routing_headers_and_upstream_gets_lane_model_and_its_own_key() {
    let up = FakeUpstream::start("alpha").await;
    let gw = Running::start(&config_for(&[up.base_url()], "server: { keys: [client-secret] }\n"));
    let r = gw
        .post(hello("default"), &[("authorization", "Bearer client-secret")])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), "default");
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    assert_eq!(header(&r, "x-switchyard-attempts"), "l0:ok");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "hello from alpha");
    assert_eq!(v["usage"]["prompt_tokens"], 7);
    let got = up.last_chat();
    assert_eq!(got.body["model"], "m0");
    assert_eq!(got.body["messages"][0]["content"], "Say hello");
    // The caller's key never leaves the gateway; the provider's own key is used.
    assert_eq!(got.headers["authorization"], "Bearer provider-key-0");
    let all_headers = format!("{:?}", got.headers);
    assert!(!all_headers.contains("client-secret"), "{all_headers}");
}

/// A plain-HTTP upstream is reached directly unless a proxy in the environment claims it
/// (`HTTP_PROXY`, as curl reads it): then the request goes through that proxy. The fake plays
/// the proxy here (a proxy is sent the URL in absolute form, and the fake serves it by path);
/// the upstream's own name does not resolve, so only the proxy can have answered.
#[tokio::test]
async fn a_proxy_from_the_environment_carries_plain_http_requests() {
    let proxy = FakeUpstream::start("the proxy").await;
    let proxy_url = proxy.base_url().trim_end_matches("/v1").to_owned();
    let config = config_for(&["http://upstream.invalid/v1".to_owned()], "");
    let gw = Running::start_with(&config, &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "")]);
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 200, "{}", gw.stderr());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hello from the proxy");
    let got = proxy.last_chat();
    assert_eq!(got.headers["host"], "upstream.invalid");
    assert_eq!(got.headers["authorization"], "Bearer provider-key-0");
    assert_eq!(got.body["model"], "m0");

    // Without the proxy the same config gets no answer (the name does not resolve, or its
    // lookup times out), and the proxy sees nothing.
    let hits = proxy.hits();
    let gw = Running::start(&config);
    let r = gw.post(hello("default"), &[]).await;
    let attempts = header(&r, "x-switchyard-attempts");
    assert!(r.status().is_server_error(), "{} {}", r.status(), gw.stderr());
    assert!(["l0:connect", "l0:timeout"].contains(&attempts.as_str()), "{attempts}");
    assert_eq!(proxy.hits(), hits);
}

#[tokio::test]
async fn streamed_answer_ends_with_done_and_usage_only_when_asked() {
    let up = FakeUpstream::start("beta").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));
    let mut body = hello("default");
    body["stream"] = json!(true);
    let r = gw.post(body.clone(), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    assert_eq!(header(&r, "x-switchyard-lane"), "l0");
    let events = sse_data(r).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(stream_text(&events), "hello from beta");
    assert!(
        !events.iter().any(|e| e.contains("\"usage\":{")),
        "usage chunk must not reach a client that did not ask: {events:?}"
    );
    // The gateway asked the upstream for usage anyway, for its ledger.
    assert_eq!(up.last_chat().body["stream_options"]["include_usage"], true);

    body["stream_options"] = json!({"include_usage": true});
    let events = sse_data(gw.post(body, &[]).await).await;
    let usage: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn tools_images_and_response_format_pass_through_both_ways() {
    let up = FakeUpstream::start("gamma").await;
    let gw = Running::start(&config_for(&[up.base_url()], ""));
    let body = json!({
        "model": "default",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "temperature": 0,
        "seed": 42,
        "keep_alive": "10m"
    });
    let r = gw.post(body.clone(), &[]).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent = up.last_chat().body;
    let mut expected = body.clone();
    expected["model"] = json!("m0");
    assert_eq!(
        sent, expected,
        "everything but the model must reach the upstream unchanged"
    );

    // A tool result goes back the same way.
    let follow = json!({
        "model": "default",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]
    });
    assert_eq!(gw.post(follow.clone(), &[]).await.status(), 200);
    let mut expected = follow["messages"].clone();
    // `content: null` beside `tool_calls` is the same as no content (OpenAI's own schema).
    expected[1].as_object_mut().unwrap().remove("content");
    assert_eq!(up.last_chat().body["messages"], expected);

    // Streamed tool calls arrive as deltas.
    let mut s = body;
    s["stream"] = json!(true);
    let events = sse_data(gw.post(s, &[]).await).await;
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"tool_calls\"") && e.contains("get_weather")),
        "{events:?}"
    );
}

#[tokio::test]
async fn models_lists_routes_and_lanes_and_healthz_answers() {
    let up = FakeUpstream::start("a").await;
    let gw = Running::start(&config_for(&[up.base_url()], "  fast: [l0]\n"));
    let v: serde_json::Value = client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "fast", "l0"]);
    assert_eq!(v["data"][2]["switchyard"]["kind"], "lane");
    let h = client().get(format!("{}/healthz", gw.url)).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test]
async fn task_selection_by_header_lane_alias_and_rules() {
    let (a, b) = (FakeUpstream::start("a").await, FakeUpstream::start("b").await);
    let extra = "  second: [l1]\n  tooling: { chain: [l1], when: { has_tools: true } }\naliases:\n  \"claude-haiku-*\": second\n  \"claude-*\": default\n";
    let gw = Running::start(&config_for(&[a.base_url(), b.base_url()], extra));
    let r = gw.post(hello("default"), &[("x-switchyard-task", "second")]).await;
    assert_eq!(
        (header(&r, "x-switchyard-route"), header(&r, "x-switchyard-lane")),
        ("second".into(), "l1".into())
    );
    let r = gw.post(hello("l1"), &[]).await;
    assert_eq!(
        (header(&r, "x-switchyard-route"), header(&r, "x-switchyard-lane")),
        ("l1".into(), "l1".into())
    );
    let r = gw.post(hello("claude-haiku-4-5"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-route"), "second");
    let r = gw.post(hello("claude-opus-5-5"), &[]).await;
    assert_eq!(header(&r, "x-switchyard-route"), "default");
    let mut tools = hello("claude-opus-5-5");
    tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    let r = gw.post(tools, &[]).await;
    assert_eq!(header(&r, "x-switchyard-route"), "tooling");

    let r = gw.post(hello("gpt-unknown"), &[]).await;
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("routes are: default, second, tooling"),
        "{v}"
    );
    let r = gw.post(hello("default"), &[("x-switchyard-task", "nope")]).await;
    assert_eq!(r.status(), 404);
}
