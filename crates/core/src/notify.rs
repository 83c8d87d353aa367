//! Notifications: fallbacks, quotas running low or spent, lanes going down and coming back,
//! sent to Slack, a webhook or ntfy.
//!
//! Nothing here runs on the request path. [`Notifier::send`] puts the event in a bounded
//! channel and returns; one task debounces (the first event of a kind for a lane goes out at
//! once, the rest of its window are counted and sent as one follow-up when the window ends)
//! and delivery tasks retry a few times with backoff. A slow or dead endpoint delays only its
//! own messages; when the queue is full an event is dropped and counted, never waited for.
//! Target URLs can be credentials (a Slack webhook) and are never logged: a target is named
//! `slack#1`.

use crate::clock;
use crate::config::{EventKind, NotifyConfig, NotifyKind};
use crate::metrics::Metrics;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// Events waiting for the debouncer, at most.
const QUEUE: usize = 1024;
/// Messages being delivered at once, at most (over all targets).
const IN_FLIGHT: usize = 16;
/// Tries per message, and the first wait between them (doubling).
const TRIES: u32 = 4;
const BACKOFF: Duration = Duration::from_millis(500);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// The lane it is about (for a fallback, the lane that failed).
    pub lane: String,
    pub route: Option<String>,
    /// Why, in words: an error class and the provider's message, the budget that is low …
    pub reason: String,
    /// Fallbacks: the lane that answered instead (`None`: no lane did).
    pub answered_by: Option<String>,
    /// Quota events: the share of the budget left (0..1).
    pub left: Option<f64>,
    pub at_ms: i64,
}

impl Event {
    pub fn new(kind: EventKind, lane: &str, reason: String) -> Event {
        Event {
            kind,
            lane: lane.to_owned(),
            route: None,
            reason,
            answered_by: None,
            left: None,
            at_ms: clock::wall_now_ms(),
        }
    }

    /// One line for a person. `count` is how many such events this message stands for.
    pub fn text(&self, count: u64, window: Duration) -> String {
        let lane = &self.lane;
        let mut s = match self.kind {
            EventKind::Fallback => {
                let route = self.route.as_deref().unwrap_or("?");
                match &self.answered_by {
                    Some(by) => format!(
                        "Fallback on route `{route}`: lane `{lane}` was passed over ({}); `{by}` answered",
                        self.reason
                    ),
                    None => format!(
                        "Fallback on route `{route}`: lane `{lane}` was passed over ({}); no lane answered",
                        self.reason
                    ),
                }
            }
            EventKind::QuotaLow => format!("Quota low on lane `{lane}`: {}", self.reason),
            EventKind::QuotaExhausted => format!("Quota spent on lane `{lane}`: {}", self.reason),
            EventKind::LaneDown => format!("Lane `{lane}` is down: {}", self.reason),
            EventKind::LaneUp => format!("Lane `{lane}` is up again: {}", self.reason),
        };
        if count > 1 {
            s.push_str(&format!(" ({count} times in the last {})", span(window)));
        }
        s
    }
}

/// `5 min`, `1 h`, `30 s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// `2026-11-28T08:00:05.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let (y, m, d) = clock::civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    let (h, min, sec, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}.{milli:03}Z")
}

/// The sending side. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    /// Events some target listens for, by `EventKind as usize`.
    wanted: [bool; 5],
    /// The highest `quota_low` share among targets that want it.
    quota_low: f64,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// Starts the debouncer; `None` when there is nowhere to send (then nothing runs).
    /// Must be called inside a tokio runtime.
    pub fn start(targets: Vec<NotifyConfig>, metrics: Arc<Metrics>) -> Option<Notifier> {
        if targets.is_empty() {
            return None;
        }
        crate::upstream::install_crypto();
        let client = match reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("notifications are off: cannot build an HTTP client: {e}");
                return None;
            }
        };
        let mut wanted = [false; 5];
        let mut quota_low: f64 = 0.0;
        for t in &targets {
            for k in &t.on {
                wanted[*k as usize] = true;
                if *k == EventKind::QuotaLow {
                    quota_low = quota_low.max(t.quota_low);
                }
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let d = Debouncer {
            targets: targets.into_iter().map(Arc::new).collect(),
            windows: HashMap::new(),
            client,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            metrics: metrics.clone(),
        };
        tokio::spawn(d.run(rx));
        Some(Notifier {
            tx,
            wanted,
            quota_low,
            metrics,
        })
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.wanted[kind as usize]
    }

    /// The share left at or below which some target wants `quota_low`.
    pub fn quota_low_threshold(&self) -> Option<f64> {
        self.wants(EventKind::QuotaLow).then_some(self.quota_low)
    }

    /// Queues an event; never waits. A full queue drops it (counted in `/metrics`).
    pub fn send(&self, ev: Event) {
        if !self.wants(ev.kind) {
            return;
        }
        if self.tx.try_send(ev).is_err() {
            self.metrics.notification("any", "dropped");
        }
    }
}

/// One (target, event kind, lane) window.
struct Window {
    ends: Instant,
    /// Events since the last message, not yet sent.
    pending: u64,
    last: Event,
}

struct Debouncer {
    targets: Vec<Arc<NotifyConfig>>,
    windows: HashMap<(usize, EventKind, String), Window>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Debouncer {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        loop {
            let next_end = self.windows.values().filter(|w| w.pending > 0).map(|w| w.ends).min();
            let ev = match next_end {
                Some(end) => match tokio::time::timeout_at(end, rx.recv()).await {
                    Ok(ev) => ev,
                    Err(_) => {
                        self.close_windows();
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(ev) = ev else {
                // The gateway is gone: say what is still pending, then stop.
                self.close_windows_now();
                return;
            };
            self.take(ev);
        }
    }

    fn take(&mut self, ev: Event) {
        let now = Instant::now();
        for (i, t) in self.targets.iter().enumerate() {
            if !t.on.contains(&ev.kind) {
                continue;
            }
            if ev.kind == EventKind::QuotaLow && ev.left.is_some_and(|l| l > t.quota_low) {
                continue;
            }
            let key = (i, ev.kind, ev.lane.clone());
            match self.windows.get_mut(&key) {
                Some(w) if w.ends > now => {
                    w.pending += 1;
                    w.last = ev.clone();
                    self.metrics.notification(t.kind.as_str(), "suppressed");
                }
                _ => {
                    self.windows.insert(
                        key,
                        Window {
                            ends: now + t.window,
                            pending: 0,
                            last: ev.clone(),
                        },
                    );
                    self.deliver(t.clone(), ev.clone(), 1);
                }
            }
        }
        // Forget windows long past, so the map stays as small as the set of live troubles.
        if self.windows.len() > 256 {
            self.windows.retain(|_, w| w.ends > now || w.pending > 0);
        }
    }

    /// Windows that ended with events pending send one message with the count, and start a
    /// new window (so a lasting trouble is one message per window, not one per event).
    fn close_windows(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for ((i, _, _), w) in self.windows.iter_mut() {
            if w.ends <= now && w.pending > 0 {
                due.push((*i, w.last.clone(), w.pending));
                w.pending = 0;
                w.ends = now + self.targets[*i].window;
            }
        }
        self.windows.retain(|_, w| w.ends > now);
        for (i, ev, n) in due {
            self.deliver(self.targets[i].clone(), ev, n);
        }
    }

    fn close_windows_now(&mut self) {
        let due: Vec<_> = self
            .windows
            .drain()
            .filter(|(_, w)| w.pending > 0)
            .map(|((i, _, _), w)| (i, w.last, w.pending))
            .collect();
        for (i, ev, n) in due {
            self.deliver(self.targets[i].clone(), ev, n);
        }
    }

    fn deliver(&self, target: Arc<NotifyConfig>, ev: Event, count: u64) {
        let client = self.client.clone();
        let slots = self.slots.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let kind = target.kind.as_str();
            let mut wait = BACKOFF;
            for attempt in 1..=TRIES {
                match post(&client, &target, &ev, count).await {
                    Ok(()) => {
                        metrics.notification(kind, "sent");
                        tracing::debug!(target = %target.name, event = ev.kind.as_str(), lane = %ev.lane, "notification sent");
                        return;
                    }
                    Err((why, retry)) => {
                        if !retry || attempt == TRIES {
                            metrics.notification(kind, "failed");
                            tracing::warn!(target = %target.name, event = ev.kind.as_str(), lane = %ev.lane, "notification not delivered after {attempt} tries: {why}");
                            return;
                        }
                        tracing::debug!(target = %target.name, "notification try {attempt} failed: {why}");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        });
    }
}

/// One delivery. `Err((why, worth retrying))`; `why` never contains the URL.
async fn post(client: &reqwest::Client, t: &NotifyConfig, ev: &Event, count: u64) -> Result<(), (String, bool)> {
    let text = ev.text(count, t.window);
    let mut req = client.post(t.url.expose_secret());
    for (k, v) in &t.headers {
        req = req.header(k.as_str(), v.expose_secret());
    }
    req = match t.kind {
        NotifyKind::Slack => req.json(&serde_json::json!({ "text": format!("Switchyard: {text}") })),
        NotifyKind::Webhook => req.json(&webhook_body(ev, count, t.window, &text)),
        NotifyKind::Ntfy => {
            let (priority, tags) = match ev.kind {
                EventKind::LaneDown | EventKind::QuotaExhausted => ("high", "warning"),
                EventKind::LaneUp => ("default", "white_check_mark"),
                EventKind::Fallback | EventKind::QuotaLow => ("default", "information_source"),
            };
            req.header("Title", format!("Switchyard: {} ({})", ev.kind.as_str(), ev.lane))
                .header("Priority", priority)
                .header("Tags", tags)
                .body(text)
        }
    };
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let s = r.status();
            // A 4xx other than 408/429 will not get better by asking again.
            let retry = s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429;
            Err((format!("HTTP {s}"), retry))
        }
        // reqwest's error text can include the URL: keep only what kind of failure it was.
        Err(e) => Err((reqwest_kind(&e).to_owned(), true)),
    }
}

fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "the request failed"
    } else {
        "the connection failed"
    }
}

/// The `webhook` payload.
pub fn webhook_body(ev: &Event, count: u64, window: Duration, text: &str) -> serde_json::Value {
    let mut v = serde_json::json!({
        "service": "switchyard",
        "event": ev.kind.as_str(),
        "route": ev.route,
        "lane": ev.lane,
        "reason": ev.reason,
        "answering_lane": ev.answered_by,
        "time": rfc3339(ev.at_ms),
        "time_ms": ev.at_ms,
        "count": count,
        "window_secs": window.as_secs(),
        "text": text,
    });
    if ev.kind == EventKind::Fallback {
        v["failed_lane"] = serde_json::Value::String(ev.lane.clone());
    }
    if let Some(left) = ev.left {
        v["left"] = serde_json::json!(left);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            kind,
            lane: "gemma-local".into(),
            route: Some("default".into()),
            reason: "connect: connection refused".into(),
            answered_by: Some("groq-llama".into()),
            left: None,
            at_ms: 1_764_000_000_000,
        }
    }

    #[test]
    fn texts_say_what_happened_and_how_often() {
        let w = Duration::from_secs(300);
        assert_eq!(
            ev(EventKind::Fallback).text(1, w),
            "Fallback on route `default`: lane `gemma-local` was passed over (connect: connection refused); `groq-llama` answered"
        );
        assert!(
            ev(EventKind::Fallback)
                .text(4, w)
                .ends_with("(4 times in the last 5 min)")
        );
        let mut e = ev(EventKind::Fallback);
        e.answered_by = None;
        assert!(e.text(1, w).ends_with("no lane answered"));
        assert!(
            ev(EventKind::LaneDown)
                .text(1, w)
                .starts_with("Lane `gemma-local` is down: ")
        );
    }

    #[test]
    fn the_webhook_body_names_the_failed_and_answering_lanes() {
        let e = ev(EventKind::Fallback);
        let b = webhook_body(&e, 3, Duration::from_secs(60), "t");
        assert_eq!(b["event"], "fallback");
        assert_eq!(b["failed_lane"], "gemma-local");
        assert_eq!(b["answering_lane"], "groq-llama");
        assert_eq!(b["route"], "default");
        assert_eq!(b["count"], 3);
        assert_eq!(b["time"], "2025-11-24T16:00:00.000Z");
        assert_eq!(rfc3339(1_764_000_005_123), "2025-11-24T16:00:05.123Z");
        let down = webhook_body(&ev(EventKind::LaneDown), 1, Duration::from_secs(60), "t");
        assert!(down.get("failed_lane").is_none());
        assert_eq!(down["lane"], "gemma-local");
    }
}
