//! The targets' bodies live beside the protocol crate's regression tests, so a kept crash is
//! replayed in `cargo test` through exactly the code that found it (and CI keeps that code
//! compiling); this crate only adds libFuzzer around them.

#[path = "../../crates/protocol/tests/it/fuzz_targets.rs"]
mod targets;

pub use targets::*;
