//! An upstream's whole (non-streamed) answer or error body, through everything the gateway
//! reads it with: the usage probes of both dialects, the error-envelope reader, and the answer
//! translators both ways, whose output must be the shape they promise.
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::answers(data));
