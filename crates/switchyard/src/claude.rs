//! `switchyard claude [ARGS…]`: runs the installed Claude Code (`claude`) with its Anthropic
//! base URL and token pointing at this gateway. A gateway already answering at `--url` or at
//! the config's `server.listen` is used; otherwise one is started in this process on a free
//! loopback port for as long as `claude` runs.

use crate::{app, server};
use anyhow::{Context, Result, anyhow};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use switchyard_core::config::Config;
use switchyard_core::gateway::Gateway;

#[derive(clap::Args, Debug, Clone)]
pub struct ClaudeArgs {
    /// A running gateway to use (default: `server.listen` if a Switchyard answers there, else
    /// one started in this process).
    #[arg(long, env = "SWITCHYARD_URL")]
    pub url: Option<String>,
    /// Key for the gateway (default: the first of `server.keys`).
    #[arg(long, env = "SWITCHYARD_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Config file (default: as `switchyard serve`; none found: the zero-config default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The Claude Code executable.
    #[arg(long, env = "SWITCHYARD_CLAUDE_BIN", default_value = "claude")]
    pub claude_bin: PathBuf,
    /// Everything else goes to `claude` (e.g. `-p "question"`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Is a Switchyard answering at `url`? (Its `/healthz` names the service.)
async fn is_switchyard(url: &str) -> bool {
    switchyard_core::upstream::install_crypto();
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_millis(500)).build() else {
        return false;
    };
    match client
        .get(format!("{}/healthz", url.trim_end_matches('/')))
        .send()
        .await
    {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["service"] == "switchyard"),
        Err(_) => false,
    }
}

fn first_key(cfg: &Config) -> Option<String> {
    cfg.server.keys.first().map(|k| k.expose_secret().to_owned())
}

pub fn run(args: ClaudeArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: ClaudeArgs) -> Result<ExitCode> {
    let cfg = app::load_or_default(args.config.as_deref())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut key = args.key.clone().or_else(|| first_key(&cfg));
    let configured = format!("http://{}", cfg.server.listen);
    let mut stop = None;
    let url = match &args.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None if is_switchyard(&configured).await => configured,
        None => {
            // No gateway running: serve one here, on loopback only, for this session.
            let gateway = Gateway::new(cfg, app::engine_factory(false))
                .await
                .map_err(anyhow::Error::msg)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot listen on a loopback port")?;
            let addr = listener.local_addr()?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let state = server::AppState::new(gateway.clone());
            let task = tokio::spawn(async move {
                let _ = server::run(listener, state, async {
                    let _ = rx.await;
                })
                .await;
                gateway.shutdown(std::time::Duration::from_secs(3)).await;
            });
            stop = Some((tx, task));
            format!("http://{addr}")
        }
    };
    tracing::info!(%url, "Claude Code will use this gateway");
    // Claude Code wants some token; a gateway without keys accepts any.
    let token = key.take().unwrap_or_else(|| "switchyard".to_owned());
    let mut cmd = tokio::process::Command::new(&args.claude_bin);
    cmd.args(&args.args)
        .env("ANTHROPIC_BASE_URL", &url)
        .env("ANTHROPIC_AUTH_TOKEN", token)
        // An API key would take precedence over the token (and be sent to us instead).
        .env_remove("ANTHROPIC_API_KEY");
    if std::env::var_os("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC").is_none() {
        // Local first: no telemetry or update checks behind the user's back.
        cmd.env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    }
    let status = match cmd.status().await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow!(
                "Claude Code was not found (`{}`): install it with `npm install -g @anthropic-ai/claude-code`, \
                 or point --claude-bin / SWITCHYARD_CLAUDE_BIN at it",
                args.claude_bin.display()
            ));
        }
        Err(e) => return Err(anyhow!("could not run `{}`: {e}", args.claude_bin.display())),
    };
    if let Some((tx, task)) = stop {
        let _ = tx.send(());
        let _ = task.await;
    }
    Ok(ExitCode::from(
        status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
    ))
}
