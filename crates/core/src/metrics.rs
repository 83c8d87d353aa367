//! Counters and histograms for `GET /metrics`, in Prometheus' text format.
//!
//! Updated once per finished request (one short lock), and rendered on scrape together with
//! gauges read from the live state (lane health, quota left). Labels are route, lane, outcome
//! and status: all bounded by the config and the closed set of outcomes, never by what a
//! client sends (the requested `model` is not a label).

use crate::gateway::LaneStatus;
use crate::ledger::{self, RequestRecord};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency buckets: from a cached local answer to a long
/// generation.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, lane, status)
    requests: BTreeMap<(String, String, String), u64>,
    /// (lane, outcome)
    attempts: BTreeMap<(String, String), u64>,
    /// (route, failed lane, reason)
    fallbacks: BTreeMap<(String, String, String), u64>,
    /// (lane, "input" | "output")
    tokens: BTreeMap<(String, &'static str), u64>,
    cost: BTreeMap<String, f64>,
    ttft: BTreeMap<String, Histogram>,
    duration: BTreeMap<String, Histogram>,
    /// (target kind, result)
    notifications: BTreeMap<(String, &'static str), u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

const NONE: &str = "(none)";

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // Plain counters: a poisoned lock still holds usable numbers.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Counts one finished request and its attempts.
    pub fn request(&self, r: &RequestRecord) {
        let route = r.route.as_deref().unwrap_or(NONE);
        let lane = r.lane.as_deref().unwrap_or(NONE);
        let fallback = ledger::fallback_from(&r.attempts);
        self.with(|m| {
            bump(&mut m.requests, (route, lane, r.status.as_str()));
            for a in &r.attempts {
                bump2(&mut m.attempts, (a.lane.as_str(), a.outcome.as_str()));
            }
            if let Some(f) = fallback {
                bump(&mut m.fallbacks, (route, f.lane.as_str(), f.outcome.as_str()));
            }
            if r.lane.is_some() {
                if let Some(t) = r.tokens_in {
                    *m.tokens.entry((lane.to_owned(), "input")).or_default() += t;
                }
                if let Some(t) = r.tokens_out {
                    *m.tokens.entry((lane.to_owned(), "output")).or_default() += t;
                }
                if let Some(c) = r.cost_usd.filter(|c| *c > 0.0) {
                    *m.cost.entry(lane.to_owned()).or_default() += c;
                }
                if let Some(t) = r.ttft_ms {
                    observe(&mut m.ttft, lane, t / 1000.0);
                }
                observe(&mut m.duration, lane, r.duration_ms / 1000.0);
            }
        });
    }

    /// Counts a notification: `sent`, `failed`, `suppressed` (debounced) or `dropped`.
    pub fn notification(&self, kind: &str, result: &'static str) {
        self.with(|m| {
            let key = (kind.to_owned(), result);
            *m.notifications.entry(key).or_default() += 1;
        });
    }

    /// The whole exposition: counters and histograms so far, and gauges from `lanes`.
    pub fn render(&self, lanes: &[LaneStatus], uptime_secs: f64) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        header(o, "switchyard_build_info", "gauge", "The running version.");
        let _ = writeln!(
            o,
            "switchyard_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            o,
            "switchyard_uptime_seconds",
            "gauge",
            "Seconds since the gateway started.",
        );
        let _ = writeln!(o, "switchyard_uptime_seconds {uptime_secs:.3}");

        self.with(|m| {
            header(
                o,
                "switchyard_requests_total",
                "counter",
                "Finished requests by route, answering lane and status (ok, error, client_disconnected).",
            );
            for ((route, lane, status), n) in &m.requests {
                let _ = writeln!(
                    o,
                    "switchyard_requests_total{{route=\"{}\",lane=\"{}\",status=\"{}\"}} {n}",
                    esc(route),
                    esc(lane),
                    esc(status)
                );
            }
            header(
                o,
                "switchyard_attempts_total",
                "counter",
                "Lane attempts by outcome: ok, an error class, or why the lane was skipped.",
            );
            for ((lane, outcome), n) in &m.attempts {
                let _ = writeln!(
                    o,
                    "switchyard_attempts_total{{lane=\"{}\",outcome=\"{}\"}} {n}",
                    esc(lane),
                    esc(outcome)
                );
            }
            header(
                o,
                "switchyard_fallbacks_total",
                "counter",
                "Requests that went past a lane that failed or was unavailable, by that lane and the reason.",
            );
            for ((route, lane, reason), n) in &m.fallbacks {
                let _ = writeln!(
                    o,
                    "switchyard_fallbacks_total{{route=\"{}\",lane=\"{}\",reason=\"{}\"}} {n}",
                    esc(route),
                    esc(lane),
                    esc(reason)
                );
            }
            header(
                o,
                "switchyard_tokens_total",
                "counter",
                "Tokens by answering lane and direction (input, output), as the upstream reported them.",
            );
            for ((lane, dir), n) in &m.tokens {
                let _ = writeln!(
                    o,
                    "switchyard_tokens_total{{lane=\"{}\",direction=\"{dir}\"}} {n}",
                    esc(lane)
                );
            }
            header(
                o,
                "switchyard_cost_usd_total",
                "counter",
                "US dollars spent by lane (paid lanes with a price; free tiers cost nothing).",
            );
            for (lane, c) in &m.cost {
                let _ = writeln!(o, "switchyard_cost_usd_total{{lane=\"{}\"}} {c}", esc(lane));
            }
            histograms(
                o,
                "switchyard_time_to_first_token_seconds",
                "From the request's arrival to the answer's first byte, by answering lane.",
                &m.ttft,
            );
            histograms(
                o,
                "switchyard_request_duration_seconds",
                "From the request's arrival to the end of the answer, by answering lane.",
                &m.duration,
            );
            header(
                o,
                "switchyard_notifications_total",
                "counter",
                "Notifications by target kind and result (sent, failed, suppressed by debouncing, dropped).",
            );
            for ((kind, result), n) in &m.notifications {
                let _ = writeln!(
                    o,
                    "switchyard_notifications_total{{kind=\"{}\",result=\"{result}\"}} {n}",
                    esc(kind)
                );
            }
        });

        header(
            o,
            "switchyard_lane_up",
            "gauge",
            "1 when the lane can be tried now (not down, disabled or out of quota).",
        );
        for l in lanes {
            let _ = writeln!(
                o,
                "switchyard_lane_up{{lane=\"{}\",provider=\"{}\",local=\"{}\"}} {}",
                esc(&l.lane),
                esc(&l.provider),
                l.local,
                u8::from(l.state == "up")
            );
        }
        header(
            o,
            "switchyard_breaker_open",
            "gauge",
            "1 while the lane's circuit breaker is open (failing; probed in the background).",
        );
        for l in lanes {
            let _ = writeln!(
                o,
                "switchyard_breaker_open{{lane=\"{}\"}} {}",
                esc(&l.lane),
                u8::from(l.state == "down")
            );
        }
        header(
            o,
            "switchyard_quota_remaining",
            "gauge",
            "What is left of each quota window of a lane's budgets (requests or tokens).",
        );
        let mut limits = String::new();
        for l in lanes {
            for b in &l.budgets {
                for w in &b.windows {
                    let labels = format!(
                        "lane=\"{}\",budget=\"{}\",window=\"{}\"",
                        esc(&l.lane),
                        esc(&b.key),
                        esc(w.name)
                    );
                    let _ = writeln!(o, "switchyard_quota_remaining{{{labels}}} {}", w.left);
                    let _ = writeln!(limits, "switchyard_quota_limit{{{labels}}} {}", w.limit);
                }
            }
        }
        header(o, "switchyard_quota_limit", "gauge", "The size of each quota window.");
        o.push_str(&limits);
        out
    }
}

fn bump(map: &mut BTreeMap<(String, String, String), u64>, (a, b, c): (&str, &str, &str)) {
    // Look up by borrowed parts first: a key is only allocated the first time it is seen.
    if let Some(n) = map
        .iter_mut()
        .find(|((x, y, z), _)| x == a && y == b && z == c)
        .map(|(_, n)| n)
    {
        *n += 1;
    } else {
        map.insert((a.to_owned(), b.to_owned(), c.to_owned()), 1);
    }
}

fn bump2(map: &mut BTreeMap<(String, String), u64>, (a, b): (&str, &str)) {
    if let Some(n) = map.iter_mut().find(|((x, y), _)| x == a && y == b).map(|(_, n)| n) {
        *n += 1;
    } else {
        map.insert((a.to_owned(), b.to_owned()), 1);
    }
}

fn observe(map: &mut BTreeMap<String, Histogram>, lane: &str, v: f64) {
    if let Some(h) = map.get_mut(lane) {
        h.observe(v);
    } else {
        let mut h = Histogram::default();
        h.observe(v);
        map.insert(lane.to_owned(), h);
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histograms(o: &mut String, name: &str, help: &str, map: &BTreeMap<String, Histogram>) {
    header(o, name, "histogram", help);
    for (lane, h) in map {
        let lane = esc(lane);
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let _ = writeln!(o, "{name}_bucket{{lane=\"{lane}\",le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(o, "{name}_bucket{{lane=\"{lane}\",le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(o, "{name}_sum{{lane=\"{lane}\"}} {}", h.sum);
        let _ = writeln!(o, "{name}_count{{lane=\"{lane}\"}} {}", h.count);
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '"', '\n']) {
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AttemptRecord;

    fn attempt(lane: &str, outcome: &str) -> AttemptRecord {
        AttemptRecord {
            lane: lane.into(),
            provider: "p".into(),
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_fallback_is_counted_with_its_reason_and_latency_in_buckets() {
        let m = Metrics::new();
        let rec = RequestRecord {
            route: Some("default".into()),
            lane: Some("cloud".into()),
            status: "ok".into(),
            tokens_in: Some(12),
            tokens_out: Some(30),
            ttft_ms: Some(40.0),
            duration_ms: 300.0,
            attempts: vec![
                attempt("premium", "premium_not_allowed"),
                attempt("box", "connect"),
                attempt("cloud", "ok"),
            ],
            ..Default::default()
        };
        m.request(&rec);
        m.request(&rec);
        let text = m.render(&[], 1.0);
        assert!(text.contains("switchyard_requests_total{route=\"default\",lane=\"cloud\",status=\"ok\"} 2\n"));
        assert!(text.contains("switchyard_attempts_total{lane=\"box\",outcome=\"connect\"} 2\n"));
        // Passing over a premium lane is the rule, not a fallback.
        assert!(text.contains("switchyard_fallbacks_total{route=\"default\",lane=\"box\",reason=\"connect\"} 2\n"));
        assert!(!text.contains("lane=\"premium\",reason"));
        assert!(text.contains("switchyard_tokens_total{lane=\"cloud\",direction=\"output\"} 60\n"));
        // 40 ms falls in the 0.05 bucket and every one above it, not in 0.025.
        assert!(text.contains("switchyard_time_to_first_token_seconds_bucket{lane=\"cloud\",le=\"0.025\"} 0\n"));
        assert!(text.contains("switchyard_time_to_first_token_seconds_bucket{lane=\"cloud\",le=\"0.05\"} 2\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{lane=\"cloud\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("switchyard_request_duration_seconds_sum{lane=\"cloud\"} 0.6\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(esc("plain"), "plain");
    }
}
