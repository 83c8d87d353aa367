//! An Anthropic upstream's stream, cut into chunks where the fuzzer says, through the SSE
//! decoder and `StreamToChat` (and the passthrough probe) as the gateway relays it to an
//! OpenAI client. Every chunk must be JSON the client and the gateway's own probe can read,
//! `[DONE]` only last, and the result the same however the bytes were cut.
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::stream_to_openai(data));
