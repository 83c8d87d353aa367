//! Notifications: fallbacks, quotas running low or spent, lanes going down and coming back,
//! sent to Slack, a webhook or ntfy.
//!
//! Nothing here runs on the request path. [`Notifier::send`] puts the event in a bounded
//! channel and returns; one task debounces (the first event of a kind for a lane goes out at
//! once, the rest of its window are counted and sent as one follow-up when the window ends)
//! and delivery tasks retry a few times with backoff. A lane's `lane_down` and `lane_up`
//! messages to one target are delivered one after the other, in the order they happened, so
//! the last one a person reads is the lane's state. Each target has
//! its own few delivery slots, so a slow or dead endpoint delays only its own messages; when
//! the queue is full an event is dropped and counted, never waited for. [`Notifier::flush`]
//! sends what windows hold back and waits for deliveries (at shutdown).
//! Target URLs can be credentials (a Slack webhook) and are never logged: a target is named
//! `slack#1`.

use crate::clock;
use crate::config::{EventKind, NotifyConfig, NotifyKind};
use crate::metrics::Metrics;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Events waiting for the debouncer, at most.
const QUEUE: usize = 1024;
/// Messages being delivered at once to one target, at most.
const IN_FLIGHT: usize = 4;
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
    tx: mpsc::Sender<Msg>,
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
            targets: targets
                .into_iter()
                .map(|t| Target {
                    cfg: Arc::new(t),
                    slots: Arc::new(Semaphore::new(IN_FLIGHT)),
                })
                .collect(),
            windows: HashMap::new(),
            client,
            deliveries: JoinSet::new(),
            chains: HashMap::new(),
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
        if self.tx.try_send(Msg::Event(ev)).is_err() {
            self.metrics.notification("queue", "dropped");
        }
    }

    /// Sends what the windows hold back now and waits, at most `within`, until every
    /// delivery has ended (sent, or given up). For shutdown: nothing is lost silently.
    pub async fn flush(&self, within: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() && tokio::time::timeout(within, wait).await.is_err() {
            tracing::warn!("notifications still being delivered at shutdown were abandoned");
        }
    }
}

/// A message to send: target index, the event it is about, how many events it stands for.
type Due = (usize, Event, u64);

/// Oldest (last) event first: a lane's down-then-up leaves up as the last word.
fn in_order(mut due: Vec<Due>) -> Vec<Due> {
    due.sort_by_key(|(_, ev, _)| ev.at_ms);
    due
}

enum Msg {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

struct Target {
    cfg: Arc<NotifyConfig>,
    slots: Arc<Semaphore>,
}

/// One (target, event kind, lane) window.
#[derive(Clone)]
struct Window {
    ends: Instant,
    /// Events since the last message, not yet sent.
    pending: u64,
    last: Event,
}

struct Debouncer {
    targets: Vec<Target>,
    windows: HashMap<(usize, EventKind, String), Window>,
    client: reqwest::Client,
    deliveries: JoinSet<()>,
    /// The last lane-state delivery per (target, lane): the next one waits for it to end.
    chains: HashMap<(usize, String), oneshot::Receiver<()>>,
    metrics: Arc<Metrics>,
}

impl Debouncer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let next_end = self.windows.values().filter(|w| w.pending > 0).map(|w| w.ends).min();
            let sleep = async {
                match next_end {
                    Some(end) => tokio::time::sleep_until(end).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Event(ev)) => {
                        let due = self.take(ev);
                        self.send_due(due);
                    }
                    Some(Msg::Flush(done)) => {
                        let due = self.close_windows_now();
                        self.send_due(due);
                        while self.deliveries.join_next().await.is_some() {}
                        let _ = done.send(());
                    }
                    None => {
                        // Every sender is gone: say what is still pending, then stop.
                        let due = self.close_windows_now();
                        self.send_due(due);
                        while self.deliveries.join_next().await.is_some() {}
                        return;
                    }
                },
                () = sleep => {
                    let due = self.close_windows();
                    self.send_due(due);
                }
                Some(_) = self.deliveries.join_next(), if !self.deliveries.is_empty() => {}
            }
        }
    }

    /// Takes an event into its windows; returns the messages to send now.
    fn take(&mut self, ev: Event) -> Vec<Due> {
        let now = Instant::now();
        let mut due = Vec::new();
        for i in 0..self.targets.len() {
            let t = self.targets[i].cfg.clone();
            if !t.on.contains(&ev.kind) {
                continue;
            }
            if ev.kind == EventKind::QuotaLow && ev.left.is_some_and(|l| l > t.quota_low) {
                continue;
            }
            let key = (i, ev.kind, ev.lane.clone());
            let send = match self.windows.get_mut(&key) {
                Some(w) if w.ends > now => {
                    w.pending += 1;
                    w.last = ev.clone();
                    self.metrics.notification(t.kind.as_str(), "suppressed");
                    None
                }
                // Its window has ended but was not closed yet: what it held back goes out now,
                // counted with this event, and a new window starts.
                Some(w) => {
                    let n = w.pending + 1;
                    w.pending = 0;
                    w.ends = now + t.window;
                    w.last = ev.clone();
                    Some(n)
                }
                None => {
                    self.windows.insert(
                        key,
                        Window {
                            ends: now + t.window,
                            pending: 0,
                            last: ev.clone(),
                        },
                    );
                    Some(1)
                }
            };
            if let Some(n) = send {
                due.push((i, ev.clone(), n));
            }
        }
        // Forget windows long past, so the map stays as small as the set of live troubles.
        if self.windows.len() > 256 {
            self.windows.retain(|_, w| w.ends > now || w.pending > 0);
        }
        due
    }

    /// Windows that ended with events pending send one message with the count, and start a
    /// new window (so a lasting trouble is one message per window, not one per event).
    fn close_windows(&mut self) -> Vec<Due> {
        let now = Instant::now();
        let mut due = Vec::new();
        for ((i, _, _), w) in self.windows.iter_mut() {
            if w.ends <= now && w.pending > 0 {
                due.push((*i, w.last.clone(), w.pending));
                w.pending = 0;
                w.ends = now + self.targets[*i].cfg.window;
            }
        }
        self.windows.retain(|_, w| w.ends > now);
        due
    }

    fn close_windows_now(&mut self) -> Vec<Due> {
        self.windows
            .drain()
            .filter(|(_, w)| w.pending > 0)
            .map(|((i, _, _), w)| (i, w.last, w.pending))
            .collect()
    }

    /// Sends in the order things happened.
    fn send_due(&mut self, due: Vec<Due>) {
        for (i, ev, n) in in_order(due) {
            self.deliver(i, ev, n);
        }
    }

    fn deliver(&mut self, target_index: usize, ev: Event, count: u64) {
        let Target { cfg, slots } = &self.targets[target_index];
        let (target, slots) = (cfg.clone(), slots.clone());
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        let (prev, done) = if matches!(ev.kind, EventKind::LaneDown | EventKind::LaneUp) {
            let (tx, rx) = oneshot::channel::<()>();
            (self.chains.insert((target_index, ev.lane.clone()), rx), Some(tx))
        } else {
            (None, None)
        };
        if self.chains.len() > 256 {
            self.chains
                .retain(|_, rx| rx.try_recv() == Err(oneshot::error::TryRecvError::Empty));
        }
        self.deliveries.spawn(async move {
            if let Some(prev) = prev {
                let _ = prev.await;
            }
            // Dropped when this delivery ends, however it ends: the next one may go.
            let _done = done;
            let kind = target.kind.as_str();
            let mut wait = BACKOFF;
            for attempt in 1..=TRIES {
                // A slot per try, not per message: waiting out a backoff holds none.
                let result = {
                    let Ok(_slot) = slots.acquire().await else { return };
                    post(&client, &target, &ev, count).await
                };
                match result {
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
        NotifyKind::Slack => req.json(&serde_json::json!({ "text": format!("Switchyard: {}", slack_escape(&text)) })),
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

/// Slack reads `<…>` as links and mentions (`<!channel>`), and `&` as the start of an entity:
/// text that came from a provider must not ping a channel or hide a link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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

    fn debouncer(window: Duration, on: &[EventKind]) -> Debouncer {
        let cfg = NotifyConfig {
            kind: NotifyKind::Webhook,
            url: secrecy::SecretString::from("http://127.0.0.1:9/hook"),
            name: "webhook#1".into(),
            on: on.to_vec(),
            quota_low: 0.1,
            window,
            headers: Vec::new(),
        };
        crate::upstream::install_crypto();
        Debouncer {
            targets: vec![Target {
                cfg: Arc::new(cfg),
                slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            }],
            windows: HashMap::new(),
            client: reqwest::Client::new(),
            deliveries: JoinSet::new(),
            chains: HashMap::new(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    fn counts(due: &[Due]) -> Vec<(EventKind, u64)> {
        due.iter().map(|(_, e, n)| (e.kind, *n)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn one_message_per_window_then_one_with_the_count() {
        let w = Duration::from_secs(60);
        let mut d = debouncer(w, &EventKind::ALL);
        assert_eq!(counts(&d.take(ev(EventKind::Fallback))), [(EventKind::Fallback, 1)]);
        assert!(d.take(ev(EventKind::Fallback)).is_empty());
        assert!(d.take(ev(EventKind::Fallback)).is_empty());
        // Another kind, or another lane, has its own window.
        assert_eq!(counts(&d.take(ev(EventKind::LaneDown))), [(EventKind::LaneDown, 1)]);
        let mut other = ev(EventKind::Fallback);
        other.lane = "other".into();
        assert_eq!(d.take(other).len(), 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(d.close_windows().is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(counts(&d.close_windows()), [(EventKind::Fallback, 2)]);
        // The follow-up opened a new window; with nothing in it, it closes quietly.
        tokio::time::advance(w).await;
        assert!(d.close_windows().is_empty());
        assert!(d.windows.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_at_the_end_of_a_window_carries_what_it_held_back() {
        let w = Duration::from_secs(60);
        let mut d = debouncer(w, &EventKind::ALL);
        d.take(ev(EventKind::Fallback));
        d.take(ev(EventKind::Fallback));
        d.take(ev(EventKind::Fallback));
        tokio::time::advance(w).await;
        // The window has ended but was not closed yet when the next event arrives.
        assert_eq!(counts(&d.take(ev(EventKind::Fallback))), [(EventKind::Fallback, 3)]);
        assert!(d.close_windows().is_empty(), "nothing is counted twice");
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_held_back_goes_out_at_shutdown_in_the_order_it_happened() {
        let mut d = debouncer(Duration::from_secs(300), &EventKind::ALL);
        let mut down = ev(EventKind::LaneDown);
        let mut up = ev(EventKind::LaneUp);
        d.take(down.clone());
        d.take(up.clone());
        down.at_ms += 10;
        up.at_ms += 20;
        d.take(down);
        d.take(up);
        for _ in 0..8 {
            // Whatever order the windows come out of the map in.
            let mut again = debouncer(Duration::from_secs(300), &EventKind::ALL);
            again.windows = d.windows.clone();
            let due = in_order(again.close_windows_now());
            assert_eq!(counts(&due), [(EventKind::LaneDown, 1), (EventKind::LaneUp, 1)]);
            assert!(again.windows.is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn quota_low_respects_the_target_threshold_and_unwanted_events_are_ignored() {
        let mut d = debouncer(Duration::from_secs(60), &[EventKind::QuotaLow]);
        let mut low = ev(EventKind::QuotaLow);
        low.left = Some(0.5);
        assert!(d.take(low.clone()).is_empty(), "50% left is above the 10% threshold");
        low.left = Some(0.05);
        assert_eq!(d.take(low).len(), 1);
        assert!(d.take(ev(EventKind::Fallback)).is_empty());
    }

    #[test]
    fn slack_text_cannot_ping_or_hide_links() {
        assert_eq!(
            slack_escape("<!channel> & <https://x|y>"),
            "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
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
