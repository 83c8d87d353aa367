//! Where the gateway reports what happened: every finished request (for `/metrics` and the
//! `fallback` and `quota_low` notifications), lanes going down and up, budgets spent.
//! Everything here is cheap and returns at once; sending happens in [`crate::notify`].

use crate::config::{Config, EventKind, NotifyConfig};
use crate::gateway::shorten;
use crate::health::Transition;
use crate::ledger::{self, RequestRecord};
use crate::metrics::Metrics;
use crate::notify::{Event, Notifier};
use crate::quota::Quota;
use secrecy::ExposeSecret;
use std::sync::Arc;

pub struct Observer {
    pub metrics: Arc<Metrics>,
    notifier: Option<Notifier>,
    /// The `notify:` targets the notifier was started for.
    targets: Vec<NotifyConfig>,
    quota: Arc<Quota>,
}

impl Observer {
    /// Starts the notifier when `notify:` has targets (inside a tokio runtime). After a config
    /// reload, `prev` hands over its counters, and its notifier when the targets did not change
    /// (so its debounce windows go on: a save does not announce every ongoing trouble again).
    pub fn new(config: &Config, quota: Arc<Quota>, prev: Option<&Observer>) -> Observer {
        let metrics = prev.map(|p| p.metrics.clone()).unwrap_or_default();
        let notifier = match prev {
            Some(p) if same_targets(&p.targets, &config.notify) => p.notifier.clone(),
            _ => Notifier::start(config.notify.clone(), metrics.clone()),
        };
        Observer {
            metrics,
            notifier,
            targets: config.notify.clone(),
            quota,
        }
    }

    /// Sends what notifications are held back and waits (at most `within`) for deliveries.
    pub async fn flush(&self, within: std::time::Duration) {
        if let Some(n) = &self.notifier {
            n.flush(within).await;
        }
    }

    /// A request is over (answered, refused, failed or cut off): called once per request,
    /// just before its ledger record is written.
    pub fn finished(&self, rec: &RequestRecord) {
        self.metrics.request(rec);
        let Some(n) = &self.notifier else { return };
        if n.wants(EventKind::Fallback)
            && let Some(f) = ledger::fallback_from(&rec.attempts)
        {
            let reason = match &f.detail {
                Some(d) => format!("{}: {}", f.outcome, shorten(d, 200)),
                None => f.outcome.clone(),
            };
            let mut ev = Event::new(EventKind::Fallback, &f.lane, reason);
            ev.route.clone_from(&rec.route);
            ev.answered_by.clone_from(&rec.lane);
            n.send(ev);
        }
        if let (Some(threshold), Some(lane)) = (n.quota_low_threshold(), &rec.lane) {
            self.check_low(n, lane, threshold);
        }
    }

    /// After a lane answered: is one of its budgets down to the threshold? Sends the emptiest
    /// window, once per request (the notifier debounces).
    fn check_low(&self, n: &Notifier, lane: &str, threshold: f64) {
        let mut lowest: Option<(f64, String)> = None;
        for b in self.quota.status(lane) {
            for w in &b.windows {
                if w.limit == 0 {
                    continue;
                }
                let left = w.left as f64 / w.limit as f64;
                if left <= threshold && lowest.as_ref().is_none_or(|(l, _)| left < *l) {
                    let resets = w
                        .resets_at_ms
                        .map(|t| format!(", resets {}", crate::clock::format_utc(t)))
                        .unwrap_or_default();
                    lowest = Some((
                        left,
                        format!(
                            "budget `{}` has {} of {} {} left ({:.0}%{resets})",
                            b.key,
                            w.left,
                            w.limit,
                            window_words(w.name),
                            left * 100.0
                        ),
                    ));
                }
            }
        }
        if let Some((left, reason)) = lowest {
            let mut ev = Event::new(EventKind::QuotaLow, lane, reason);
            ev.left = Some(left);
            n.send(ev);
        }
    }

    /// A lane's breaker opened or closed.
    pub fn transition(&self, lane: &str, t: Transition, why: &str) {
        match t {
            Transition::Down => tracing::warn!(
                lane,
                "lane is down: its breaker is open ({why}); probing it in the background"
            ),
            Transition::Up => tracing::info!(lane, "lane is up again: {why}"),
        }
        if let Some(n) = &self.notifier {
            let kind = match t {
                Transition::Down => EventKind::LaneDown,
                Transition::Up => EventKind::LaneUp,
            };
            n.send(Event::new(kind, lane, why.to_owned()));
        }
    }

    /// A lane's budget is spent (a provider said so, or the local count reached the limit).
    pub fn exhausted(&self, lane: &str, why: &str) {
        if let Some(n) = &self.notifier
            && n.wants(EventKind::QuotaExhausted)
        {
            n.send(Event::new(EventKind::QuotaExhausted, lane, why.to_owned()));
        }
    }
}

/// `rpd` → `requests per day`, for a message a person reads.
fn window_words(name: &str) -> &str {
    match name {
        "rps" => "requests per second",
        "rpm" => "requests per minute",
        "rph" => "requests per hour",
        "rpd" => "requests per day",
        "tpm" => "tokens per minute",
        "tph" => "tokens per hour",
        "tpd" => "tokens per day",
        "tokens_per_month" => "tokens per month",
        other => other,
    }
}

fn same_targets(a: &[NotifyConfig], b: &[NotifyConfig]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.kind == y.kind
                && x.name == y.name
                && x.on == y.on
                && x.quota_low == y.quota_low
                && x.window == y.window
                && x.url.expose_secret() == y.url.expose_secret()
                && x.headers.len() == y.headers.len()
                && x.headers
                    .iter()
                    .zip(&y.headers)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.expose_secret() == v2.expose_secret())
        })
}
