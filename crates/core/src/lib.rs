//! The gateway's core: configuration, the provider catalog, routing, health, the executor
//! that tries lanes in order, the OpenAI-compatible upstream client and the ledger.
//!
//! It knows nothing of serving HTTP: the binary decodes a request, hands it to
//! [`gateway::Gateway`] and encodes what comes back.

pub mod catalog;
pub mod classify;
pub mod clock;
pub mod config;
pub mod discover;
pub mod error;
pub mod gateway;
pub mod health;
mod journal;
pub mod ledger;
pub mod local;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod pg;
pub mod quota;
pub mod ratelimit;
pub mod router;
pub mod shared;
pub mod upstream;
pub mod usage;
