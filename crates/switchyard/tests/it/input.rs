//! Bad input gets a clear 4xx in OpenAI's shape and never a crash; keys are checked.

use crate::support::*;

async fn raw(gw: &Running, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors_and_the_server_lives_on() {
    let up = FakeUpstream::start("a").await;
    let gw = Running::start(&config_for(&[up.base_url()], "server: { max_body: 64KiB }\n"));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"model\": \"default\", ".to_vec(), 400, "not valid JSON"),
        (b"not json at all".to_vec(), 400, "not valid JSON"),
        (br#"{"model": 5, "messages": []}"#.to_vec(), 400, "`model`"),
        (
            br#"{"model": "default", "messages": [{"role": "robot", "content": "x"}]}"#.to_vec(),
            400,
            "unknown variant `robot`",
        ),
        (
            br#"{"model": "default", "messages": [{"role": "user", "content": {"a": 1}}]}"#.to_vec(),
            400,
            "string or an array of content parts",
        ),
        (br#"{"model": "default", "messages": "hi"}"#.to_vec(), 400, "`messages`"),
        (
            format!(
                "{{\"model\":\"default\",\"messages\":[{{\"role\":\"user\",\"content\":\"x\",\"meta\":{}}}]}}",
                "[".repeat(5000)
            )
            .into_bytes(),
            400,
            "recursion limit",
        ),
        (
            b"{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (vec![b' '; 70 * 1024], 413, "larger than this gateway accepts"),
    ];
    for (body, status, needle) in cases {
        let (s, v) = raw(&gw, body).await;
        assert_eq!(s, status, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "expected `{needle}` in {v}"
        );
    }
    // A chunked body over the limit (no Content-Length) is refused too.
    let stream = futures_util::stream::iter((0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(up.hits(), 0);
    // Still serving.
    assert_eq!(gw.post(hello("default"), &[]).await.status(), 200);
    let r = client().get(format!("{}/v1/nothing", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn keys_are_required_when_configured_in_either_header() {
    let up = FakeUpstream::start("a").await;
    let gw = Running::start_with(
        &config_for(&[up.base_url()], "server: { keys: [\"${MY_GATEWAY_KEY}\"] }\n"),
        &[("MY_GATEWAY_KEY", "s3cret")],
    );
    let r = gw.post(hello("default"), &[]).await;
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    let r = gw.post(hello("default"), &[("authorization", "Bearer wrong")]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        gw.post(hello("default"), &[("authorization", "Bearer s3cret")])
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.post(hello("default"), &[("x-api-key", "s3cret")]).await.status(),
        200
    );
    let r = client().get(format!("{}/v1/models", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        client()
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(up.hits(), 2);
}
