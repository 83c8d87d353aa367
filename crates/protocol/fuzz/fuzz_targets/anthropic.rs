//! Arbitrary bytes through every Anthropic entry point: request parsing and translation both
//! ways, answer translation both ways, and both stream translators fed the bytes as SSE.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_protocol::anthropic::fuzz_entry(data);
});
