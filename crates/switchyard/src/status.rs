//! `switchyard status`: every lane, healthy or not, and each of its quota budgets: used, left,
//! and when it resets. Asks the running gateway (`/api/status`); when none answers, reads the
//! quotas from the ledger (health is then unknown).

use crate::{app, output};
use anyhow::{Result, bail};
use clap::Args;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_core::clock::{self, Clock};
use switchyard_core::gateway;
use switchyard_core::quota::Quota;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Config file (as for `serve`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The gateway to ask (default: the config's `server.listen`).
    #[arg(long)]
    pub url: Option<String>,
    /// Print the JSON of `/api/status` instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> Result<ExitCode> {
    let cfg = match app::load_or_default(args.config.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(ExitCode::from(2));
        }
    };
    let url = args.url.clone().unwrap_or_else(|| {
        let mut a = cfg.server.listen;
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{a}")
    });
    let url = url.trim_end_matches('/').to_owned();
    switchyard_core::upstream::install_crypto();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut req = client.get(format!("{url}/api/status"));
    let key = std::env::var("SWITCHYARD_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .or_else(|| cfg.server.keys.first().map(|k| k.expose_secret().to_owned()));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let (status, source) = match req.send().await {
        Ok(r) if r.status().is_success() => (r.json::<Value>().await?, format!("gateway at {url}")),
        Ok(r) => bail!(
            "{url}/api/status answered HTTP {}: {}",
            r.status().as_u16(),
            r.text().await.unwrap_or_default()
        ),
        Err(e) if e.is_connect() => {
            let reader = switchyard_core::ledger::Reader::for_storage(&cfg.storage)
                .await
                .map_err(anyhow::Error::msg)?;
            let quota = Quota::from_ledger(&cfg, Clock::system(), &reader)
                .await
                .map_err(anyhow::Error::msg)?;
            let lanes = gateway::lane_status(&cfg, &quota, None);
            let v = serde_json::json!({"service": "switchyard", "now_ms": quota.now_ms(), "lanes": lanes});
            (
                v,
                format!(
                    "no gateway answers at {url}; quotas from the ledger {}",
                    match &cfg.storage.postgres {
                        Some(u) => switchyard_core::shared::redact(secrecy::ExposeSecret::expose_secret(u)),
                        None => cfg.storage.ledger.display().to_string(),
                    }
                ),
            )
        }
        Err(e) => bail!("cannot ask {url}: {e}"),
    };
    if args.json {
        output::line(&serde_json::to_string_pretty(&status)?);
    } else {
        output::line(&render(&status, &source));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status as a person reads it on a terminal.
pub fn render(status: &Value, source: &str) -> String {
    use std::fmt::Write;
    let now = status["now_ms"].as_i64().unwrap_or_else(clock::wall_now_ms);
    let mut s = format!("{source}, {}\n", clock::format_utc(now));
    let lanes = status["lanes"].as_array().cloned().unwrap_or_default();
    let width = lanes
        .iter()
        .filter_map(|l| l["lane"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(s, "{:<width$}  {:<9} WHERE", "LANE", "STATE");
    for l in &lanes {
        let text = |k: &str| l[k].as_str().unwrap_or("").to_owned();
        let mut tags = vec![if l["local"] == true { "local" } else { "cloud" }];
        if l["premium"] == true {
            tags.push("premium");
        }
        let _ = writeln!(
            s,
            "{:<width$}  {:<9} {}/{} [{}]",
            text("lane"),
            text("state"),
            text("provider"),
            text("model"),
            tags.join(", ")
        );
        let pad = " ".repeat(width + 2);
        if let Some(why) = l["why"].as_str() {
            let _ = writeln!(s, "{pad}{why}");
        }
        let mut lines = 0;
        for b in l["budgets"].as_array().into_iter().flatten() {
            let mut parts = Vec::new();
            for w in b["windows"].as_array().into_iter().flatten() {
                let mut p = format!(
                    "{} {}/{}",
                    w["name"].as_str().unwrap_or("?"),
                    w["used"].as_u64().unwrap_or(0),
                    w["limit"].as_u64().unwrap_or(0)
                );
                if w["used"].as_u64().unwrap_or(0) > 0
                    && let Some(t) = w["resets_at_ms"].as_i64()
                {
                    let _ = write!(p, " (resets in {})", clock::format_wait(t - now));
                }
                parts.push(p);
            }
            for r in b["reported"].as_array().into_iter().flatten() {
                parts.push(format!(
                    "provider says {} {} left (resets in {})",
                    r["remaining"].as_u64().unwrap_or(0),
                    r["metric"].as_str().unwrap_or("?"),
                    clock::format_wait(r["resets_at_ms"].as_i64().unwrap_or(now) - now)
                ));
            }
            if let (Some(cap), Some(spent)) = (b["usd_per_day"].as_f64(), b["spent_usd_today"].as_f64()) {
                parts.push(format!("${spent:.2} of ${cap:.2} today"));
            }
            if parts.is_empty() {
                continue;
            }
            lines += 1;
            let _ = writeln!(
                s,
                "{pad}quota `{}`: {}  [{}; {}]",
                b["key"].as_str().unwrap_or("?"),
                parts.join(" · "),
                b["reset"].as_str().unwrap_or("?"),
                b["source"].as_str().unwrap_or("?")
            );
        }
        if lines == 0 && l["local"] != true {
            let _ = writeln!(s, "{pad}no limits known: only what the provider reports");
        }
    }
    s.trim_end().to_owned()
}
