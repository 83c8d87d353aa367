//! `brain "…"` / `switchyard ask "…"`: one question, answered as it streams.
//!
//! The prompt is the arguments; piped stdin is appended as context. With `--url` (or
//! `$SWITCHYARD_URL`) the question goes to a running gateway; otherwise the router runs in
//! this process, with the same config (or the zero-config default) as `switchyard serve`.

use crate::{app, output};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;
use switchyard_core::gateway::{AnswerBody, Call, Gateway};
use switchyard_core::router::Hints;
use switchyard_protocol::openai::ChatRequest;
use switchyard_protocol::sse::{SseDecoder, SseEvent};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct AskArgs {
    /// The question. Piped stdin is appended as context.
    pub prompt: Vec<String>,
    /// Route to use (e.g. code, brain_dump).
    #[arg(long)]
    pub task: Option<String>,
    /// One lane only (no fallback).
    #[arg(long, conflicts_with = "task")]
    pub lane: Option<String>,
    /// Local lanes only: nothing leaves this machine.
    #[arg(long)]
    pub local: bool,
    /// Allow premium (paid) lanes for this question.
    #[arg(long)]
    pub premium: bool,
    /// Print one JSON object (answer, route, lane, attempts, usage) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// A running gateway to ask instead of routing in this process.
    #[arg(long, env = "SWITCHYARD_URL")]
    pub url: Option<String>,
    /// Key for --url (as `server.keys` expects).
    #[arg(long, env = "SWITCHYARD_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Config file (default: as `switchyard serve`; none found: the zero-config default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Longest answer, in tokens.
    #[arg(long)]
    pub max_tokens: Option<u64>,
}

fn prompt(args: &AskArgs) -> Result<String> {
    let mut text = args.prompt.join(" ");
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut piped = String::new();
        stdin.lock().read_to_string(&mut piped).context("reading stdin")?;
        let piped = piped.trim_end();
        if !piped.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(piped);
        }
    }
    if text.trim().is_empty() {
        bail!("nothing to ask: give a question as arguments or pipe text in (brain \"what is …\")");
    }
    Ok(text)
}

fn request(args: &AskArgs, text: String) -> Result<ChatRequest> {
    let mut body = serde_json::json!({
        "model": args.lane.clone().unwrap_or_else(|| "default".into()),
        "messages": [{"role": "user", "content": text}],
        "stream": !args.json,
    });
    if let Some(n) = args.max_tokens {
        body["max_tokens"] = n.into();
    }
    Ok(serde_json::from_value(body)?)
}

/// Runs the command; returns the process exit code.
pub fn run(args: AskArgs) -> Result<u8> {
    let text = prompt(&args)?;
    let req = request(&args, text)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match &args.url {
            Some(url) => remote(&args, url, req).await,
            None => in_process(&args, req).await,
        }
    })
}

fn hints(args: &AskArgs) -> Hints {
    Hints {
        task: args.task.clone(),
        premium: args.premium,
        fallback: false,
        local_only: args.local,
    }
}

async fn in_process(args: &AskArgs, req: ChatRequest) -> Result<u8> {
    let cfg = app::load_or_default(args.config.as_deref())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let gateway = Gateway::new(cfg, app::engine_factory(std::io::stderr().is_terminal()))
        .await
        .map_err(anyhow::Error::msg)?;
    let call = Call {
        hints: hints(args),
        caller: None,
        origin: Some("cli"),
        ..Default::default()
    };
    let answer = match gateway.chat(req, call).await {
        Ok(a) => a,
        Err(refusal) => {
            gateway.shutdown(Duration::from_secs(3)).await;
            output::error(&refusal.error.to_string());
            return Ok(1);
        }
    };
    let meta = Meta {
        route: answer.route,
        lane: answer.lane,
        attempts: answer.attempts,
    };
    let code = match answer.body {
        AnswerBody::Json(body) => print_json(&meta, &body)?,
        AnswerBody::Stream(mut s) => {
            let mut printer = StreamPrinter::default();
            // Errors arrive inside the stream as OpenAI error events.
            while let Some(chunk) = s.next().await {
                let Ok(c) = chunk;
                printer.push(&c);
            }
            printer.finish()
        }
    };
    gateway.shutdown(Duration::from_secs(3)).await;
    Ok(code)
}

async fn remote(args: &AskArgs, url: &str, req: ChatRequest) -> Result<u8> {
    switchyard_core::upstream::install_crypto();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut r = client
        .post(format!(
            "{}/v1/chat/completions",
            url.trim_end_matches('/').trim_end_matches("/v1")
        ))
        .json(&req);
    if let Some(k) = &args.key {
        r = r.bearer_auth(k);
    }
    let h = hints(args);
    if let Some(t) = &h.task {
        r = r.header("x-switchyard-task", t);
    }
    if h.premium {
        r = r.header("x-switchyard-premium", "allow");
    }
    if h.local_only {
        r = r.header("x-switchyard-local", "only");
    }
    let resp = r.send().await.map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let meta = Meta {
        route: header("x-switchyard-route"),
        lane: header("x-switchyard-lane"),
        attempts: header("x-switchyard-attempts"),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let msg = switchyard_protocol::openai::upstream_error_message(&body)
            .map_or_else(|| format!("HTTP {status}"), |(m, _)| m);
        output::error(&msg);
        return Ok(1);
    }
    if args.json {
        let body = resp.bytes().await?;
        return print_json(&meta, &body);
    }
    let mut printer = StreamPrinter::default();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => printer.push(&c),
            Err(e) => {
                printer.error = Some(format!("the connection broke: {e}"));
                break;
            }
        }
    }
    Ok(printer.finish())
}

struct Meta {
    route: String,
    lane: String,
    attempts: String,
}

fn print_json(meta: &Meta, body: &[u8]) -> Result<u8> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    let out = serde_json::json!({
        "answer": v["choices"][0]["message"]["content"],
        "finish_reason": v["choices"][0]["finish_reason"],
        "route": meta.route,
        "lane": meta.lane,
        "attempts": meta.attempts,
        "model": v["model"],
        "usage": v["usage"],
    });
    output::line(&serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// Prints `delta.content` of an OpenAI stream as it arrives.
#[derive(Default)]
struct StreamPrinter {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    printed_any: bool,
    ends_with_newline: bool,
    error: Option<String>,
}

impl StreamPrinter {
    fn push(&mut self, chunk: &[u8]) {
        self.decoder.push(chunk, &mut self.events);
        self.drain();
    }

    fn drain(&mut self) {
        for ev in std::mem::take(&mut self.events) {
            if ev.data == "[DONE]" {
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else {
                continue;
            };
            if let Some(msg) = v["error"]["message"].as_str() {
                self.error = Some(msg.to_owned());
            }
            if let Some(text) = v["choices"][0]["delta"]["content"].as_str()
                && !text.is_empty()
            {
                output::text(text);
                self.printed_any = true;
                self.ends_with_newline = text.ends_with('\n');
            }
        }
    }

    fn finish(mut self) -> u8 {
        self.decoder.finish(&mut self.events);
        self.drain();
        if self.printed_any && !self.ends_with_newline {
            output::text("\n");
        }
        match self.error {
            Some(e) => {
                output::error(&e);
                1
            }
            None => 0,
        }
    }
}
