//! Live config reload: the config file (and the `.env` beside it) is checked for changes once a
//! second, and SIGHUP reloads at once. A valid change builds a new gateway that takes over
//! what still applies from the running one (loaded models, ledger, quota counters, breaker
//! state, metrics) and is swapped in for new requests; requests in flight finish on the old
//! one. An invalid change is reported and the running config stays.
//!
//! The file is polled rather than watched with inotify: editors that save by writing a new
//! file and renaming it over the old one (vim, many IDEs) replace the inode a watch is on, and
//! a once-a-second `stat` sees every kind of save the same way for the cost of nothing.

use crate::app;
use crate::server::{AppState, Live};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use switchyard_core::config;

/// What a save changes on disk: the file's identity, size and time, for the config and its
/// `.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(u64, u64, SystemTime)>>);

fn stamp(paths: &[PathBuf]) -> Stamp {
    Stamp(
        paths
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                #[cfg(unix)]
                let ino = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let ino = 0;
                Some((ino, m.len(), m.modified().ok()?))
            })
            .collect(),
    )
}

/// Where the server listens: as the config said at start, and where it is bound (`--listen`
/// may differ). A changed `server.listen` needs a restart, and a reload says so.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub configured: SocketAddr,
    pub bound: SocketAddr,
}

/// Watches until the process ends. `file`: the config file (none for the zero-config default,
/// which SIGHUP rediscovers: Ollama started since, models pulled since).
pub async fn watch(live: Live, file: Option<PathBuf>, listen: Listen) {
    let watched: Vec<PathBuf> = file
        .iter()
        .flat_map(|f| {
            let env = f.parent().unwrap_or(Path::new(".")).join(".env");
            [f.clone(), env]
        })
        .collect();
    let mut last = stamp(&watched);
    let mut hup = hangup();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = tick.tick() => {
                if watched.is_empty() {
                    continue;
                }
                let now = stamp(&watched);
                if now == last {
                    continue;
                }
                // A save can come in several writes: wait for it to settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                last = stamp(&watched);
                if last.0.first().is_some_and(Option::is_none) {
                    // Removed (or mid-rename): keep running on what we have.
                    continue;
                }
                "the config file changed"
            }
            Some(()) = recv(&mut hup) => "SIGHUP",
        };
        reload(&live, file.as_deref(), listen, why).await;
    }
}

/// Loads the config again and swaps in a gateway for it. Returns whether it did.
pub async fn reload(live: &Live, file: Option<&Path>, listen: Listen, why: &str) -> bool {
    let loaded = match file {
        Some(f) => config::load(f),
        None => app::load_or_default(None).await,
    };
    let mut cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("config not reloaded ({why}); the running config stays:\n{e}");
            return false;
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    if cfg.server.listen != listen.configured && file.is_some() {
        tracing::warn!(
            "`server.listen` changed to {} but the gateway stays on {} until it is restarted",
            cfg.server.listen,
            listen.bound
        );
    }
    cfg.server.listen = listen.bound;
    if !listen.bound.ip().is_loopback() && cfg.server.keys.is_empty() {
        tracing::error!(
            "config not reloaded ({why}): it has no `server.keys`, and this gateway listens on {}, beyond loopback",
            listen.bound
        );
        return false;
    }
    let current = live.current();
    match current.gateway.reload(cfg, app::engine_factory(false)).await {
        Ok(gw) => {
            let (lanes, routes) = (gw.config().lanes.len(), gw.config().routes.len());
            live.swap(AppState::new(gw));
            tracing::info!(lanes, routes, "config reloaded ({why})");
            true
        }
        Err(e) => {
            tracing::error!("config not reloaded ({why}); the running config stays: {e}");
            false
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn recv(h: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    {
        match h {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = h;
        std::future::pending().await
    }
}
