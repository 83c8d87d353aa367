//! `switchyard bench`: speed and quality of each lane on a prompt suite.
//!
//! Every lane is asked directly (its name as the model: that lane alone, no fallback), in this
//! process, as `switchyard ask` does, and streamed so time to first token can be measured.
//! Quality comes from a judge lane (`--judge`) or from the suite's reference checks. Writes
//! `report.md`, `results.json` and `chart.svg` into the output folder; stdout gets only the
//! summary table and where the report is.
//!
//! What must stay true: one lane's requests run one after another, and lanes one after
//! another, so no measurement shares the machine or a provider's limits with another; the
//! judge is asked only after every answer is in, so it never slows what is measured.

mod chart;
pub mod judge;
pub mod report;
pub mod suite;

use crate::{app, output};
use anyhow::{Context, Result};
use futures_util::StreamExt;
use report::{CheckResult, LaneResult, PromptInfo, Report, RunResult, Skipped};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use suite::Prompt;
use switchyard_core::clock;
use switchyard_core::gateway::{AnswerBody, Call, Gateway};
use switchyard_core::router::Hints;
use switchyard_protocol::openai::ChatRequest;
use switchyard_protocol::sse::{SseDecoder, SseEvent};

/// Longest answer when a prompt does not say.
const DEFAULT_MAX_TOKENS: u64 = 256;
/// Longest verdict asked of a judge.
const JUDGE_MAX_TOKENS: u64 = 200;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Lanes to bench, comma-separated (default: every lane that is not disabled and not
    /// premium).
    #[arg(long, value_delimiter = ',')]
    pub lanes: Vec<String>,
    /// A prompt file (YAML; see docs/bench.md). Default: the built-in suite.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Times each prompt is asked of each lane (with more than one, p50 and p90 are reported).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Folder for report.md, results.json and chart.svg (default:
    /// ./switchyard-bench-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A lane that scores every answer 1–10 (default: the prompts' reference checks).
    #[arg(long)]
    pub judge: Option<String>,
    /// Include premium (paid) lanes, and allow them to be named in --lanes or --judge.
    #[arg(long)]
    pub premium: bool,
    /// Cap every prompt's answer at this many tokens.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Give up on one answer after this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Config file (default: as `switchyard serve`; none found: the zero-config default).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// A mistake in what was asked for (exit code 2), as opposed to a failure while running (1).
struct Usage(String);

/// Runs the command; 0 when the report is written (failed requests are in it), 2 for a
/// mistake in the arguments, the config or the prompt file.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let (prompts, suite_name) = match load_prompts(args.prompts.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            output::error(&e);
            return Ok(ExitCode::from(2));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let cfg = match app::load_or_default(args.config.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                output::error(&e.to_string());
                return Ok(ExitCode::from(2));
            }
        };
        let config_name = cfg
            .source
            .as_ref()
            .map_or_else(|| "zero-config default".to_owned(), |p| p.display().to_string());
        let tty = std::io::stderr().is_terminal();
        let gateway = Gateway::new(cfg, app::engine_factory(tty))
            .await
            .map_err(anyhow::Error::msg)?;
        let result = bench(&args, &gateway, prompts, suite_name, config_name, tty).await;
        gateway.shutdown(Duration::from_secs(3)).await;
        match result {
            Ok(code) => Ok(code),
            Err(BenchError::Usage(Usage(msg))) => {
                output::error(&msg);
                Ok(ExitCode::from(2))
            }
            Err(BenchError::Other(e)) => Err(e),
        }
    })
}

enum BenchError {
    Usage(Usage),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for BenchError {
    fn from(e: anyhow::Error) -> Self {
        BenchError::Other(e)
    }
}

fn load_prompts(path: Option<&Path>) -> Result<(Vec<Prompt>, String), String> {
    match path {
        None => Ok((
            suite::parse(suite::BUILT_IN, "built-in prompts")?,
            "built-in suite".into(),
        )),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let name = p.display().to_string();
            Ok((suite::parse(&text, &name)?, name))
        }
    }
}

struct Target {
    lane: String,
    provider: String,
    model: String,
    local: bool,
    premium: bool,
}

/// Which lanes to bench, and why the others are not.
fn pick_lanes(gateway: &Gateway, args: &BenchArgs) -> Result<(Vec<Target>, Vec<Skipped>), Usage> {
    let cfg = gateway.config();
    let target = |name: &str| -> Option<Target> {
        let l = cfg.lanes.get(name)?;
        Some(Target {
            lane: l.name.clone(),
            provider: l.provider.clone(),
            model: l.model.clone(),
            local: l.local,
            premium: l.premium,
        })
    };
    let disabled = |name: &str| {
        cfg.lanes
            .get(name)
            .and_then(|l| cfg.providers.get(&l.provider))
            .and_then(|p| p.disabled.clone())
    };
    let known = || cfg.lanes.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    if args.lanes.is_empty() {
        for name in cfg.lanes.keys() {
            let Some(t) = target(name) else { continue };
            if let Some(why) = disabled(name) {
                skipped.push(Skipped {
                    lane: name.clone(),
                    why: format!("disabled ({why})"),
                });
            } else if t.premium && !args.premium {
                skipped.push(Skipped {
                    lane: name.clone(),
                    why: "premium (paid): add --premium to bench it".into(),
                });
            } else {
                chosen.push(t);
            }
        }
        if chosen.is_empty() {
            let why: Vec<String> = skipped.iter().map(|s| format!("`{}`: {}", s.lane, s.why)).collect();
            return Err(Usage(if why.is_empty() {
                "no lane to bench: the config has no lanes".into()
            } else {
                format!("no lane to bench: {}", why.join("; "))
            }));
        }
    } else {
        for name in &args.lanes {
            let name = name.trim();
            if name.is_empty() || chosen.iter().any(|t: &Target| t.lane == name) {
                continue;
            }
            let Some(t) = target(name) else {
                return Err(Usage(format!("lane `{name}` does not exist; lanes are: {}", known())));
            };
            check_usable(name, &t, disabled(name), args.premium, "--lanes")?;
            chosen.push(t);
        }
        if chosen.is_empty() {
            return Err(Usage(format!("--lanes names no lane; lanes are: {}", known())));
        }
    }
    if let Some(j) = &args.judge {
        let Some(t) = target(j) else {
            return Err(Usage(format!(
                "judge lane `{j}` does not exist; lanes are: {}",
                known()
            )));
        };
        check_usable(j, &t, disabled(j), args.premium, "--judge")?;
    }
    Ok((chosen, skipped))
}

fn check_usable(name: &str, t: &Target, disabled: Option<String>, premium: bool, flag: &str) -> Result<(), Usage> {
    if let Some(why) = disabled {
        return Err(Usage(format!("lane `{name}` ({flag}) is disabled: {why}")));
    }
    if t.premium && !premium {
        return Err(Usage(format!(
            "lane `{name}` ({flag}) is premium (paid): add --premium to use it"
        )));
    }
    Ok(())
}

async fn bench(
    args: &BenchArgs,
    gateway: &Arc<Gateway>,
    prompts: Vec<Prompt>,
    suite_name: String,
    config_name: String,
    tty: bool,
) -> Result<ExitCode, BenchError> {
    let (targets, skipped) = pick_lanes(gateway, args).map_err(BenchError::Usage)?;
    let started_ms = clock::wall_now_ms();
    let out = match &args.out {
        Some(o) => o.clone(),
        None => PathBuf::from(format!("switchyard-bench-{}", stamp(started_ms))),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    for s in &skipped {
        output::warn(&format!("not benching `{}`: {}", s.lane, s.why));
    }
    let clock0 = Instant::now();
    let limit = Duration::from_secs(args.timeout);
    let max_tokens = |p: &Prompt| {
        let m = p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        args.max_tokens.map_or(m, |cap| m.min(cap))
    };
    let ask = |lane: &str, text: &str, max: u64| Ask {
        gateway,
        lane: lane.to_owned(),
        text: text.to_owned(),
        max_tokens: max,
        premium: args.premium,
        limit,
    };

    // Load local models first, so the first prompt's time to first token is the model's,
    // not the load's.
    for t in targets.iter().filter(|t| t.local) {
        let note = format!("warming up `{}` (loading its model; not measured)", t.lane);
        progress_line(tty, &note);
        let _ = ask(&t.lane, "Say OK.", 1).send().await;
    }

    let total = targets.len() * prompts.len() * args.runs as usize;
    let mut bar = Progress::new(total, tty);
    let mut lanes = Vec::new();
    for t in &targets {
        let mut results = Vec::new();
        for run in 1..=args.runs {
            for p in &prompts {
                bar.start(&format!(
                    "lane {} · prompt {}{}",
                    t.lane,
                    p.name,
                    run_note(run, args.runs)
                ));
                let m = ask(&t.lane, &p.prompt, max_tokens(p)).send().await;
                let r = m.into_result(p, run);
                bar.done(
                    &format!("lane {} · prompt {}{}", t.lane, p.name, run_note(run, args.runs)),
                    &outcome(&r),
                );
                results.push(r);
            }
        }
        lanes.push((t, results));
    }
    bar.clear();

    if let Some(judge) = &args.judge {
        let n = lanes
            .iter()
            .map(|(_, rs)| rs.iter().filter(|r| r.error.is_none()).count())
            .sum();
        let mut bar = Progress::new(n, tty);
        for (t, results) in &mut lanes {
            for r in results.iter_mut().filter(|r| r.error.is_none()) {
                let Some(p) = prompts.iter().find(|p| p.name == r.prompt) else {
                    continue;
                };
                let label = format!("judge {judge} · lane {} · prompt {}", t.lane, p.name);
                bar.start(&label);
                let m = ask(judge, &judge::question(p, &r.answer), JUDGE_MAX_TOKENS)
                    .send()
                    .await;
                match (&m.error, judge::parse(&m.text)) {
                    (Some(e), _) => r.judge_error = Some(format!("the judge failed: {e}")),
                    (None, Some(v)) => r.judge = Some(v),
                    (None, None) => {
                        r.judge_error = Some(format!(
                            "no score in the judge's reply: {:?}",
                            report::truncate(m.text.trim(), 120)
                        ));
                    }
                }
                let note = match (&r.judge, &r.judge_error) {
                    (Some(v), _) => format!("{:.0}/10", v.score),
                    (_, Some(_)) => "unreadable verdict".into(),
                    _ => String::new(),
                };
                bar.done(&label, &note);
            }
        }
        bar.clear();
    }

    let lanes: Vec<LaneResult> = lanes
        .into_iter()
        .map(|(t, mut results)| {
            for r in &mut results {
                r.quality = quality(r, args.judge.is_some());
            }
            LaneResult {
                lane: t.lane.clone(),
                provider: t.provider.clone(),
                model: t.model.clone(),
                local: t.local,
                premium: t.premium,
                summary: report::summarize(&results),
                results,
            }
        })
        .collect();
    let report = Report {
        started: clock::format_utc(started_ms),
        started_ms,
        duration_s: clock0.elapsed().as_secs_f64(),
        config: config_name,
        suite: suite_name,
        runs: args.runs,
        judge: args.judge.clone(),
        prompts: prompts
            .iter()
            .map(|p| PromptInfo {
                name: p.name.clone(),
                max_tokens: max_tokens(p),
                checks: p.checks.iter().map(suite::Check::describe).collect(),
            })
            .collect(),
        lanes,
        skipped,
    };
    write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?,
    )?;
    write(&out.join("report.md"), &report.markdown())?;
    write(&out.join("chart.svg"), &chart::svg(&report))?;
    let unread: usize = report.lanes.iter().map(|l| l.summary.judge_errors).sum();
    if unread > 0 {
        let judged: usize = report
            .lanes
            .iter()
            .map(|l| l.summary.requests - l.summary.failures)
            .sum();
        output::warn(&format!(
            "the judge gave no readable score for {unread} of {judged} answers: those have no quality (the report says why)"
        ));
    }
    output::line(report.table().trim_end());
    output::line(&format!("\nreport: {}", out.join("report.md").display()));
    output::line(&format!("chart:  {}", out.join("chart.svg").display()));
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(BenchError::Other)
}

fn run_note(run: u32, runs: u32) -> String {
    if runs > 1 {
        format!(" · run {run}/{runs}")
    } else {
        String::new()
    }
}

/// 0–10 for one answer: the judge's score, or ten times the share of checks passed. A failed
/// request scores 0; an answer with nothing to score it by (no checks, no verdict) has none.
fn quality(r: &RunResult, judged: bool) -> Option<f64> {
    if r.error.is_some() {
        return Some(0.0);
    }
    if judged {
        return r.judge.as_ref().map(|v| v.score);
    }
    if r.checks.is_empty() {
        return None;
    }
    let passed = r.checks.iter().filter(|c| c.passed).count();
    Some(10.0 * passed as f64 / r.checks.len() as f64)
}

fn outcome(r: &RunResult) -> String {
    if let Some(e) = &r.error {
        return format!("failed: {}", report::truncate(e, 100));
    }
    let passed = r.checks.iter().filter(|c| c.passed).count();
    let mut s = format!(
        "{} to first token, {} total",
        report::fmt_ms(r.ttft_ms),
        report::fmt_ms(Some(r.total_ms))
    );
    if let Some(t) = r.decode_tps {
        s.push_str(&format!(", {} tok/s", report::fmt_tps(Some(t))));
    }
    if !r.checks.is_empty() {
        s.push_str(&format!(", checks {passed}/{}", r.checks.len()));
    }
    s
}

/// `20261128T080000Z`: sorts as it reads, and is a valid folder name everywhere.
fn stamp(ms: i64) -> String {
    let (y, m, d) = clock::civil_from_days(ms.div_euclid(86_400_000));
    let secs = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One question to one lane.
struct Ask<'a> {
    gateway: &'a Arc<Gateway>,
    lane: String,
    text: String,
    max_tokens: u64,
    premium: bool,
    limit: Duration,
}

#[derive(Debug, Default)]
struct Measured {
    error: Option<String>,
    ttft: Option<Duration>,
    /// When the last piece of the answer came: decode speed is measured to here, not to the
    /// end of the stream (usage chunk, `[DONE]`, the ledger commit).
    last_token: Option<Duration>,
    total: Duration,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    finish_reason: Option<String>,
    attempts: String,
    text: String,
}

impl Ask<'_> {
    async fn send(self) -> Measured {
        let mut m = Measured::default();
        let started = Instant::now();
        let limit = self.limit;
        if tokio::time::timeout(limit, self.stream(&mut m, started)).await.is_err() {
            m.error = Some(format!("no complete answer within {} s (--timeout)", limit.as_secs()));
        }
        m.total = started.elapsed();
        m
    }

    async fn stream(self, m: &mut Measured, started: Instant) {
        let body = serde_json::json!({
            "model": self.lane,
            "messages": [{"role": "user", "content": self.text}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": self.max_tokens,
            // Comparable answers, run to run and lane to lane.
            "temperature": 0,
        });
        let req: ChatRequest = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(e) => {
                m.error = Some(format!("cannot build the request: {e}"));
                return;
            }
        };
        let call = Call {
            hints: Hints {
                task: None,
                premium: self.premium,
                fallback: false,
                local_only: false,
            },
            caller: None,
            origin: Some("bench"),
            ..Default::default()
        };
        let answer = match self.gateway.chat(req, call).await {
            Ok(a) => a,
            Err(refusal) => {
                m.attempts = refusal.attempts;
                m.error = Some(refusal.error.to_string());
                return;
            }
        };
        m.attempts = answer.attempts;
        let mut reader = StreamReader::default();
        match answer.body {
            AnswerBody::Json(bytes) => {
                // Not asked for; read it anyway rather than fail.
                reader.whole(&bytes, m);
            }
            AnswerBody::Stream(mut s) => {
                while let Some(chunk) = s.next().await {
                    let Ok(c) = chunk;
                    reader.push(&c, m, started);
                }
                reader.finish(m, started);
            }
        }
        if m.error.is_none() && !reader.done && m.finish_reason.is_none() {
            m.error = Some("the answer ended without finishing".into());
        }
    }
}

impl Measured {
    fn into_result(self, p: &Prompt, run: u32) -> RunResult {
        let ttft_ms = self.ttft.map(|d| d.as_secs_f64() * 1000.0);
        let total_ms = self.total.as_secs_f64() * 1000.0;
        let last_ms = self.last_token.map_or(total_ms, |d| d.as_secs_f64() * 1000.0);
        let decode_tps = match (self.completion_tokens, ttft_ms) {
            (Some(n), Some(t)) if n >= 2 && last_ms > t => Some((n - 1) as f64 / ((last_ms - t) / 1000.0)),
            _ => None,
        };
        let checks = if self.error.is_none() {
            p.checks
                .iter()
                .map(|c| CheckResult {
                    check: c.describe(),
                    passed: c.passes(&self.text),
                })
                .collect()
        } else {
            Vec::new()
        };
        RunResult {
            prompt: p.name.clone(),
            run,
            error: self.error,
            ttft_ms,
            total_ms,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            decode_tps,
            finish_reason: self.finish_reason,
            attempts: self.attempts,
            answer: self.text,
            checks,
            ..Default::default()
        }
    }
}

/// Reads an OpenAI stream: the text, when its first piece came, the usage, errors.
#[derive(Default)]
struct StreamReader {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    done: bool,
}

impl StreamReader {
    fn push(&mut self, chunk: &[u8], m: &mut Measured, started: Instant) {
        self.decoder.push(chunk, &mut self.events);
        self.drain(m, started);
    }

    fn finish(&mut self, m: &mut Measured, started: Instant) {
        self.decoder.finish(&mut self.events);
        self.drain(m, started);
    }

    fn drain(&mut self, m: &mut Measured, started: Instant) {
        for ev in std::mem::take(&mut self.events) {
            if ev.data == "[DONE]" {
                self.done = true;
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else {
                continue;
            };
            if let Some(msg) = v["error"]["message"].as_str() {
                m.error = Some(msg.to_owned());
            }
            let delta = &v["choices"][0]["delta"];
            // Thinking counts as the first token: the model has started answering.
            let thinking = ["reasoning_content", "reasoning"]
                .iter()
                .any(|k| delta[k].as_str().is_some_and(|s| !s.is_empty()));
            if let Some(text) = delta["content"].as_str()
                && !text.is_empty()
            {
                m.text.push_str(text);
                let now = started.elapsed();
                m.ttft.get_or_insert(now);
                m.last_token = Some(now);
            } else if thinking {
                let now = started.elapsed();
                m.ttft.get_or_insert(now);
                m.last_token = Some(now);
            }
            if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                m.finish_reason = Some(f.to_owned());
            }
            self.usage(&v, m);
        }
    }

    fn usage(&self, v: &serde_json::Value, m: &mut Measured) {
        let u = &v["usage"];
        if let Some(n) = u["prompt_tokens"].as_u64() {
            m.prompt_tokens = Some(n);
        }
        if let Some(n) = u["completion_tokens"].as_u64() {
            m.completion_tokens = Some(n);
        }
    }

    fn whole(&mut self, bytes: &[u8], m: &mut Measured) {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => {
                if let Some(msg) = v["error"]["message"].as_str() {
                    m.error = Some(msg.to_owned());
                }
                m.text = v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                m.finish_reason = v["choices"][0]["finish_reason"].as_str().map(str::to_owned);
                self.usage(&v, m);
                self.done = true;
            }
            Err(e) => m.error = Some(format!("an answer that is not JSON: {e}")),
        }
    }
}

/// `[3/8] ▕████░░░░▏ lane tiny · prompt digest …` redrawn in place on a terminal; one plain
/// line per finished request otherwise (logs, CI).
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
}

impl Progress {
    fn new(total: usize, tty: bool) -> Progress {
        Progress { total, done: 0, tty }
    }

    fn start(&mut self, label: &str) {
        if self.tty {
            let width = 24;
            let filled = (self.done * width).checked_div(self.total).unwrap_or(0);
            let bar = format!("{}{}", "█".repeat(filled), "░".repeat(width - filled));
            let line = format!("[{}/{}] ▕{bar}▏ {label} …", self.done + 1, self.total);
            let _ = write!(std::io::stderr(), "\r\x1b[2K{}", report::truncate(&line, 110));
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&mut self, label: &str, outcome: &str) {
        self.done += 1;
        if !self.tty {
            let _ = writeln!(std::io::stderr(), "[{}/{}] {label}: {outcome}", self.done, self.total);
        }
    }

    fn clear(&self) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

fn progress_line(tty: bool, s: &str) {
    if tty {
        let _ = write!(std::io::stderr(), "\r\x1b[2K{s} …");
        let _ = std::io::stderr().flush();
    } else {
        let _ = writeln!(std::io::stderr(), "{s}");
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn stamps_sort_as_they_read() {
        // 2026-11-28 08:05:09 UTC
        let ms = clock::days_from_civil(2026, 11, 28) * 86_400_000 + (8 * 3600 + 5 * 60 + 9) * 1000;
        assert_eq!(stamp(ms), "20261128T080509Z");
    }

    fn read(events: &[&str]) -> Measured {
        let mut m = Measured::default();
        let mut r = StreamReader::default();
        let started = Instant::now();
        for e in events {
            r.push(format!("data: {e}\n\n").as_bytes(), &mut m, started);
        }
        r.finish(&mut m, started);
        m
    }

    #[test]
    fn a_stream_gives_text_first_token_and_usage() {
        let m = read(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"hello"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        assert_eq!(m.text, "hello there");
        assert!(m.ttft.is_some() && m.error.is_none());
        assert_eq!((m.prompt_tokens, m.completion_tokens), (Some(7), Some(2)));
        assert_eq!(m.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn an_error_event_is_a_failure() {
        let m = read(&[
            r#"{"choices":[{"index":0,"delta":{"content":"hel"}}]}"#,
            r#"{"error":{"message":"the upstream broke off","type":"server_error"}}"#,
        ]);
        assert_eq!(m.error.as_deref(), Some("the upstream broke off"));
        // An empty role chunk is not a first token.
        let m = read(&[r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#]);
        assert!(m.ttft.is_none());
    }

    #[test]
    fn decode_speed_is_over_the_tokens_after_the_first() {
        let p = suite::parse("- name: a\n  prompt: x\n  checks: [{contains: hello}]\n", "p").unwrap();
        let m = Measured {
            ttft: Some(Duration::from_millis(500)),
            total: Duration::from_millis(2500),
            completion_tokens: Some(41),
            text: "Hello!".into(),
            ..Default::default()
        };
        let r = m.into_result(&p[0], 1);
        assert_eq!(r.decode_tps, Some(20.0));
        assert!(r.checks[0].passed);
        assert_eq!(quality(&r, false), Some(10.0));
        assert_eq!(quality(&r, true), None, "judged, but no verdict");
        let failed = RunResult {
            error: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(quality(&failed, true), Some(0.0));
    }
}
