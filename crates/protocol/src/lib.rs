//! Wire types per dialect, the canonical request, and SSE framing.
//!
//! This crate is pure data and translation: no IO, no tokio, no HTTP. Everything in it is a
//! function of its input, so it can be unit-tested, property-tested and fuzzed on its own.
//!
//! - [`openai`]: the OpenAI chat-completions dialect. Its request type is also the gateway's
//!   canonical request: every other dialect (Anthropic messages, later) translates into it.
//! - [`sse`]: an incremental server-sent-events decoder and the encoder for the answers.

pub mod openai;
pub mod sse;
