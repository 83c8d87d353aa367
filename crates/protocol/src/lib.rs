//! Wire types per dialect, the canonical request, and SSE framing.
//!
//! This crate is pure data and translation: no IO, no tokio, no HTTP. Everything in it is a
//! function of its input, so it can be unit-tested, property-tested and fuzzed on its own.
//!
//! - [`openai`]: the OpenAI chat-completions dialect. Its request type is also the gateway's
//!   canonical request: every other dialect (Anthropic messages, later) translates into it.
//! - [`anthropic`]: the Anthropic Messages dialect and its translation to and from the
//!   canonical request, for whole answers and for streams, both ways.
//! - [`sse`]: an incremental server-sent-events decoder and the encoder for the answers.

pub mod anthropic;
pub mod openai;
pub mod sse;

/// The wire dialect a client speaks, or an upstream answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    OpenAi,
    Anthropic,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        }
    }
}
