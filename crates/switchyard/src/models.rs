//! `switchyard models list|pull|path`: the embedded engine's model store.

use crate::output;
use anyhow::{Result, bail};
use switchyard_engine::store;

pub async fn list() -> Result<()> {
    output::line(&format!("cache: {}", store::cache_dir().display()));
    for m in store::MODELS {
        let state = match store::locate(m.name) {
            Some(p) => format!("present at {}", p.display()),
            None => "not downloaded (`switchyard models pull NAME`)".into(),
        };
        output::line(&format!(
            "{:<14} {:>5} MB  {}\n{:<14} {state}",
            m.name,
            m.size / 1_000_000,
            m.description,
            ""
        ));
    }
    Ok(())
}

pub async fn pull(name: &str) -> Result<()> {
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    switchyard_core::upstream::install_crypto();
    let path = store::pull(name, &store::Progress::new(show))
        .await
        .map_err(anyhow::Error::msg)?;
    output::line(&path.display().to_string());
    Ok(())
}

pub fn path(name: &str) -> Result<()> {
    match store::locate(name) {
        Some(p) => {
            output::line(&p.display().to_string());
            Ok(())
        }
        None => bail!("model `{name}` is not here; `switchyard models pull {name}` fetches it"),
    }
}
