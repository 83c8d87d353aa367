//! A `POST /v1/messages` (or `count_tokens`) body, parsed as the server does (`decode` to a
//! JSON value, kept for passthrough, then `MessagesRequest::from_value`), translated to the
//! canonical request (`to_chat`), and what the gateway does with that: the routing inputs and
//! the body an OpenAI-dialect lane is sent, which must be a chat request this crate accepts.
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::anthropic_request(data));
