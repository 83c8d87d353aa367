//! The `switchyard` and `brain` binaries: CLI, HTTP server, and the wiring of the crates.
//! `main.rs` and `brain.rs` are thin entry points over this library.

pub mod app;
pub mod ask;
pub mod bench;
pub mod claude;
pub mod dashboard;
pub mod mcp;
pub mod models;
pub mod output;
pub mod reload;
pub mod server;
pub mod status;
pub mod usage;
