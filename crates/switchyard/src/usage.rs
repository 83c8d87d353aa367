//! `switchyard usage`: what the ledger says about a period — requests, tokens, cost, the
//! share answered locally and the fallbacks with their reasons, per lane, route, day or
//! provider. Reads the ledger named by the config (no gateway needed); with `--url`, asks a
//! running gateway's `/api/usage` instead. Prints a table, JSON or CSV.

use crate::{app, output};
use anyhow::{Context, Result, bail};
use clap::Args;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_core::clock;
use switchyard_core::usage::{self, By};

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Config file (as for `serve`): the report reads its `storage.ledger`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Start of the period: a time back from now (90s, 30m, 24h, 7d, 2w), a UTC date
    /// (2026-11-20) or a time (2026-11-20T10:00:00Z).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// End of the period, in the same forms (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Group the rows by lane, route, day (UTC) or provider.
    #[arg(long, default_value = "lane", value_parser = parse_by)]
    pub by: By,
    /// Print the report as JSON (the same as `GET /api/usage`).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows and the total as CSV.
    #[arg(long)]
    pub csv: bool,
    /// Ask this running gateway (its `/api/usage`) instead of reading the ledger.
    #[arg(long)]
    pub url: Option<String>,
}

fn parse_by(s: &str) -> Result<By, String> {
    s.parse()
}

pub async fn run(args: UsageArgs) -> Result<ExitCode> {
    let now = clock::wall_now_ms();
    // Checked here even when a gateway will answer, so a typo fails the same way everywhere.
    let since = usage::parse_since(&args.since, now);
    let until = args.until.as_deref().map(|u| usage::parse_since(u, now)).transpose();
    let (since, until) = match (since, until) {
        (Ok(s), Ok(u)) => (s, u.unwrap_or(now)),
        (Err(e), _) => {
            output::error(&format!("--since: {e}"));
            return Ok(ExitCode::from(2));
        }
        (_, Err(e)) => {
            output::error(&format!("--until: {e}"));
            return Ok(ExitCode::from(2));
        }
    };
    let cfg = match app::load_or_default(args.config.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(ExitCode::from(2));
        }
    };
    let (report, source) = match &args.url {
        Some(url) => {
            let url = url.trim_end_matches('/');
            let mut endpoint =
                reqwest::Url::parse(&format!("{url}/api/usage")).with_context(|| format!("--url {url}"))?;
            endpoint
                .query_pairs_mut()
                .append_pair("since", &args.since)
                .append_pair("by", args.by.as_str());
            if let Some(u) = &args.until {
                endpoint.query_pairs_mut().append_pair("until", u);
            }
            switchyard_core::upstream::install_crypto();
            let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
            let mut req = client.get(endpoint);
            // As `switchyard status`: the environment's key, else the config's first.
            let key = std::env::var("SWITCHYARD_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .or_else(|| cfg.server.keys.first().map(|k| k.expose_secret().to_owned()));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => (r.json::<Value>().await?, format!("gateway at {url}")),
                Ok(r) => bail!(
                    "{url}/api/usage answered HTTP {}: {}",
                    r.status().as_u16(),
                    r.text().await.unwrap_or_default()
                ),
                Err(e) => bail!("cannot ask {url}: {e}"),
            }
        }
        None => {
            let shown = match &cfg.storage.postgres {
                Some(u) => switchyard_core::shared::redact(secrecy::ExposeSecret::expose_secret(u)),
                None => cfg.storage.ledger.display().to_string(),
            };
            let reader = switchyard_core::ledger::Reader::for_storage(&cfg.storage)
                .await
                .map_err(anyhow::Error::msg)?;
            let report = usage::report_from(&reader, since, until, args.by)
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("reading the ledger {shown}"))?;
            (serde_json::to_value(report)?, format!("ledger {shown}"))
        }
    };
    if args.json {
        output::line(&serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        output::line(&csv(&report));
    } else {
        output::line(&render(&report, &source));
    }
    Ok(ExitCode::SUCCESS)
}

/// The numbers of one row, as the table shows them.
fn cells(row: &Value) -> Vec<String> {
    let n = |k: &str| row[k].as_u64().unwrap_or(0).to_string();
    let cost = row["cost_usd"].as_f64().unwrap_or(0.0);
    let cost = if cost > 0.0 && cost < 0.00005 {
        "<0.0001".to_owned()
    } else {
        format!("{cost:.4}")
    };
    vec![
        row["key"].as_str().unwrap_or("?").to_owned(),
        n("requests"),
        n("ok"),
        n("errors"),
        n("tokens_in"),
        n("tokens_out"),
        cost,
        format!("{:.0}%", row["local_share"].as_f64().unwrap_or(0.0) * 100.0),
        n("fallbacks"),
    ]
}

/// The report as a person reads it on a terminal: the period, a table, the total, and the
/// fallbacks with their reasons.
pub fn render(report: &Value, source: &str) -> String {
    let by = report["by"].as_str().unwrap_or("lane");
    let mut s = format!(
        "Usage from {} to {}, by {by} ({source})\n",
        clock::format_utc(report["since_ms"].as_i64().unwrap_or(0)),
        clock::format_utc(report["until_ms"].as_i64().unwrap_or(0)),
    );
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        s.push_str("no requests in this period");
        return s;
    }
    let header: Vec<String> = [
        by,
        "requests",
        "ok",
        "err",
        "tokens in",
        "tokens out",
        "cost $",
        "local %",
        "fallbacks",
    ]
    .iter()
    .map(|h| h.to_uppercase())
    .collect();
    let mut table = vec![header];
    table.extend(rows.iter().map(cells));
    let mut total = cells(&report["total"]);
    total[0] = "TOTAL".into();
    table.push(total);
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let last = table.len() - 1;
    for (i, row) in table.iter().enumerate() {
        if i == last {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(s, "{}", rule.join("  "));
        }
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    let reasons = report["fallback_reasons"].as_array().cloned().unwrap_or_default();
    if !reasons.is_empty() {
        s.push_str("\nFallbacks (the lane that failed → why × how often)\n");
        for r in &reasons {
            let _ = writeln!(
                s,
                "  {} → {} × {}",
                r["lane"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("?"),
                r["count"].as_u64().unwrap_or(0)
            );
        }
    }
    s.trim_end().to_owned()
}

/// The rows and the total (key `total`) as CSV: a header named after the grouping, numbers
/// unformatted (cost in dollars, local share as a fraction).
pub fn csv(report: &Value) -> String {
    let by = report["by"].as_str().unwrap_or("lane");
    let mut out = format!("{by},requests,ok,errors,tokens_in,tokens_out,cost_usd,local_share,fallbacks\n");
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().chain(std::iter::once(&report["total"])) {
        let mut fields = vec![csv_field(row["key"].as_str().unwrap_or(""))];
        for k in [
            "requests",
            "ok",
            "errors",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "local_share",
            "fallbacks",
        ] {
            fields.push(row[k].to_string());
        }
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out.trim_end().to_owned()
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled. A text
/// that a spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a
/// carriage return: lane and route names come from a config file, perhaps someone else's)
/// is kept as text with a leading `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "since_ms": 1_795_132_800_000_i64, "until_ms": 1_795_219_200_000_i64, "by": "lane",
            "total": {"key": "total", "requests": 12, "ok": 10, "errors": 2, "tokens_in": 1234, "tokens_out": 56,
                      "cost_usd": 0.0125, "local_share": 0.75, "fallbacks": 3},
            "rows": [
                {"key": "gemma-local", "requests": 9, "ok": 8, "errors": 1, "tokens_in": 1000, "tokens_out": 50,
                 "cost_usd": 0.0, "local_share": 1.0, "fallbacks": 0},
                {"key": "odd, \"lane\"", "requests": 3, "ok": 2, "errors": 1, "tokens_in": 234, "tokens_out": 6,
                 "cost_usd": 0.0125, "local_share": 0.0, "fallbacks": 3}
            ],
            "fallback_reasons": [{"lane": "gemma-local", "reason": "connect", "count": 3}]
        })
    }

    #[test]
    fn the_table_aligns_its_columns_and_lists_the_fallbacks() {
        let text = render(&report(), "ledger x.db");
        assert_eq!(
            text,
            "Usage from 2026-11-20 00:00 UTC to 2026-11-21 00:00 UTC, by lane (ledger x.db)\n\
             LANE         REQUESTS  OK  ERR  TOKENS IN  TOKENS OUT  COST $  LOCAL %  FALLBACKS\n\
             gemma-local         9   8    1       1000          50  0.0000     100%          0\n\
             odd, \"lane\"         3   2    1        234           6  0.0125       0%          3\n\
             -----------  --------  --  ---  ---------  ----------  ------  -------  ---------\n\
             TOTAL              12  10    2       1234          56  0.0125      75%          3\n\
             \n\
             Fallbacks (the lane that failed → why × how often)\n\
             \x20 gemma-local → connect × 3"
        );
        let empty = json!({"since_ms": 0, "until_ms": 0, "by": "day", "rows": [], "total": {}, "fallback_reasons": []});
        assert!(render(&empty, "s").ends_with("by day (s)\nno requests in this period"));
    }

    #[test]
    fn csv_quotes_what_needs_it_and_ends_with_the_total() {
        assert_eq!(
            csv(&report()),
            "lane,requests,ok,errors,tokens_in,tokens_out,cost_usd,local_share,fallbacks\n\
             gemma-local,9,8,1,1000,50,0.0,1.0,0\n\
             \"odd, \"\"lane\"\"\",3,2,1,234,6,0.0125,0.0,3\n\
             total,12,10,2,1234,56,0.0125,0.75,3"
        );
    }

    #[test]
    fn csv_keeps_a_formula_as_text() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for (name, cell) in [("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx")] {
            assert_eq!(csv_field(name), cell, "{name}");
        }
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(
            csv_field("llama-3.3=70b"),
            "llama-3.3=70b",
            "only the first character counts"
        );
    }
}
