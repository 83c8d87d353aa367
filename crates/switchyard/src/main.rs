//! `switchyard`: the gateway binary. Parses the command line and wires the crates together:
//! config from `switchyard-core`, the HTTP surface from [`server`].

mod output;
mod server;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard_core::config::{self, ConfigError};
use switchyard_core::gateway::Gateway;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "One endpoint for every model you can reach: local first, free cloud next, paid only when you ask."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: $SWITCHYARD_CONFIG, ./switchyard.yaml, then the user config dir).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding `server.listen` (e.g. 127.0.0.1:4000; port 0 picks a free one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file and print what it resolves to.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::Check { config } => check(config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<config::Config, ConfigError> {
    let path = config::find(path.as_deref())?;
    config::load(&path)
}

fn check(path: Option<PathBuf>) -> Result<ExitCode> {
    match load(path) {
        Ok(cfg) => {
            let file = cfg.source.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            output::line(&format!("{file}: valid"));
            output::line(&cfg.describe());
            for w in &cfg.warnings {
                output::warn(w);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            output::error(&e.to_string());
            Ok(ExitCode::from(2))
        }
    }
}

fn serve(path: Option<PathBuf>, listen: Option<String>) -> Result<ExitCode> {
    let mut cfg = match load(path) {
        Ok(c) => c,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(l) = listen {
        cfg.server.listen = config::parse_listen_arg(&l)
            .map_err(anyhow::Error::msg)
            .context("--listen")?;
    }
    let addr = cfg.server.listen;
    if !addr.ip().is_loopback() && cfg.server.keys.is_empty() {
        bail!(
            "refusing to listen on {addr} without keys: anyone who can reach it could spend your providers' quotas. \
             Add `server.keys` (e.g. keys: [\"${{SWITCHYARD_KEY}}\"]) or listen on 127.0.0.1"
        );
    }
    for w in &cfg.warnings {
        output::warn(w);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let ledger = cfg.storage.ledger.clone();
        let gateway = Gateway::new(cfg, None).await.map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        output::line(&format!("switchyard listening on http://{local}"));
        tracing::info!(ledger = %ledger.display(), "ledger open");
        server::run(listener, server::AppState::new(gateway.clone()), shutdown_signal()).await?;
        gateway.flush().await;
        tracing::info!("stopped; ledger flushed");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
