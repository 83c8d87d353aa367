//! A `POST /v1/chat/completions` body, parsed as the server does (`ChatRequest::from_slice`),
//! then what the gateway does next that is pure: the routing inputs (token estimate, images,
//! tools, thinking), the body sent to an OpenAI-dialect lane (the request serialized again,
//! which must parse back to the same request), and the Messages body for an Anthropic lane
//! (`from_chat`, which must be a Messages request this crate itself accepts).
//! The body and its checks: crates/protocol/tests/it/fuzz_targets.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::openai_request(data));
