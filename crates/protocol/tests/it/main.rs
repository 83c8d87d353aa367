//! Integration tests of switchyard-protocol (one binary, so CI links once).
#![expect(clippy::expect_used, clippy::panic, reason = "tests")]

mod fuzz_regressions;
mod fuzz_targets;
