//! An OpenAI-dialect upstream's stream, cut into chunks where the fuzzer says, through the SSE
//! decoder and `StreamFromChat` as the gateway relays it to an Anthropic client. Whatever the
//! upstream sends, the client must get a well-formed Anthropic event stream, framed so that it
//! decodes back to the same events, and the same one however the bytes were cut.
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::stream_to_anthropic(data));
