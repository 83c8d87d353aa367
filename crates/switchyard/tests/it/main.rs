//! End-to-end tests: the real `switchyard` binary on port 0, fake upstreams in this process,
//! real HTTP in between. One test binary for the crate (links once on a 2-core CI).
#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

mod anthropic;
mod bench_cmd;
mod brain;
mod chat;
mod config_cli;
mod dashboard;
mod durability;
mod fallback;
mod faults;
mod input;
mod ledger;
mod mcp;
mod notify;
mod quota;
mod real_model;
mod reload;
mod replicas;
mod secrets;
mod usage;
