//! `brain "…"`: ask one question. The same as `switchyard ask`.

use clap::Parser;
use std::process::ExitCode;
use switchyard::{app, ask, output};

#[derive(Parser)]
#[command(
    name = "brain",
    version,
    about = "Ask one question: local first, free cloud next, paid only when you ask."
)]
struct Cli {
    #[command(flatten)]
    ask: ask::AskArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    app::init_logging(app::QUIET);
    let result = ask::run(cli.ask);
    // The runtime, and with it every ledger handle, is gone: let the writer close the database.
    switchyard_core::ledger::join_writers(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}
