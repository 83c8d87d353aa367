//! What a bench run found, and its three renderings besides the chart: `results.json` (every
//! measurement, raw), `report.md` (for a person) and the summary table on stdout.

use super::judge::Verdict;
use serde::Serialize;
use std::fmt::Write;

/// One answer of one lane to one prompt.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub prompt: String,
    /// 1-based.
    pub run: u32,
    /// Why no complete answer came (a refusal, an error in the stream, a timeout).
    pub error: Option<String>,
    /// From sending the request to the first generated text.
    pub ttft_ms: Option<f64>,
    /// From sending the request to the end of the answer.
    pub total_ms: f64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Tokens after the first over the time after the first.
    pub decode_tps: Option<f64>,
    pub finish_reason: Option<String>,
    /// `x-switchyard-attempts` of the request.
    pub attempts: String,
    pub answer: String,
    pub checks: Vec<CheckResult>,
    pub judge: Option<Verdict>,
    /// The judge was asked and its reply could not be read (or it failed).
    pub judge_error: Option<String>,
    /// 0–10: the judge's score, or ten times the share of checks passed; 0 for a failure;
    /// none when there is nothing to score by.
    pub quality: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LaneResult {
    pub lane: String,
    pub provider: String,
    pub model: String,
    pub local: bool,
    pub premium: bool,
    pub summary: Summary,
    pub results: Vec<RunResult>,
}

/// One lane over every prompt and run. Speeds are over the answers that came.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub requests: usize,
    pub failures: usize,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p90_ms: Option<f64>,
    pub decode_tps_p50: Option<f64>,
    pub total_p50_ms: Option<f64>,
    pub total_p90_ms: Option<f64>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Mean of the answers' quality (0–10).
    pub quality: Option<f64>,
    pub checks_passed: usize,
    pub checks_total: usize,
    pub judge_errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub lane: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptInfo {
    pub name: String,
    pub max_tokens: u64,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `2026-11-28 08:00 UTC`.
    pub started: String,
    pub started_ms: i64,
    pub duration_s: f64,
    /// The config file, or `zero-config default`.
    pub config: String,
    /// `built-in` or the prompt file.
    pub suite: String,
    pub runs: u32,
    /// The judge lane, when quality came from one.
    pub judge: Option<String>,
    pub prompts: Vec<PromptInfo>,
    pub lanes: Vec<LaneResult>,
    pub skipped: Vec<Skipped>,
}

/// Linear-interpolated percentile (`p` in 0..=1) of unsorted values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

pub fn summarize(results: &[RunResult]) -> Summary {
    let ok: Vec<&RunResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let ttft: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ms).collect();
    let total: Vec<f64> = ok.iter().map(|r| r.total_ms).collect();
    let tps: Vec<f64> = ok.iter().filter_map(|r| r.decode_tps).collect();
    let quality: Vec<f64> = results.iter().filter_map(|r| r.quality).collect();
    Summary {
        requests: results.len(),
        failures: results.len() - ok.len(),
        ttft_p50_ms: percentile(&ttft, 0.5),
        ttft_p90_ms: percentile(&ttft, 0.9),
        decode_tps_p50: percentile(&tps, 0.5),
        total_p50_ms: percentile(&total, 0.5),
        total_p90_ms: percentile(&total, 0.9),
        tokens_in: results.iter().filter_map(|r| r.prompt_tokens).sum(),
        tokens_out: results.iter().filter_map(|r| r.completion_tokens).sum(),
        quality: (!quality.is_empty()).then(|| quality.iter().sum::<f64>() / quality.len() as f64),
        checks_passed: results.iter().flat_map(|r| &r.checks).filter(|c| c.passed).count(),
        checks_total: results.iter().map(|r| r.checks.len()).sum(),
        judge_errors: results.iter().filter(|r| r.judge_error.is_some()).count(),
    }
}

/// `840 ms`, `3.2 s`, `–`.
pub fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) if ms < 100_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{:.0} s", ms / 1000.0),
    }
}

pub fn fmt_tps(tps: Option<f64>) -> String {
    match tps {
        None => "–".into(),
        Some(t) if t < 100.0 => format!("{t:.1}"),
        Some(t) => format!("{t:.0}"),
    }
}

pub fn fmt_quality(q: Option<f64>) -> String {
    q.map_or_else(|| "–".into(), |q| format!("{q:.1}/10"))
}

impl Report {
    fn quality_source(&self) -> String {
        match &self.judge {
            Some(j) => format!("scored 1–10 by the judge lane `{j}`"),
            None => "ten times the share of reference checks passed".into(),
        }
    }

    /// The summary printed on stdout: one row per lane.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "LANE".to_owned(),
            "TTFT p50".into(),
            "DECODE tok/s".into(),
            "TOTAL p50".into(),
            "TOKENS in/out".into(),
            "FAILED".into(),
            "QUALITY".into(),
            "CHECKS".into(),
        ]];
        for l in &self.lanes {
            let s = &l.summary;
            rows.push([
                l.lane.clone(),
                fmt_ms(s.ttft_p50_ms),
                fmt_tps(s.decode_tps_p50),
                fmt_ms(s.total_p50_ms),
                format!("{}/{}", s.tokens_in, s.tokens_out),
                format!("{}/{}", s.failures, s.requests),
                fmt_quality(s.quality),
                format!("{}/{}", s.checks_passed, s.checks_total),
            ]);
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &rows {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i == 0 {
                    let _ = write!(line, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let many = self.runs > 1;
        let _ = writeln!(m, "# Switchyard bench, {}\n", self.started);
        let _ = writeln!(
            m,
            "{} prompts ({}) × {} run{} per lane, {:.0} s in all. Config: {}. Quality: {}.\n",
            self.prompts.len(),
            self.suite,
            self.runs,
            if many { "s" } else { "" },
            self.duration_s,
            self.config,
            self.quality_source(),
        );
        m.push_str("![speed and quality of each lane](chart.svg)\n\n## Lanes\n\n");
        let mut head = vec!["lane", "model", "TTFT p50"];
        if many {
            head.push("TTFT p90");
        }
        head.extend(["decode tok/s", "total p50"]);
        if many {
            head.push("total p90");
        }
        head.extend(["tokens in", "tokens out", "failed", "quality", "checks passed"]);
        if self.judge.is_some() {
            head.push("judge errors");
        }
        row(&mut m, head.iter().map(|s| (*s).to_owned()));
        row(
            &mut m,
            head.iter()
                .enumerate()
                .map(|(i, _)| if i < 2 { "---".to_owned() } else { "--:".to_owned() }),
        );
        for l in &self.lanes {
            let s = &l.summary;
            let mut cells = vec![
                format!("`{}`{}", l.lane, if l.local { " (local)" } else { "" }),
                format!("{} / {}", l.provider, l.model),
                fmt_ms(s.ttft_p50_ms),
            ];
            if many {
                cells.push(fmt_ms(s.ttft_p90_ms));
            }
            cells.extend([fmt_tps(s.decode_tps_p50), fmt_ms(s.total_p50_ms)]);
            if many {
                cells.push(fmt_ms(s.total_p90_ms));
            }
            cells.extend([
                s.tokens_in.to_string(),
                s.tokens_out.to_string(),
                format!("{}/{}", s.failures, s.requests),
                fmt_quality(s.quality),
                format!("{}/{}", s.checks_passed, s.checks_total),
            ]);
            if self.judge.is_some() {
                cells.push(s.judge_errors.to_string());
            }
            row(&mut m, cells.into_iter());
        }
        if !self.skipped.is_empty() {
            m.push_str("\nNot benched:\n\n");
            for s in &self.skipped {
                let _ = writeln!(m, "- `{}`: {}", s.lane, s.why);
            }
        }
        m.push_str(
            "\nTTFT is the time from sending the request to the first generated text; decode \
             tok/s is the tokens after the first over the time after the first (from the \
             usage the lane reports); total is the whole answer. Speeds are over the answers \
             that came; a failed request scores 0 for quality.",
        );
        if many {
            m.push_str(" With several runs, p50 is the median and p90 the 90th percentile.");
        }
        m.push_str("\n\n## Prompts\n");
        for p in &self.prompts {
            let _ = writeln!(m, "\n### {}\n", p.name);
            let checks = if p.checks.is_empty() {
                "none".to_owned()
            } else {
                p.checks.join("; ")
            };
            let _ = writeln!(m, "At most {} tokens. Checks: {}.\n", p.max_tokens, checks);
            row(
                &mut m,
                [
                    "lane",
                    "TTFT",
                    "decode tok/s",
                    "total",
                    "tokens out",
                    "quality",
                    "notes",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
            row(
                &mut m,
                ["---", "--:", "--:", "--:", "--:", "--:", "---"]
                    .iter()
                    .map(|s| (*s).to_owned()),
            );
            for l in &self.lanes {
                let rs: Vec<&RunResult> = l.results.iter().filter(|r| r.prompt == p.name).collect();
                let ok: Vec<&&RunResult> = rs.iter().filter(|r| r.error.is_none()).collect();
                let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                    percentile(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>(), 0.5)
                };
                let quality = rs.iter().filter_map(|r| r.quality).collect::<Vec<_>>();
                let quality = (!quality.is_empty()).then(|| quality.iter().sum::<f64>() / quality.len() as f64);
                row(
                    &mut m,
                    [
                        format!("`{}`", l.lane),
                        fmt_ms(med(&|r| r.ttft_ms)),
                        fmt_tps(med(&|r| r.decode_tps)),
                        fmt_ms(med(&|r| Some(r.total_ms))),
                        med(&|r| r.completion_tokens.map(|t| t as f64)).map_or("–".into(), |t| format!("{t:.0}")),
                        fmt_quality(quality),
                        notes(&rs),
                    ]
                    .into_iter(),
                );
            }
            for l in &self.lanes {
                let Some(first) = l.results.iter().find(|r| r.prompt == p.name && r.error.is_none()) else {
                    continue;
                };
                let _ = writeln!(
                    m,
                    "\n<details><summary><code>{}</code>: answer{}</summary>\n",
                    html_escape(&l.lane),
                    if many { " of the first run" } else { "" }
                );
                fence(&mut m, &truncate(&first.answer, 1500));
                m.push_str("\n</details>\n");
            }
        }
        m
    }
}

/// Failures, failed checks and the judge's reason of one lane on one prompt.
fn notes(rs: &[&RunResult]) -> String {
    let mut notes: Vec<String> = Vec::new();
    let push = |notes: &mut Vec<String>, s: String| {
        if !notes.contains(&s) {
            notes.push(s);
        }
    };
    for r in rs {
        if let Some(e) = &r.error {
            push(&mut notes, format!("failed: {}", truncate(e, 160)));
        }
        for c in r.checks.iter().filter(|c| !c.passed) {
            push(&mut notes, format!("✗ {}", c.check));
        }
        if let Some(v) = &r.judge {
            push(
                &mut notes,
                format!("judge {:.0}: {}", v.score, truncate(&v.reason, 200)),
            );
        }
        if let Some(e) = &r.judge_error {
            push(&mut notes, format!("judge: {}", truncate(e, 160)));
        }
        if r.finish_reason.as_deref() == Some("length") {
            push(&mut notes, "cut at max_tokens".into());
        }
    }
    if notes.is_empty() && rs.iter().any(|r| !r.checks.is_empty()) {
        push(&mut notes, "✓ all checks".into());
    }
    notes.join("; ")
}

fn row(m: &mut String, cells: impl Iterator<Item = String>) {
    m.push('|');
    for c in cells {
        let c = c.replace('|', "\\|").replace(['\n', '\r'], " ");
        let _ = write!(m, " {c} |");
    }
    m.push('\n');
}

/// A fenced block that the text cannot close early: the fence is longer than any run of
/// backticks inside.
fn fence(m: &mut String, text: &str) {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let f = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(m, "{f}text\n{}\n{f}", text.trim_end());
}

pub fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0], 0.9), Some(3.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        let p90 = percentile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9).unwrap();
        assert!((p90 - 9.1).abs() < 1e-9);
    }

    #[test]
    fn a_summary_counts_failures_and_scores_them_zero() {
        let ok = RunResult {
            ttft_ms: Some(100.0),
            total_ms: 1000.0,
            prompt_tokens: Some(10),
            completion_tokens: Some(20),
            decode_tps: Some(21.0),
            checks: vec![
                CheckResult {
                    check: "a".into(),
                    passed: true,
                },
                CheckResult {
                    check: "b".into(),
                    passed: false,
                },
            ],
            quality: Some(5.0),
            ..Default::default()
        };
        let failed = RunResult {
            error: Some("boom".into()),
            total_ms: 5.0,
            quality: Some(0.0),
            ..Default::default()
        };
        let s = summarize(&[ok.clone(), failed, ok]);
        assert_eq!((s.requests, s.failures), (3, 1));
        assert_eq!(s.total_p50_ms, Some(1000.0), "a failure's time is not a latency");
        assert_eq!((s.tokens_in, s.tokens_out), (20, 40));
        assert!((s.quality.unwrap() - 10.0 / 3.0).abs() < 1e-9);
        assert_eq!((s.checks_passed, s.checks_total), (2, 4));
    }

    #[test]
    fn answers_cannot_break_the_markdown() {
        let mut m = String::new();
        fence(&mut m, "```python\nx\n```");
        assert!(m.starts_with("````text\n") && m.ends_with("\n````\n"), "{m}");
        let mut m = String::new();
        row(&mut m, ["a|b".to_owned(), "c\nd".to_owned()].into_iter());
        assert_eq!(m, "| a\\|b | c d |\n");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
    }
}
