//! Turning an upstream failure into one error class (DESIGN "Errors are classified, not
//! guessed"; the rules are research/providers.md §4 and §6). The class alone decides what
//! happens next: fall back or not, count against the lane's breaker or not, cool down or not.

use crate::ratelimit::{self, Observed};
use http::HeaderMap;
use std::time::Duration;
use switchyard_protocol::openai::upstream_error_message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// TCP/TLS connect failed (refused, unreachable, DNS, connect timeout).
    Connect,
    /// No first byte within the time allowed, or a 408.
    Timeout,
    /// 5xx other than overload.
    Unavailable,
    /// 503, 529, 498: the provider is busy; try elsewhere.
    Overloaded,
    /// A short-window 429: cool down for Retry-After.
    RateLimited,
    /// A daily/monthly free quota or credit is spent (429 with a daily signature, 402).
    QuotaExhausted,
    /// The prompt does not fit this lane's window: a larger lane may take it.
    ContextOverflow,
    /// The request itself is wrong: returned to the caller, never retried elsewhere.
    BadRequest,
    /// 401/403: the provider refused our key.
    Auth,
    /// 404: the model (or the URL) does not exist there.
    NotFound,
    /// 2xx that is not a valid answer (not JSON, no events, an error inside a 200).
    BadResponse,
    /// The upstream stream broke after the answer had started.
    StreamInterrupted,
    /// The lane cannot take this kind of request (images or tools for a text-only model).
    Unsupported,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::ContextOverflow => "context_overflow",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Auth => "auth",
            ErrorClass::NotFound => "not_found",
            ErrorClass::BadResponse => "bad_response",
            ErrorClass::StreamInterrupted => "stream_interrupted",
            ErrorClass::Unsupported => "unsupported",
        }
    }

    /// May the next lane of the route be tried? Only the caller's own mistakes stop here.
    pub fn falls_back(self) -> bool {
        self != ErrorClass::BadRequest
    }

    /// Does this failure say the lane is unhealthy (and so count towards opening its breaker)?
    /// Rate limits and full windows say nothing about health.
    pub fn counts_against_health(self) -> bool {
        matches!(
            self,
            ErrorClass::Connect
                | ErrorClass::Timeout
                | ErrorClass::Unavailable
                | ErrorClass::Overloaded
                | ErrorClass::Auth
                | ErrorClass::BadResponse
                | ErrorClass::StreamInterrupted
        )
    }
}

/// A classified upstream failure.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub class: ErrorClass,
    pub status: Option<u16>,
    /// The upstream's own message (or ours for transport failures). Never contains a key.
    pub message: String,
    pub code: Option<String>,
    /// How long the provider asked us to wait (Retry-After, a reset time, a delay in the body).
    pub retry_after: Option<Duration>,
    /// Budgets the provider reported in its headers.
    pub observed: Vec<Observed>,
}

impl UpstreamError {
    pub fn transport(class: ErrorClass, message: impl Into<String>) -> Self {
        UpstreamError {
            class,
            status: None,
            message: message.into(),
            code: None,
            retry_after: None,
            observed: Vec::new(),
        }
    }
}

const QUOTA_SIGNS: &[&str] = &[
    "per day",
    "(rpd)",
    "(tpd)",
    "perday",
    "daily free allocation",
    "free-models-per-day",
    "token_quota_exceeded",
    "tokens per day limit",
    "insufficient_quota",
    "userbymodelbyday",
    "enforced_spend_limit_reached",
    "monthly included credits",
];

const OVERFLOW_SIGNS: &[&str] = &[
    "context_length_exceeded",
    "exceed_context_size_error",
    "maximum context length",
    "exceeds the maximum number of tokens",
    "prompt is too long",
    "longer than the context length",
    "longer than the model's context length",
    "too large for model with",
    "exceeds the available context size",
    "tokens_limit_reached",
];

/// Classifies a non-2xx answer.
pub fn classify_status(status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    let (message, code) = upstream_error_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned();
        (
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            },
            None,
        )
    });
    let lower = format!(
        "{} {}",
        message.to_ascii_lowercase(),
        code.as_deref().unwrap_or("").to_ascii_lowercase()
    );
    let has = |signs: &[&str]| signs.iter().any(|s| lower.contains(s));
    let rate_words =
        lower.contains("per min") || lower.contains("(tpm)") || lower.contains("(rpm)") || lower.contains("rate limit");
    let class = match status {
        402 => ErrorClass::QuotaExhausted,
        429 if has(QUOTA_SIGNS) => ErrorClass::QuotaExhausted,
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        498 => ErrorClass::Overloaded, // Groq flex tier: capacity_exceeded
        404 => ErrorClass::NotFound,
        408 => ErrorClass::Timeout,
        413 => ErrorClass::ContextOverflow,
        400..=499 if !rate_words && has(OVERFLOW_SIGNS) => ErrorClass::ContextOverflow,
        400..=499 => ErrorClass::BadRequest,
        503 | 529 => ErrorClass::Overloaded,
        500..=599 => ErrorClass::Unavailable,
        _ => ErrorClass::BadResponse,
    };
    let now = crate::clock::wall_now_ms();
    UpstreamError {
        class,
        status: Some(status),
        message,
        code,
        retry_after: ratelimit::retry_hint(headers, body, now),
        observed: ratelimit::observe(headers, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: u16, body: &str) -> ErrorClass {
        classify_status(status, &HeaderMap::new(), body.as_bytes()).class
    }

    #[test]
    fn real_provider_bodies() {
        // Groq TPD vs TPM (research/providers.md §4).
        assert_eq!(
            c(
                429,
                r#"{"error":{"message":"Rate limit reached for model `x` in organization `org_1` service tier `on_demand` on tokens per day (TPD): Limit 200000, Used 197494, Requested 4035.","type":"tokens","code":"rate_limit_exceeded"}}"#
            ),
            ErrorClass::QuotaExhausted
        );
        assert_eq!(
            c(
                429,
                r#"{"error":{"message":"Rate limit reached ... on tokens per minute (TPM): Limit 6000","type":"tokens","code":"rate_limit_exceeded"}}"#
            ),
            ErrorClass::RateLimited
        );
        assert_eq!(
            c(
                429,
                r#"[{"error":{"code":429,"message":"Quota exceeded for metric: generate_requests_per_model_per_day, quotaId GenerateRequestsPerDayPerProjectPerModel-FreeTier","status":"RESOURCE_EXHAUSTED"}}]"#
            ),
            ErrorClass::QuotaExhausted
        );
        assert_eq!(
            c(
                429,
                r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits","code":429}}"#
            ),
            ErrorClass::QuotaExhausted
        );
        assert_eq!(c(402, "{}"), ErrorClass::QuotaExhausted);
        assert_eq!(
            c(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            ErrorClass::Overloaded
        );
        assert_eq!(
            c(
                400,
                r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error"}}"#
            ),
            ErrorClass::ContextOverflow
        );
        assert_eq!(
            c(
                400,
                r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 54692 tokens","type":"BadRequestError","param":null,"code":400}"#
            ),
            ErrorClass::ContextOverflow
        );
        assert_eq!(
            c(
                400,
                r#"{"error":{"message":"'messages' must contain at least one message","type":"invalid_request_error"}}"#
            ),
            ErrorClass::BadRequest
        );
        assert_eq!(c(401, r#"{"error":"bad key"}"#), ErrorClass::Auth);
        assert_eq!(c(502, "<html>bad gateway</html>"), ErrorClass::Unavailable);
        assert_eq!(c(404, r#"{"error":"model 'x' not found"}"#), ErrorClass::NotFound);
    }

    #[test]
    fn retry_after_and_messages() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("7"));
        let e = classify_status(
            429,
            &h,
            br#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.message, "slow down");
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(classify_status(500, &HeaderMap::new(), b"").message, "HTTP 500");
    }

    #[test]
    fn only_caller_mistakes_stop_fallback() {
        assert!(!ErrorClass::BadRequest.falls_back());
        assert!(ErrorClass::ContextOverflow.falls_back() && ErrorClass::RateLimited.falls_back());
        assert!(!ErrorClass::RateLimited.counts_against_health() && ErrorClass::Connect.counts_against_health());
    }
}
