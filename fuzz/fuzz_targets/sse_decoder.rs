//! The SSE decoder on arbitrary bytes cut at arbitrary places (the property test in sse.rs
//! does this for generated, well-formed streams): the events must not depend on the cuts, and
//! re-encoding them as the passthrough relay does (`encode_data`) must decode to the same.
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::sse_decoder(data));
