//! What providers say about their own budgets: the rate-limit headers on every response and the
//! "wait this long" hints on a 429 or 503 (research/providers.md §3, §4 and §6).
//!
//! Pure functions of headers, body bytes and the current wall-clock time, so callers decide
//! where the clock comes from and tests can pin it. No IO, no tokio, no panics on any input:
//! headers and bodies come from the network and are read as hostile.
//!
//! Times are kept as milliseconds since the Unix epoch (`i64`), dates are computed here with
//! days-from-civil arithmetic rather than a date crate, and every sum is checked.

use crate::clock::{civil_from_days, days_from_civil};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests.
    Requests,
    /// Tokens, input and output together.
    Tokens,
    /// Input (prompt) tokens only (Anthropic).
    InputTokens,
    /// Output (completion) tokens only (Anthropic).
    OutputTokens,
}

/// The period a budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A second, or a few (Together's per-second limits, Mistral's `req-10-second`).
    Second,
    /// A minute.
    Minute,
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// A calendar month.
    Month,
    /// The headers do not say and the reset value does not tell.
    Unknown,
}

/// One budget a provider reported in its response headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// What the budget counts.
    pub metric: Metric,
    /// The period it covers, named by the header or inferred from its reset value.
    pub window: Window,
    /// The budget's size, when the provider sends it.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: u64,
    /// Wall-clock time (ms since the Unix epoch) when this budget is full again, if the headers say.
    pub reset_at_ms: Option<i64>,
}

/// The longest wait [`retry_hint`] returns: a month of quota plus a day of slack. Anything longer
/// is a misparse or a provider bug, and parking a lane for years would hide it.
const MAX_WAIT: Duration = Duration::from_secs(31 * 86_400);

const NANOS_PER_SEC: u128 = 1_000_000_000;
const MS_PER_DAY: i64 = 86_400_000;

/// A bare reset number above this is epoch milliseconds (year 2001 onwards in ms)...
const EPOCH_MS_ABOVE: f64 = 1e12;
/// ...and above this, epoch seconds. Below it, seconds from now: no window lasts 31 years.
const EPOCH_S_ABOVE: f64 = 1e9;
/// 10000-01-01T00:00:00Z. Later "epochs" are garbage, not dates.
const MAX_EPOCH_MS: i64 = 253_402_300_800_000;

/// A reset further away than this means a daily budget in the families whose header names do
/// not say the window (Groq's requests are per day, OpenAI's per minute, same header names).
const MINUTE_MS: i64 = 60_000;

/// How many keys of an `error.metadata.headers` object are read: a body is not allowed to
/// build an unbounded map.
const MAX_BODY_HEADERS: usize = 64;

/// Go-style durations as Groq/OpenAI send them: "2m59.56s", "7.66s", "940ms", "1h2m3s", "4h17m", "0s", "11m0.528s"; also a bare number of seconds ("33011.38"). None if unparseable, negative or non-finite.
///
/// Units are `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m` and `h`, as in Go's `time.ParseDuration`.
/// Decimal values are converted exactly (digits beyond the nanosecond are dropped), so
/// "2m59.56s" is exactly 179.56 s. A bare number in exponent form ("1e3") is read as float
/// seconds.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Some(nanos) = parse_decimal(s.as_bytes(), NANOS_PER_SEC) {
        return nanos_to_duration(nanos);
    }
    go_units(s.as_bytes())
        .and_then(nanos_to_duration)
        .or_else(|| float_seconds(s))
}

/// Every budget the response headers describe. `now_ms` is the current wall-clock time in ms since the epoch (reset values given as durations are added to it).
///
/// The order is fixed (Anthropic, the generic `x-ratelimit-*`, Groq/OpenAI `-requests` and
/// `-tokens`, the `-{metric}-{window}` families, Together's `x-tokenlimit-*`), not the order the
/// headers arrived in. A family appears only when its `remaining` header is a non-negative
/// number. Windows named in the header (`-minute`, `-month`, ...) without a reset header get
/// the end of the window as their reset: now + 60 s for a minute, the first of the next
/// calendar month (UTC) for a month.
pub fn observe(headers: &HeaderMap, now_ms: i64) -> Vec<Observed> {
    observe_all(headers, now_ms)
        .into_iter()
        .map(|seen| seen.observed)
        .collect()
}

/// How long a 429 (or 503) asks the caller to wait, from whatever the provider sent: the `retry-after` header (seconds, or an HTTP-date), OpenRouter's `X-RateLimit-Reset` (epoch ms) in the headers or inside the body at `error.metadata.headers`, Groq's "Please try again in 11m0.528s" in the message, Gemini's `RetryInfo` `retryDelay: "22s"` (in `error.details[]`, and Gemini may wrap errors in a JSON array) and "Please retry in 10.68s." in its message, Anthropic `retry-after` / `anthropic-ratelimit-*-reset` RFC 3339 when remaining is 0. Returns the wait from now (never negative; capped at 31 days). None when nothing says.
///
/// Any budget whose `remaining` is 0 and whose reset came from a header counts (so Groq's,
/// Cerebras' and SambaNova's reset headers do too); resets this module only assumes (Mistral's
/// minute and month) do not. When several hints disagree the longest wins: the request can
/// only succeed once every exhausted budget has refilled, and the longer of two hints is
/// usually the more precise one (Gemini's message says "21.68s" where `retryDelay` says "21s").
/// GitHub Models' "Please wait 52220 seconds" is read too.
pub fn retry_hint(headers: &HeaderMap, body: &[u8], now_ms: i64) -> Option<Duration> {
    let mut waits = Vec::new();
    header_waits(headers, now_ms, &mut waits);
    body_waits(body, now_ms, &mut waits);
    waits.into_iter().max().map(|wait| wait.min(MAX_WAIT))
}

// ---------------------------------------------------------------------------------------------
// Headers

/// An observed budget, plus whether its reset came from the provider (true) or was assumed
/// from the window's name (false). Only the former may become a retry hint.
struct Seen {
    observed: Observed,
    reset_said: bool,
}

const ANTHROPIC_METRICS: [(&str, Metric); 4] = [
    ("requests", Metric::Requests),
    ("tokens", Metric::Tokens),
    ("input-tokens", Metric::InputTokens),
    ("output-tokens", Metric::OutputTokens),
];

/// Metric spellings in `x-ratelimit-{kind}-{metric}-{window}` (Cerebras, SambaNova `-day`,
/// Mistral `req`).
const NAMED_METRICS: [(&str, Metric); 3] = [
    ("requests", Metric::Requests),
    ("req", Metric::Requests),
    ("tokens", Metric::Tokens),
];

/// Window spellings in `x-ratelimit-{kind}-{metric}-{window}`. `10-second` comes before
/// `second` only for readability: names are matched whole, never by suffix.
const NAMED_WINDOWS: [(&str, Window); 6] = [
    ("10-second", Window::Second),
    ("second", Window::Second),
    ("minute", Window::Minute),
    ("hour", Window::Hour),
    ("day", Window::Day),
    ("month", Window::Month),
];

fn observe_all(headers: &HeaderMap, now_ms: i64) -> Vec<Seen> {
    let mut out = Vec::new();
    // Most answers (local servers, most of a cloud's) carry no rate-limit header at all: one
    // pass over the names saves the couple of dozen lookups below.
    let any = headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-ratelimit") || k.starts_with("anthropic-ratelimit") || k.starts_with("x-tokenlimit")
    });
    if !any {
        return out;
    }
    let mut push = |metric, window, limit, remaining, reset_at_ms, reset_said| {
        out.push(Seen {
            observed: Observed {
                metric,
                window,
                limit,
                remaining,
                reset_at_ms,
            },
            reset_said,
        });
    };

    // Anthropic: per-minute token buckets, resets in RFC 3339.
    for (name, metric) in ANTHROPIC_METRICS {
        let Some(remaining) = count(headers, &format!("anthropic-ratelimit-{name}-remaining")) else {
            continue;
        };
        let limit = count(headers, &format!("anthropic-ratelimit-{name}-limit"));
        let reset = header_str(headers, &format!("anthropic-ratelimit-{name}-reset")).and_then(parse_rfc3339);
        push(metric, Window::Minute, limit, remaining, reset, reset.is_some());
    }

    // OpenRouter (reset in epoch ms) and Together (per second, reset a few seconds from now)
    // share these names. Together also sends `x-tokenlimit-*`, which is what tells them apart.
    if let Some(remaining) = count(headers, "x-ratelimit-remaining") {
        let limit = count(headers, "x-ratelimit-limit");
        let reset = header_str(headers, "x-ratelimit-reset").and_then(|text| parse_reset(text, now_ms));
        let together = headers.contains_key("x-tokenlimit-remaining") || headers.contains_key("x-tokenlimit-limit");
        let window = if together {
            Window::Second
        } else if reset.is_some_and(|at| at.saturating_sub(now_ms) > MINUTE_MS) {
            Window::Day
        } else {
            Window::Unknown
        };
        push(Metric::Requests, window, limit, remaining, reset, reset.is_some());
    }

    // Groq (requests per day, tokens per minute), OpenAI (both per minute) and SambaNova
    // (requests per minute): only the reset value can tell a day from a minute.
    for (name, metric) in [("requests", Metric::Requests), ("tokens", Metric::Tokens)] {
        let Some(remaining) = count(headers, &format!("x-ratelimit-remaining-{name}")) else {
            continue;
        };
        let limit = count(headers, &format!("x-ratelimit-limit-{name}"));
        let reset =
            header_str(headers, &format!("x-ratelimit-reset-{name}")).and_then(|text| parse_reset(text, now_ms));
        let window = match reset {
            None => Window::Unknown,
            Some(at) if at.saturating_sub(now_ms) > MINUTE_MS => Window::Day,
            Some(_) => Window::Minute,
        };
        push(metric, window, limit, remaining, reset, reset.is_some());
    }

    // Cerebras, SambaNova `-requests-day`, Mistral: the window is in the name.
    for (metric_name, metric) in NAMED_METRICS {
        for (window_name, window) in NAMED_WINDOWS {
            let suffix = format!("{metric_name}-{window_name}");
            let Some(remaining) = count(headers, &format!("x-ratelimit-remaining-{suffix}")) else {
                continue;
            };
            let limit = count(headers, &format!("x-ratelimit-limit-{suffix}"));
            let (reset, said) = match header_str(headers, &format!("x-ratelimit-reset-{suffix}")) {
                Some(text) => {
                    let reset = parse_reset(text, now_ms);
                    (reset, reset.is_some())
                }
                // Mistral sends no reset. A fixed or refilling window is full again by its end.
                None => (assumed_reset(window_name, now_ms), false),
            };
            push(metric, window, limit, remaining, reset, said);
        }
    }

    // Together: tokens per second, no reset.
    if let Some(remaining) = count(headers, "x-tokenlimit-remaining") {
        let limit = count(headers, "x-tokenlimit-limit");
        push(Metric::Tokens, Window::Second, limit, remaining, None, false);
    }

    out
}

/// When a window named in a header without a reset header is full again at the latest.
fn assumed_reset(window_name: &str, now_ms: i64) -> Option<i64> {
    match window_name {
        "10-second" => now_ms.checked_add(10_000),
        "second" => now_ms.checked_add(1_000),
        "minute" => now_ms.checked_add(MINUTE_MS),
        // Mistral's monthly cap: a calendar month in UTC is assumed (providers.md §2, U).
        "month" => next_month_start_ms(now_ms),
        _ => None,
    }
}

/// A header's value as trimmed UTF-8; None when absent or not UTF-8.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
}

fn count(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(parse_count)
}

/// A non-negative count. Floats ("14399.0") are floored; integers past `u64::MAX` saturate,
/// since some providers write "unlimited" as a huge number.
fn parse_count(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let value = text.parse::<f64>().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    // `as` saturates at u64::MAX, which is the meaning wanted here.
    Some(value.floor() as u64)
}

/// A reset header in any of the formats seen: epoch ms (> 1e12), epoch s (> 1e9), seconds
/// from now ("33011.38"), a Go duration ("4h17m") or an RFC 3339 time.
fn parse_reset(text: &str, now_ms: i64) -> Option<i64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<f64>() {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        if value > EPOCH_MS_ABOVE {
            return epoch_ms(value);
        }
        if value > EPOCH_S_ABOVE {
            return epoch_ms(value * 1000.0);
        }
    }
    if let Some(duration) = parse_go_duration(text) {
        return add_duration(now_ms, duration);
    }
    parse_rfc3339(text)
}

fn epoch_ms(value: f64) -> Option<i64> {
    // The bound is checked in f64 first so the `as` below never saturates silently.
    (value < MAX_EPOCH_MS as f64).then(|| value.floor() as i64)
}

fn add_duration(now_ms: i64, duration: Duration) -> Option<i64> {
    i64::try_from(duration.as_millis())
        .ok()
        .and_then(|ms| now_ms.checked_add(ms))
}

/// The wait until `at_ms`, zero if it has passed.
fn until(at_ms: i64, now_ms: i64) -> Duration {
    let ms = at_ms.saturating_sub(now_ms).max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn header_waits(headers: &HeaderMap, now_ms: i64, out: &mut Vec<Duration>) {
    if let Some(wait) = header_str(headers, "retry-after").and_then(|text| parse_retry_after(text, now_ms)) {
        out.push(wait);
    }
    for seen in observe_all(headers, now_ms) {
        if seen.reset_said
            && seen.observed.remaining == 0
            && let Some(at) = seen.observed.reset_at_ms
        {
            out.push(until(at, now_ms));
        }
    }
}

/// `Retry-After`: delta-seconds (decimals accepted; some proxies send them) or an HTTP-date.
fn parse_retry_after(text: &str, now_ms: i64) -> Option<Duration> {
    if let Some(nanos) = parse_decimal(text.as_bytes(), NANOS_PER_SEC) {
        return nanos_to_duration(nanos);
    }
    parse_http_date(text).map(|at| until(at, now_ms))
}

// ---------------------------------------------------------------------------------------------
// Bodies

fn body_waits(body: &[u8], now_ms: i64, out: &mut Vec<Duration>) {
    match serde_json::from_slice::<Value>(body) {
        // Gemini's OpenAI-compatible endpoint wraps its error in an array.
        Ok(Value::Array(items)) => {
            for item in &items {
                json_waits(item, now_ms, out);
            }
        }
        Ok(value) => json_waits(&value, now_ms, out),
        Err(_) => out.extend(message_wait(&String::from_utf8_lossy(body))),
    }
}

fn json_waits(value: &Value, now_ms: i64, out: &mut Vec<Duration>) {
    // vLLM's old envelope has the message at the top.
    out.extend(value.get("message").and_then(Value::as_str).and_then(message_wait));
    let Some(error) = value.get("error") else {
        return;
    };
    // Ollama: {"error":"..."}.
    out.extend(error.as_str().and_then(message_wait));
    out.extend(error.get("message").and_then(Value::as_str).and_then(message_wait));
    // OpenRouter copies its rate-limit headers into the body.
    if let Some(Value::Object(copied)) = error.pointer("/metadata/headers") {
        header_waits(&json_headers(copied), now_ms, out);
    }
    // Gemini: google.rpc.RetryInfo. The `@type` is not required: the field name is unambiguous.
    if let Some(Value::Array(details)) = error.get("details") {
        for detail in details {
            out.extend(
                detail
                    .get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(parse_go_duration),
            );
        }
    }
}

/// A JSON object of header names to string (or number) values, as a `HeaderMap`.
fn json_headers(copied: &serde_json::Map<String, Value>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in copied.iter().take(MAX_BODY_HEADERS) {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => continue,
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&text),
        ) else {
            continue;
        };
        if headers.try_insert(name, value).is_err() {
            break;
        }
    }
    headers
}

/// The phrases providers put before a wait in their messages: Groq and OpenAI "Please try again
/// in 11m0.528s.", Gemini "Please retry in 10.68s.", GitHub Models "Please wait 52220 seconds
/// before retrying.".
const WAIT_PHRASES: [&str; 4] = ["try again in ", "retry in ", "retry after ", "wait "];

fn message_wait(message: &str) -> Option<Duration> {
    // ASCII lowercasing keeps every byte offset, so offsets found in `lower` are char
    // boundaries in it.
    let lower = message.to_ascii_lowercase();
    let mut best = None;
    for phrase in WAIT_PHRASES {
        for (at, _) in lower.match_indices(phrase) {
            let wait = lower.get(at + phrase.len()..).and_then(leading_duration);
            best = best.max(wait);
        }
    }
    best
}

/// The duration at the start of `text`: a Go duration ("11m0.528s."), or a number followed by
/// a unit word ("52220 seconds", "2 minutes"); a bare number is seconds.
fn leading_duration(text: &str) -> Option<Duration> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ' || c == 'μ'))
        .unwrap_or(text.len());
    let token = text.get(..end)?.trim_end_matches('.');
    if !token.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_go_duration(token);
    }
    let word: String = text
        .get(end..)?
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let unit = match word.as_str() {
        "ms" | "millisecond" | "milliseconds" => 1_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * NANOS_PER_SEC,
        "h" | "hour" | "hours" => 3_600 * NANOS_PER_SEC,
        _ => NANOS_PER_SEC,
    };
    parse_decimal(token.as_bytes(), unit).and_then(nanos_to_duration)
}

// ---------------------------------------------------------------------------------------------
// Numbers and durations

/// `digits[.digits]` times `unit_nanos`, exactly, in nanoseconds. At least one digit; no sign,
/// no exponent. Fraction digits past the 18th are dropped (they are below a nanosecond for
/// every unit used here).
fn parse_decimal(num: &[u8], unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = match num.iter().position(|&b| b == b'.') {
        Some(dot) => (num.get(..dot)?, num.get(dot + 1..)?),
        None => (num, &[][..]),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    let mut whole_value: u128 = 0;
    for &digit in whole {
        whole_value = whole_value.checked_mul(10)?.checked_add(u128::from(digit - b'0'))?;
    }
    let (mut fraction_value, mut scale): (u128, u128) = (0, 1);
    for &digit in fraction.iter().take(18) {
        fraction_value = fraction_value * 10 + u128::from(digit - b'0');
        scale *= 10;
    }
    // fraction_value < 1e18 and unit_nanos <= 3.6e12: the product fits in u128.
    whole_value
        .checked_mul(unit_nanos)?
        .checked_add(fraction_value.checked_mul(unit_nanos)? / scale)
}

/// Go's `time.ParseDuration` grammar without the sign: one or more `{decimal}{unit}`.
fn go_units(mut rest: &[u8]) -> Option<u128> {
    if rest.is_empty() {
        return None;
    }
    let is_number = |b: &u8| b.is_ascii_digit() || *b == b'.';
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.iter().position(|b| !is_number(b)).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.iter().position(is_number).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        total = total.checked_add(parse_decimal(number, unit_nanos(unit)?)?)?;
        rest = next;
    }
    Some(total)
}

fn unit_nanos(unit: &[u8]) -> Option<u128> {
    Some(match unit {
        b"ns" => 1,
        // "us", "µs" (U+00B5) and "μs" (U+03BC), as Go accepts.
        b"us" | [0xC2, 0xB5, b's'] | [0xCE, 0xBC, b's'] => 1_000,
        b"ms" => 1_000_000,
        b"s" => NANOS_PER_SEC,
        b"m" => 60 * NANOS_PER_SEC,
        b"h" => 3_600 * NANOS_PER_SEC,
        _ => return None,
    })
}

fn nanos_to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

/// "1e3", "1.5E2": float seconds, for what the exact grammar refuses.
fn float_seconds(text: &str) -> Option<Duration> {
    let value = text.parse::<f64>().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(value).ok()
}

// ---------------------------------------------------------------------------------------------
// Dates

/// 00:00:00 UTC on the first day of the month after the one `now_ms` falls in.
fn next_month_start_ms(now_ms: i64) -> Option<i64> {
    let (year, month, _) = civil_from_days(now_ms.div_euclid(MS_PER_DAY));
    let (year, month) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    if !(0..=9_999).contains(&year) {
        return None;
    }
    days_from_civil(year, month, 1).checked_mul(MS_PER_DAY)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Epoch ms of a validated UTC date and time; None when any field is out of range. A leap
/// second (:60) is accepted and lands on the next minute's :00.
fn civil_ms(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    let valid = (0..=9_999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !valid {
        return None;
    }
    let seconds = i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Some(days_from_civil(year, month, day) * MS_PER_DAY + seconds * 1_000)
}

/// All-digit bytes as a number; None for empty, non-digits or more than 9 digits.
fn digits(bytes: Option<&[u8]>) -> Option<u32> {
    let bytes = bytes?;
    if bytes.is_empty() || bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0, |value, &digit| value * 10 + u32::from(digit - b'0')),
    )
}

/// RFC 3339 (`2026-11-28T10:15:30Z`, `…30.250Z`, `…30+02:00`) as epoch ms. Fractions are
/// truncated to the millisecond. `t`/`z` and a space for `T` are accepted, as RFC 3339 allows.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let year = i64::from(digits(b.get(0..4))?);
    let month = digits(b.get(5..7))?;
    let day = digits(b.get(8..10))?;
    let hour = digits(b.get(11..13))?;
    let minute = digits(b.get(14..16))?;
    let second = digits(b.get(17..19))?;
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let len = b.get(start..)?.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for place in 0..3 {
            let digit = if place < len {
                b.get(start + place).map_or(0, |c| u32::from(c - b'0'))
            } else {
                0
            };
            millis = millis * 10 + digit;
        }
        at = start + len;
    }
    let offset_minutes: i64 = match b.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = digits(b.get(at + 1..at + 3))?;
            let colon = usize::from(b.get(at + 3) == Some(&b':'));
            let minutes = digits(b.get(at + 3 + colon..at + 5 + colon))?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += 5 + colon;
            let total = i64::from(hours * 60 + minutes);
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }
    let local = civil_ms(year, month, day, hour, minute, second)?;
    Some(local + i64::from(millis) - offset_minutes * MINUTE_MS)
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 9110 §5.6.7) as epoch ms. The weekday
/// is optional and not checked; the obsolete RFC 850 and asctime forms are not read.
fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_ascii_whitespace().peekable();
    if parts.peek()?.ends_with(',') {
        parts.next();
    }
    let day = digits(parts.next().map(str::as_bytes))?;
    let month_name = parts.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year = digits(parts.next().map(str::as_bytes).filter(|y| y.len() == 4))?;
    let mut clock = parts.next()?.split(':');
    let hour = digits(clock.next().map(str::as_bytes))?;
    let minute = digits(clock.next().map(str::as_bytes))?;
    let second = digits(clock.next().map(str::as_bytes))?;
    let zone = parts.next()?;
    if clock.next().is_some()
        || parts.next().is_some()
        || !(zone.eq_ignore_ascii_case("gmt") || zone.eq_ignore_ascii_case("utc"))
    {
        return None;
    }
    let month = u32::try_from(month + 1).ok()?;
    civil_ms(i64::from(year), month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]

    use super::*;

    /// 2026-11-28T10:15:00Z.
    const NOW: i64 = 1_795_860_900_000;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn obs(metric: Metric, window: Window, limit: Option<u64>, remaining: u64, reset_at_ms: Option<i64>) -> Observed {
        Observed {
            metric,
            window,
            limit,
            remaining,
            reset_at_ms,
        }
    }

    fn ms(ms: u64) -> Option<Duration> {
        Some(Duration::from_millis(ms))
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("2m59.56s"), ms(179_560));
        assert_eq!(d("7.66s"), ms(7_660));
        assert_eq!(d("940ms"), ms(940));
        assert_eq!(d("12ms"), ms(12));
        assert_eq!(d("6m0s"), ms(360_000));
        assert_eq!(d("1h2m3s"), ms(3_723_000));
        assert_eq!(d("4h17m"), ms(15_420_000));
        assert_eq!(d("0s"), ms(0));
        assert_eq!(d("0"), ms(0));
        assert_eq!(d("11m0.528s"), ms(660_528));
        assert_eq!(d("33011.38"), ms(33_011_380));
        assert_eq!(d("33011.382867097855"), Some(Duration::new(33_011, 382_867_097)));
        assert_eq!(d(" 1.5h "), ms(5_400_000));
        assert_eq!(d("+5s"), ms(5_000));
        assert_eq!(d(".5s"), ms(500));
        assert_eq!(d("1500us"), Some(Duration::from_micros(1_500)));
        assert_eq!(d("3µs"), Some(Duration::from_micros(3)));
        assert_eq!(d("3μs"), Some(Duration::from_micros(3)));
        assert_eq!(d("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(d("1e3"), ms(1_000_000));
        assert_eq!(d("5"), ms(5_000));
        for bad in [
            "", " ", "-5s", "-1", "-0s", "s", "5x", "5m3", "1.2.3s", ".s", "inf", "NaN", "-inf", "1e400", "5 s", "5S",
            "m5s",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
        // Overflow is refused, not wrapped.
        assert_eq!(d("99999999999999999999999999999999999999999h"), None);
        assert_eq!(d("18446744073709551616s"), None);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("2026-11-28T10:15:30Z"), Some(1_795_860_930_000));
        assert_eq!(parse_rfc3339("2026-11-28T10:15:30.250Z"), Some(1_795_860_930_250));
        assert_eq!(parse_rfc3339("2026-11-28T10:15:30.250999999Z"), Some(1_795_860_930_250));
        assert_eq!(parse_rfc3339("2026-11-28T10:15:30.5Z"), Some(1_795_860_930_500));
        assert_eq!(parse_rfc3339("2026-11-28T10:15:30+00:00"), Some(1_795_860_930_000));
        assert_eq!(parse_rfc3339("2026-11-28T12:15:30+02:00"), Some(1_795_860_930_000));
        assert_eq!(parse_rfc3339("2026-11-28T05:15:30.999-05:00"), Some(1_795_860_930_999));
        assert_eq!(parse_rfc3339("2026-11-28t10:15:30z"), Some(1_795_860_930_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000));
        assert_eq!(parse_rfc3339("2028-02-29T23:59:59Z"), Some(1_835_481_599_000));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Some(253_402_300_799_000));
        for bad in [
            "",
            "2026-11-28",
            "2026-11-28T10:15:30",
            "2026-11-28T10:15:30.Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T10:15:30+24:00",
            "2026-11-28T10:15:30Zjunk",
            "2026-11-28T10:15:30+02",
            "+026-11-28T10:15:30Z",
            "2026-11-28T10:15:3Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn month_boundaries() {
        // 2026-12-15T12:00:00Z -> 2027-01-01T00:00:00Z.
        assert_eq!(next_month_start_ms(1_797_336_000_000), Some(1_798_761_600_000));
        // The last millisecond of December still belongs to December.
        assert_eq!(next_month_start_ms(1_798_761_599_999), Some(1_798_761_600_000));
        // The first millisecond of January moves on to February (2027-02-01).
        assert_eq!(
            next_month_start_ms(1_798_761_600_000),
            parse_rfc3339("2027-02-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2027-02-01T00:00:00Z"),
            Some(1_798_761_600_000 + 31 * MS_PER_DAY)
        );
        // Leap February: 2028-02-10 -> 2028-03-01.
        assert_eq!(next_month_start_ms(1_833_753_600_000), Some(1_835_481_600_000));
        // November 2026 -> 2026-12-01.
        assert_eq!(next_month_start_ms(NOW), Some(1_796_083_200_000));
        // Before the epoch: 1969-12-31T23:59:59Z -> 1970-01-01.
        assert_eq!(next_month_start_ms(-1_000), Some(0));
        // Far outside the calendar: refused, no overflow.
        assert_eq!(next_month_start_ms(i64::MAX), None);
        assert_eq!(next_month_start_ms(i64::MIN), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480_000)
        );
        assert_eq!(parse_http_date("21 Oct 2015 07:28:00 GMT"), Some(1_445_412_480_000));
        assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 PST"), None);
        assert_eq!(parse_http_date("Wed, 31 Feb 2015 07:28:00 GMT"), None);
        assert_eq!(parse_http_date("Wed, 21 Oct 15 07:28:00 GMT"), None);
        assert_eq!(parse_http_date("Wednesday, 21-Oct-15 07:28:00 GMT"), None);
    }

    #[test]
    fn groq_headers_and_body() {
        // llama-3.1-8b-instant: 14.4K RPD, 6K TPM (providers.md §2); resets from §3.
        let h = headers(&[
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-tokens", "5997"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Day, Some(14_400), 14_370, Some(NOW + 179_560)),
                obs(Metric::Tokens, Window::Minute, Some(6_000), 5_997, Some(NOW + 7_660)),
            ]
        );
        // Nothing exhausted, nothing in the body: no hint.
        assert_eq!(retry_hint(&h, b"", NOW), None);

        // The TPD 429 of §4: the wait is in the message only.
        let body = r#"{"error":{"message":"Rate limit reached for model `X` in organization `org_…` service tier `on_demand` on tokens per day (TPD): Limit 200000, Used 197494, Requested 4035. Please try again in 11m0.528s. …","type":"tokens","code":"rate_limit_exceeded"}}"#;
        assert_eq!(retry_hint(&HeaderMap::new(), body.as_bytes(), NOW), ms(660_528));
        // With Groq's `retry-after` (whole seconds, rounded up) the longer, 661 s, wins.
        let h = headers(&[("retry-after", "661")]);
        assert_eq!(retry_hint(&h, body.as_bytes(), NOW), ms(661_000));
        // An exhausted RPD budget is a hint by itself (§6: remaining-requests 0).
        let h = headers(&[
            ("x-ratelimit-limit-requests", "1000"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
        ]);
        assert_eq!(retry_hint(&h, b"", NOW), ms(179_560));
    }

    #[test]
    fn openai_headers() {
        // Same names as Groq; a requests reset within a minute means a per-minute budget.
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "149984"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Minute, Some(60), 59, Some(NOW + 12)),
                // No reset header: the window cannot be inferred.
                obs(Metric::Tokens, Window::Unknown, Some(150_000), 149_984, None),
            ]
        );
    }

    #[test]
    fn cerebras_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-requests-day", "14400"),
            ("x-ratelimit-remaining-requests-day", "14399.0"),
            ("x-ratelimit-reset-requests-day", "33011.382867097855"),
            ("x-ratelimit-limit-tokens-minute", "60000"),
            ("x-ratelimit-remaining-tokens-minute", "0"),
            ("x-ratelimit-reset-tokens-minute", "11.382867097854614"),
            ("x-ratelimit-limit-tokens-hour", "1000000"),
            ("x-ratelimit-remaining-tokens-hour", "999000"),
            ("x-ratelimit-reset-tokens-hour", "3011.5"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(
                    Metric::Requests,
                    Window::Day,
                    Some(14_400),
                    14_399,
                    Some(NOW + 33_011_382)
                ),
                obs(Metric::Tokens, Window::Minute, Some(60_000), 0, Some(NOW + 11_382)),
                obs(
                    Metric::Tokens,
                    Window::Hour,
                    Some(1_000_000),
                    999_000,
                    Some(NOW + 3_011_500)
                ),
            ]
        );
        // The exhausted minute bucket is the hint; the body names no wait.
        let body = br#"{"message":"Tokens per day limit exceeded - too many tokens processed.","type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}"#;
        assert_eq!(retry_hint(&h, body, NOW), ms(11_382));
    }

    #[test]
    fn sambanova_headers() {
        // Per-minute requests with a seconds reset, per-day requests with a Go duration.
        let h = headers(&[
            ("x-ratelimit-limit-requests", "20"),
            ("x-ratelimit-remaining-requests", "19"),
            ("x-ratelimit-reset-requests", "42"),
            ("x-ratelimit-limit-requests-day", "20"),
            ("x-ratelimit-remaining-requests-day", "0"),
            ("x-ratelimit-reset-requests-day", "4h17m"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Minute, Some(20), 19, Some(NOW + 42_000)),
                obs(Metric::Requests, Window::Day, Some(20), 0, Some(NOW + 15_420_000)),
            ]
        );
        assert_eq!(retry_hint(&h, b"", NOW), ms(15_420_000));

        // The same day budget with its reset as epoch seconds, then epoch ms (2026-11-29).
        for reset in ["1795910400", "1795910400000", "1795910400.5"] {
            let h = headers(&[
                ("x-ratelimit-remaining-requests-day", "3"),
                ("x-ratelimit-reset-requests-day", reset),
            ]);
            let expected = if reset.ends_with(".5") {
                1_795_910_400_500
            } else {
                1_795_910_400_000
            };
            assert_eq!(
                observe(&h, NOW),
                vec![obs(Metric::Requests, Window::Day, None, 3, Some(expected))],
                "{reset}"
            );
        }
    }

    #[test]
    fn openrouter_headers_and_body() {
        let now = 1_788_800_000_000; // 25 600 s before 2026-09-08T00:00:00Z.
        let h = headers(&[
            ("x-ratelimit-limit", "50"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1788825600000"),
        ]);
        assert_eq!(
            observe(&h, now),
            vec![obs(Metric::Requests, Window::Day, Some(50), 0, Some(1_788_825_600_000))]
        );
        assert_eq!(retry_hint(&h, b"", now), ms(25_600_000));

        // The body alone carries the same headers (§4).
        let body = br#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1788825600000"}}}}"#;
        assert_eq!(retry_hint(&HeaderMap::new(), body, now), ms(25_600_000));
        // A reset that has passed is "now", never negative.
        assert_eq!(
            retry_hint(&HeaderMap::new(), body, 1_788_825_700_000),
            Some(Duration::ZERO)
        );
        // Remaining above zero: the reset says nothing about waiting.
        let body = br#"{"error":{"message":"x","code":429,"metadata":{"headers":{"X-RateLimit-Remaining":"3","X-RateLimit-Reset":"1788825600000"}}}}"#;
        assert_eq!(retry_hint(&HeaderMap::new(), body, now), None);
        // A reset within the minute does not claim a daily window.
        let h = headers(&[
            ("x-ratelimit-limit", "20"),
            ("x-ratelimit-remaining", "4"),
            ("x-ratelimit-reset", "1788800030000"),
        ]);
        assert_eq!(
            observe(&h, now),
            vec![obs(
                Metric::Requests,
                Window::Unknown,
                Some(20),
                4,
                Some(1_788_800_030_000)
            )]
        );
        // `Retry-After` on a 503.
        let h = headers(&[("Retry-After", "5")]);
        assert_eq!(retry_hint(&h, b"", now), ms(5_000));
    }

    #[test]
    fn together_headers() {
        let h = headers(&[
            ("x-ratelimit-limit", "10"),
            ("x-ratelimit-remaining", "9"),
            ("x-ratelimit-reset", "1"),
            ("x-tokenlimit-limit", "2000"),
            ("x-tokenlimit-remaining", "1500"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Second, Some(10), 9, Some(NOW + 1_000)),
                obs(Metric::Tokens, Window::Second, Some(2_000), 1_500, None),
            ]
        );
    }

    #[test]
    fn mistral_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-req-minute", "60"),
            ("x-ratelimit-remaining-req-minute", "59"),
            ("x-ratelimit-limit-tokens-minute", "500000"),
            ("x-ratelimit-remaining-tokens-minute", "499000"),
            ("x-ratelimit-limit-tokens-month", "1000000000"),
            ("x-ratelimit-remaining-tokens-month", "0"),
            ("x-ratelimit-tokens-query-cost", "1000"),
            ("x-ratelimit-limit-req-10-second", "10"),
            ("x-ratelimit-remaining-req-10-second", "9"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Second, Some(10), 9, Some(NOW + 10_000)),
                obs(Metric::Requests, Window::Minute, Some(60), 59, Some(NOW + 60_000)),
                obs(
                    Metric::Tokens,
                    Window::Minute,
                    Some(500_000),
                    499_000,
                    Some(NOW + 60_000)
                ),
                // 2026-12-01T00:00:00Z: the calendar month is an assumption (§2, U).
                obs(
                    Metric::Tokens,
                    Window::Month,
                    Some(1_000_000_000),
                    0,
                    Some(1_796_083_200_000)
                ),
            ]
        );
        // Assumed resets are not hints; only Mistral's own retry-after is.
        assert_eq!(retry_hint(&h, b"", NOW), None);
        let mut h = h;
        h.insert("retry-after", HeaderValue::from_static("2"));
        let body = br#"{"object":"error","type":"rate_limited","code":"1300"}"#;
        assert_eq!(retry_hint(&h, body, NOW), ms(2_000));
    }

    #[test]
    fn anthropic_headers() {
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-11-28T10:15:01Z"),
            ("anthropic-ratelimit-tokens-limit", "40000"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2026-11-28T10:15:30.250Z"),
            ("anthropic-ratelimit-input-tokens-limit", "30000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            ("anthropic-ratelimit-input-tokens-reset", "2026-11-28T12:15:30+02:00"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "8000"),
            ("anthropic-ratelimit-output-tokens-reset", "not a date"),
        ]);
        assert_eq!(
            observe(&h, NOW),
            vec![
                obs(Metric::Requests, Window::Minute, Some(50), 49, Some(NOW + 1_000)),
                obs(Metric::Tokens, Window::Minute, Some(40_000), 0, Some(NOW + 30_250)),
                obs(Metric::InputTokens, Window::Minute, Some(30_000), 0, Some(NOW + 30_000)),
                obs(Metric::OutputTokens, Window::Minute, Some(8_000), 8_000, None),
            ]
        );
        // The latest exhausted reset (tokens, 30.25 s) beats the requests reset, which has room.
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        assert_eq!(retry_hint(&h, body, NOW), ms(30_250));
        // A longer retry-after wins.
        let mut h = h;
        h.insert("retry-after", HeaderValue::from_static("45"));
        assert_eq!(retry_hint(&h, body, NOW), ms(45_000));
    }

    #[test]
    fn gemini_bodies() {
        // The compat endpoint's array envelope with RetryInfo (§1, §3).
        let retry_info = br#"[{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}]"#;
        assert_eq!(retry_hint(&HeaderMap::new(), retry_info, NOW), ms(22_000));
        // The message form (§4) without RetryInfo.
        let message = br#"{"error":{"code":429,"message":"Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 5. Please retry in 10.68s.","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(retry_hint(&HeaderMap::new(), message, NOW), ms(10_680));
        // Both: the longer one.
        let both = br#"[{"error":{"code":429,"message":"Please retry in 21.68s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"21s"}]}}]"#;
        assert_eq!(retry_hint(&HeaderMap::new(), both, NOW), ms(21_680));
        // A Gemini 503 says nothing about when.
        let unavailable = br#"[{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}]"#;
        assert_eq!(retry_hint(&HeaderMap::new(), unavailable, NOW), None);
    }

    #[test]
    fn other_hints() {
        // GitHub Models (§4).
        let body = br#"{"error":{"code":"RateLimitReached","message":"Rate limit of 50 per 86400s exceeded for UserByModelByDay. Please wait 52220 seconds before retrying."}}"#;
        assert_eq!(retry_hint(&HeaderMap::new(), body, NOW), ms(52_220_000));
        // Plain text and unit words.
        assert_eq!(
            retry_hint(&HeaderMap::new(), b"Too many requests, try again in 2 minutes", NOW),
            ms(120_000)
        );
        // Retry-After as an HTTP-date, two minutes ahead, and one in the past.
        let now = 1_445_412_480_000 - 120_000;
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_hint(&h, b"", now), ms(120_000));
        assert_eq!(retry_hint(&h, b"", 1_445_412_480_000 + 5_000), Some(Duration::ZERO));
        // Decimal seconds.
        let h = headers(&[("retry-after", "1.5")]);
        assert_eq!(retry_hint(&h, b"", NOW), ms(1_500));
        // Capped at 31 days.
        let h = headers(&[("retry-after", "99999999")]);
        assert_eq!(retry_hint(&h, b"", NOW), Some(MAX_WAIT));
        // Nothing says.
        assert_eq!(retry_hint(&HeaderMap::new(), b"", NOW), None);
        assert_eq!(retry_hint(&HeaderMap::new(), br#"{"error":"server busy"}"#, NOW), None);
        let h = headers(&[("retry-after", "-5")]);
        assert_eq!(retry_hint(&h, b"", NOW), None);
    }

    #[test]
    fn remaining_rules() {
        // Only a non-negative number makes a family; floats are floored; huge ones saturate.
        for (value, expected) in [
            ("0", Some(0)),
            ("14399.0", Some(14_399)),
            ("14399.9", Some(14_399)),
            (" 7 ", Some(7)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("-1", None),
            ("-0.5", None),
            ("", None),
            ("many", None),
            ("NaN", None),
            ("inf", None),
        ] {
            let h = headers(&[("x-ratelimit-remaining-tokens", value)]);
            let got = observe(&h, NOW).first().map(|o| o.remaining);
            assert_eq!(got, expected, "{value:?}");
        }
        // Non-UTF-8 values are absent, not a crash.
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining",
            HeaderValue::from_bytes(&[0xff, 0xfe, b'1']).unwrap(),
        );
        assert_eq!(observe(&h, NOW), vec![]);
        // Limit without remaining is not reported.
        let h = headers(&[("x-ratelimit-limit-requests", "30")]);
        assert_eq!(observe(&h, NOW), vec![]);
    }

    /// A tiny deterministic generator: no dependency, same cases on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, alphabet: &[&str]) -> String {
            let len = self.next() % 24;
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    #[test]
    fn garbage_never_panics() {
        let alphabet = [
            "0",
            "1",
            "9",
            ".",
            ":",
            "-",
            "+",
            "T",
            "Z",
            " ",
            "h",
            "m",
            "s",
            "ms",
            "µ",
            "μs",
            "n",
            "e",
            ",",
            "GMT",
            "é",
            "\u{0}",
            "99999999999999999999",
            "E",
            "inf",
            "NaN",
        ];
        let names = [
            "retry-after",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-remaining-tokens-month",
            "x-ratelimit-reset-tokens-minute",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ];
        let nows = [NOW, 0, -1, i64::MIN, i64::MAX, MAX_EPOCH_MS];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let text = rng.string(&alphabet);
            let now = nows[round % nows.len()];
            if let Some(d) = parse_go_duration(&text) {
                // Whatever parses is a real, finite duration.
                assert!(d.as_secs_f64().is_finite(), "{text:?}");
            }
            let _ = parse_rfc3339(&text);
            let _ = parse_http_date(&text);
            let _ = parse_reset(&text, now);
            let mut h = HeaderMap::new();
            // from_bytes, not from_str: non-ASCII (and so non-UTF-8-checked) bytes get through.
            for name in names {
                if let Ok(value) = HeaderValue::from_bytes(text.as_bytes()) {
                    h.insert(name, value);
                }
            }
            h.insert("x-ratelimit-remaining-req-10-second", HeaderValue::from_static("0"));
            for seen in observe(&h, now) {
                assert!(seen.limit.is_none());
            }
            let body = format!(
                r#"[{{"error":{{"message":"try again in {text}","details":[{{"retryDelay":"{text}"}}],"metadata":{{"headers":{{"X-RateLimit-Remaining":"0","X-RateLimit-Reset":"{text}"}}}}}}}}]"#
            );
            for bytes in [body.as_bytes(), text.as_bytes()] {
                if let Some(wait) = retry_hint(&h, bytes, now) {
                    assert!(wait <= MAX_WAIT, "{text:?}");
                }
            }
        }
        // Hand-picked hostile inputs.
        let deep = "[".repeat(10_000);
        for body in [
            &b"\xff\xfe\x00"[..],
            deep.as_bytes(),
            br#"{"error":{"metadata":{"headers":{"bad name":"1","X-RateLimit-Reset":"\n"}}}}"#,
            br#"{"error":{"details":"not an array","metadata":{"headers":[]}}}"#,
            br#"{"error":{"message":"try again in 99999999999999999999999999999h"}}"#,
            br#"{"error":{"message":"retry in "}}"#,
            "wait µµµ try again in μs retry after .".as_bytes(),
        ] {
            assert!(retry_hint(&HeaderMap::new(), body, NOW).is_none_or(|w| w <= MAX_WAIT));
        }
        for bad in [
            "",
            "-",
            "+",
            "µ",
            "1µ",
            "9999-99-99T99:99:99Z",
            "0000-01-01T00:00:00-23:59",
        ] {
            let _ = parse_go_duration(bad);
            let _ = parse_rfc3339(bad);
            let _ = parse_http_date(bad);
        }
    }
}
