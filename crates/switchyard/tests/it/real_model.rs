//! The real embedded model (Gemma 3 270M through llama.cpp). Slow, so kept to two tests.
//!
//! It needs the model in the store (`switchyard models pull gemma3-270m`). Where it is absent
//! the test says so and passes only if `SWITCHYARD_REQUIRE_MODEL` is unset; CI sets it (after
//! pulling the model), so there this test always runs.

use crate::support::*;
use std::process::Command;

/// Whether the model is in the store; panics if it must be and is not.
fn model_present() -> bool {
    let found = Command::new(bin())
        .args(["models", "path", "gemma3-270m"])
        .output()
        .unwrap();
    if !found.status.success() {
        assert!(
            std::env::var_os("SWITCHYARD_REQUIRE_MODEL").is_none(),
            "SWITCHYARD_REQUIRE_MODEL is set but the model is not in the store: {}",
            String::from_utf8_lossy(&found.stderr)
        );
        eprintln!("skipped: gemma3-270m is not in the model store (switchyard models pull gemma3-270m)");
        return false;
    }
    true
}

#[tokio::test]
async fn gemma_answers_streams_counts_usage_and_batches_concurrent_requests() {
    if !model_present() {
        return;
    }
    let gw = Running::start(
        "providers:\n  local: { kind: embedded, model: gemma3-270m, slots: 4, context_size: 2048 }\nlanes:\n  local: { provider: local }\nroutes:\n  default: [local]\n",
    );
    let ask = |q: &str, stream: bool| {
        serde_json::json!({"model": "default", "messages": [{"role": "user", "content": q}],
                           "temperature": 0, "max_tokens": 24, "stream": stream, "stream_options": {"include_usage": true}})
    };
    let answer_of = |body: serde_json::Value| {
        let gw = &gw;
        async move {
            let r = gw.post(body, &[]).await;
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };

    // Greedy, plain.
    let v = answer_of(ask("What is the capital of France?", false)).await;
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert!(answer.contains("Paris"), "{v}");
    let (pt, ct) = (
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert!(pt > 5 && ct > 0 && ct <= 24, "{v}");

    // Streamed, greedy: the same text, in several chunks, with the same usage.
    let events = sse_data(gw.post(ask("What is the capital of France?", true), &[]).await).await;
    assert_eq!(stream_text(&events), answer);
    assert!(events.len() > 4, "{events:?}");
    let usage: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(
        (
            usage["usage"]["prompt_tokens"].as_u64(),
            usage["usage"]["completion_tokens"].as_u64()
        ),
        (Some(pt), Some(ct))
    );

    // The same model answers the Anthropic dialect; a caller's stop sequence is reported as
    // `stop_sequence`, naming it.
    let messages = |stop: Option<&str>| {
        let mut b = serde_json::json!({"model": "default", "max_tokens": 24, "temperature": 0,
                                       "messages": [{"role": "user", "content": "What is the capital of France?"}]});
        if let Some(s) = stop {
            b["stop_sequences"] = serde_json::json!([s]);
        }
        let url = format!("{}/v1/messages", gw.url);
        async move {
            let r = client().post(url).json(&b).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let m = messages(None).await;
    assert_eq!(m["content"][0]["text"].as_str(), Some(answer.as_str()), "{m}");
    assert_eq!(
        (m["stop_reason"].as_str(), m["usage"]["output_tokens"].as_u64()),
        (Some("end_turn"), Some(ct))
    );
    let m = messages(Some("Paris")).await;
    assert_eq!(
        (m["stop_reason"].as_str(), m["stop_sequence"].as_str()),
        (Some("stop_sequence"), Some("Paris")),
        "{m}"
    );
    assert!(
        !m["content"][0]["text"].as_str().unwrap_or_default().contains("Paris"),
        "{m}"
    );

    // max_tokens is a hard limit; the finish reason says so.
    let finish = |v: &serde_json::Value| {
        (
            v["usage"]["completion_tokens"].as_u64(),
            v["choices"][0]["finish_reason"].as_str().map(str::to_owned),
        )
    };
    let mut long = ask("Write a long story about a dragon.", false);
    long["max_tokens"] = 5.into();
    assert_eq!(finish(&answer_of(long).await), (Some(5), Some("length".into())));

    // ignore_eos generates through end-of-turn and the prompt format's stops, to max_tokens.
    let mut through = ask("What is 2+2?", false);
    through["max_tokens"] = 40.into();
    through["ignore_eos"] = true.into();
    assert_eq!(finish(&answer_of(through).await), (Some(40), Some("length".into())));

    // A prompt clearly longer than the context window is skipped before the engine sees it
    // (estimated ~3,750 tokens for a 2,048-token window)…
    let r = gw.post(ask(&"word ".repeat(3000), false), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "local:context_too_small");
    assert_eq!(r.status(), 400);
    // …and one the estimate lets through (~1,500) but the tokenizer counts longer (~3,000) is
    // the engine's context_overflow (which would fall back).
    let r = gw.post(ask(&"7 ".repeat(3000), false), &[]).await;
    assert_eq!(header(&r, "x-switchyard-attempts"), "local:context_overflow");
    assert!(!r.status().is_success());

    // Sampling with a seed repeats itself.
    let mut seeded = ask("Tell me about the sea.", false);
    seeded["temperature"] = 1.0.into();
    seeded["seed"] = 42.into();
    let a = answer_of(seeded.clone()).await;
    let b = answer_of(seeded).await;
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);

    // Four at once are all answered (batched in one context), each with its own answer.
    let questions = [
        "What is the capital of France?",
        "What is 2+2?",
        "Name a color.",
        "What is the capital of Italy?",
    ];
    let answers = futures_util::future::join_all(questions.iter().map(|q| answer_of(ask(q, false)))).await;
    assert_eq!(
        answers[0]["choices"][0]["message"]["content"].as_str(),
        Some(answer.as_str()),
        "batching must not change a greedy answer"
    );
    assert!(
        answers[3]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Rome"),
        "{:?}",
        answers[3]
    );
}

/// With one slot, a long generation whose client leaves must free the slot at once: the next
/// request is answered long before the abandoned one could have finished (4,000 tokens, about
/// a minute on 2 cores).
#[tokio::test]
async fn a_client_that_leaves_cancels_its_generation() {
    if !model_present() {
        return;
    }
    let gw = Running::start(
        "providers:\n  local: { kind: embedded, model: gemma3-270m, slots: 1, context_size: 4200 }\nlanes:\n  local: { provider: local }\nroutes:\n  default: [local]\n",
    );
    // No overall timeout on this one: only its cancellation may end it early.
    let _ = client(); // installs the TLS provider reqwest needs
    let mut long = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(
            &serde_json::json!({"model": "default", "stream": true, "max_tokens": 4000, "ignore_eos": true,
                                  "messages": [{"role": "user", "content": "Tell me a very long story."}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 200);
    // Generation has started; then the client goes away.
    let first = long.chunk().await.unwrap();
    assert!(first.is_some());
    drop(long);

    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(25),
        gw.post(
            serde_json::json!({"model": "default", "max_tokens": 8, "temperature": 0,
                               "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
            &[],
        ),
    )
    .await
    .expect("the slot was still held by the abandoned generation");
    assert_eq!(r.status(), 200, "{}", gw.stderr());
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
    eprintln!("answered {:?} after the first client left", started.elapsed());
}
