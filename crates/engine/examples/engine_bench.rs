//! Measures the embedded engine through the same interface the gateway uses
//! (`LocalEngine::generate`): prefill and decode tokens/s, time to first token, and aggregate
//! decode with several requests at once. `bench/engine/run.sh` runs it beside llama.cpp's own
//! `llama-bench` and `llama-batched-bench` on the same GGUF and thread count.
//!
//! Usage: engine_bench [--model NAME|PATH] [--threads N] [--prompt TOKENS] [--gen TOKENS]
//!                     [--parallel N] [--reps N]
//! Prints one JSON object on stdout.

// A command-line tool: printing is its output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};
use switchyard_core::config::EmbeddedConfig;
use switchyard_core::local::{LocalEngine, LocalEvent, LocalMessage, LocalRequest};
use switchyard_engine::llama::LlamaEngine;

struct Args {
    model: String,
    threads: u32,
    prompt: usize,
    generate: u32,
    parallel: u32,
    reps: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: "gemma3-270m".into(),
        threads: 2,
        prompt: 512,
        generate: 128,
        parallel: 4,
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--threads" => a.threads = num(val()?)? as u32,
            "--prompt" => a.prompt = num(val()?)? as usize,
            "--gen" => a.generate = num(val()?)? as u32,
            "--parallel" => a.parallel = num(val()?)? as u32,
            "--reps" => a.reps = num(val()?)?.max(1) as usize,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

/// One request's timings.
struct Run {
    prompt_tokens: u64,
    completion_tokens: u64,
    /// From `generate` to the first text.
    first: Option<Duration>,
    /// From `generate` to the end.
    total: Duration,
}

async fn run(engine: &LlamaEngine, req: LocalRequest) -> Result<Run, String> {
    let start = Instant::now();
    let mut rx = engine.generate(req).map_err(|e| format!("{e:?}"))?;
    let mut first = None;
    while let Some(ev) = rx.recv().await {
        match ev {
            LocalEvent::Text(t) => {
                if first.is_none() && !t.is_empty() {
                    first = Some(start.elapsed());
                }
            }
            LocalEvent::Done { usage, .. } => {
                return Ok(Run {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                    first,
                    total: start.elapsed(),
                });
            }
            LocalEvent::Failed(e) => return Err(e.to_string()),
        }
    }
    Err("the engine stopped without finishing".into())
}

/// A prompt of roughly `tokens` tokens for this model: the transcript around a question takes
/// about 46 tokens and these words one token each (the exact count comes from usage).
fn filler(tokens: usize) -> String {
    const WORDS: &str = "the river runs past old stone mills where farmers bring grain each autumn and \
        children watch the wheels turn slowly while merchants argue about prices in the square";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let n = tokens.saturating_sub(46);
    (0..n).map(|i| words[i % words.len()]).collect::<Vec<_>>().join(" ")
}

fn request(text: String, max_tokens: u32) -> LocalRequest {
    LocalRequest {
        messages: vec![LocalMessage {
            role: "user",
            content: text,
        }],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ignore_eos: true,
        ..LocalRequest::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if let Err(e) = bench().await {
        eprintln!("engine_bench: {e}");
        std::process::exit(1);
    }
}

async fn bench() -> Result<(), String> {
    let a = parse()?;
    let cfg = EmbeddedConfig {
        model: a.model.clone(),
        threads: Some(a.threads),
        context_size: 4096,
        slots: a.parallel.max(1),
    };
    let engine = LlamaEngine::start(&cfg, false);
    engine.ready().await?;
    // Warm-up: first-touch of weights and buffers.
    run(&engine, request(filler(64), 8)).await?;

    // Prefill: a long prompt, one token out. Time to the end is prefill plus one sample.
    let mut prefill = Vec::new();
    let mut ttft = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..a.reps {
        let r = run(&engine, request(filler(a.prompt), 1)).await?;
        prompt_tokens = r.prompt_tokens;
        prefill.push(r.prompt_tokens as f64 / r.total.as_secs_f64());
        ttft.push(r.first.unwrap_or(r.total).as_secs_f64() * 1000.0);
    }

    // Decode, one stream: tokens after the first, over the time after the first.
    let mut decode = Vec::new();
    let mut short_ttft = Vec::new();
    for _ in 0..a.reps {
        let r = run(&engine, request("Tell me a story.".into(), a.generate)).await?;
        let first = r.first.ok_or("no text came back")?;
        decode.push((r.completion_tokens - 1) as f64 / (r.total - first).as_secs_f64());
        short_ttft.push(first.as_secs_f64() * 1000.0);
    }

    // Several streams at once. As llama-batched-bench counts it: generated tokens after the
    // first over the time from the first token to the last answer's end (the prompts go in
    // together in one decode call before that).
    let mut aggregate = Vec::new();
    for _ in 0..a.reps {
        let runs = futures_util::future::join_all(
            (0..a.parallel).map(|i| run(&engine, request(format!("Tell me story number {i}."), a.generate))),
        )
        .await;
        let mut tokens = 0;
        let mut first = Duration::MAX;
        let mut last = Duration::ZERO;
        for r in runs {
            let r = r?;
            tokens += r.completion_tokens - 1;
            first = first.min(r.first.ok_or("no text came back")?);
            last = last.max(r.total);
        }
        aggregate.push(tokens as f64 / (last - first).as_secs_f64());
    }

    let out = serde_json::json!({
        "model": a.model,
        "threads": a.threads,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": a.generate,
        "parallel": a.parallel,
        "reps": a.reps,
        "prefill_tps": median(prefill),
        "ttft_ms_long_prompt": median(ttft),
        "ttft_ms_short_prompt": median(short_ttft),
        "decode_tps": median(decode),
        "aggregate_decode_tps": median(aggregate),
    });
    println!("{out}");
    Ok(())
}
