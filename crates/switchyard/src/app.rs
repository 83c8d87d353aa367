//! Wiring shared by every command: finding the config (or building the zero-config default),
//! the embedded engine factory, logging.

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use switchyard_core::config::{self, Config, ConfigError, Env};
use switchyard_core::discover;
use switchyard_core::local::{EngineFactory, FakeEngine, LocalEngine};

/// Default log filter for one-question commands: warnings, plus what the model store is doing
/// (a first run fetches the model, which takes a while and should not look like a hang).
pub const QUIET: &str = "warn,switchyard_engine::store=info";

pub fn init_logging(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .try_init();
}

/// The config to run with: an explicit or found file, else the zero-config default.
pub async fn load_or_default(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    match config::find(explicit) {
        Ok(path) => config::load(&path),
        Err(ConfigError::NotFound(looked)) => {
            tracing::info!("no config file ({looked}); using the zero-config default");
            let env = Env::for_config_dir(None).map_err(|message| {
                ConfigError::Invalid(vec![config::Diagnostic {
                    file: "(environment)".into(),
                    line: 0,
                    column: 0,
                    message,
                }])
            })?;
            discover::zero_config(&env).await
        }
        Err(e) => Err(e),
    }
}

/// Builds the engines of `embedded` providers. `SWITCHYARD_ENGINE=fake` swaps in a
/// deterministic fake (for tests of everything around the model); otherwise llama.cpp when
/// the `embedded` feature is built.
pub fn engine_factory(show_progress: bool) -> Option<EngineFactory> {
    if std::env::var("SWITCHYARD_ENGINE").as_deref() == Ok("fake") {
        let f: EngineFactory = Arc::new(|_| {
            Ok(Arc::new(FakeEngine::new(std::time::Duration::from_millis(10), 16)) as Arc<dyn LocalEngine>)
        });
        return Some(f);
    }
    real_engine(show_progress)
}

#[cfg(feature = "embedded")]
fn real_engine(show_progress: bool) -> Option<EngineFactory> {
    let f: EngineFactory = Arc::new(move |p| {
        let cfg = p
            .embedded
            .as_ref()
            .ok_or_else(|| format!("provider `{}` is not embedded", p.name))?;
        Ok(switchyard_engine::llama::LlamaEngine::start(cfg, show_progress) as Arc<dyn LocalEngine>)
    });
    Some(f)
}

#[cfg(not(feature = "embedded"))]
fn real_engine(_show_progress: bool) -> Option<EngineFactory> {
    None
}
