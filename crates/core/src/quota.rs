//! Free-tier quota accounting (DESIGN "The flow of one request": `quota.reserve` before an
//! attempt, `quota.commit` after it).
//!
//! Each lane draws on one or more *budgets*: its model at its provider (`groq/llama-3.3-70b`),
//! the provider's whole account when the free tier counts that way (OpenRouter's 50 requests a
//! day across every `:free` model), and the lane's own `limits:` entry. A budget has windows
//! (requests or tokens per second, minute, hour, day, month), each counted either over a
//! sliding window or until the provider's reset clock (UTC midnight, Pacific midnight, the
//! calendar month).
//!
//! What must stay true:
//! - A lane that would go over any window of any of its budgets is skipped *before* it is
//!   asked, with the window and the time it frees up in the reason. Checking and reserving
//!   happen under the budgets' locks together, so concurrent requests never overspend.
//! - A reservation (one request, the estimated tokens) is taken before the attempt and
//!   settled after it: actual tokens when the answer says, nothing when the request never
//!   reached the provider.
//! - What providers say wins over what we count: remaining budgets from their headers, and a
//!   daily 429 parks the budget until its reset. Parks are persisted (the ledger database);
//!   counters are rebuilt from the ledger's attempts at start, so a restart forgets nothing.

use crate::catalog::{Limits, Reset};
use crate::clock::{self, Clock};
use crate::config::{BudgetConfig, Config};
use crate::ratelimit::{Metric, Observed, Window};
use crate::shared::{Reserved, Shared, SharedHold, SharedWindow};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Short-window 429s without any hint of how long to wait cool the lane down this long.
pub const DEFAULT_COOLDOWN_MS: i64 = 10 * SECOND;
/// The longest a lane is parked on a provider's word.
const MAX_PARK_MS: i64 = 31 * DAY;
/// Tokens beyond this in one reservation are counted as this (no request is that large).
const MAX_RESERVATION: u64 = 1 << 40;
/// A spent daily budget with a sliding window and no hint is asked again after this long.
const ROLLING_PARK_MS: i64 = HOUR;

/// Did an attempt with this ledger outcome reach its provider (and so count against its
/// quota)? Skips never left the gateway, and a refused connection never arrived.
pub fn reached_provider(outcome: &str) -> bool {
    !matches!(
        outcome,
        "disabled"
            | "not_local"
            | "premium_not_allowed"
            | "breaker_open"
            | "cooling_down"
            | "quota"
            | "spend_cap"
            | "context_too_small"
            | "connect"
            | "unsupported"
    )
}

/// How a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// The last `n` milliseconds.
    Sliding(i64),
    /// Until the clock's next reset.
    Clock(Reset),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Requests,
    Tokens,
}

/// One counted window of a budget, such as `rpd 20`.
#[derive(Debug)]
struct Win {
    name: &'static str,
    unit: Unit,
    limit: u64,
    span: Span,
    counter: Counter,
}

/// Amounts over time: per slot for a sliding window, one total for a clock period.
#[derive(Debug, Default)]
struct Counter {
    /// (slot start ms, amount), oldest first.
    slots: VecDeque<(i64, u64)>,
    /// Clock windows: the end of the current period.
    period_end: i64,
}

impl Win {
    fn slot_width(&self) -> i64 {
        match self.span {
            Span::Sliding(n) => (n / 60).max(1),
            Span::Clock(_) => i64::MAX,
        }
    }

    fn next_reset(reset: Reset, now: i64) -> i64 {
        match reset {
            Reset::UtcMidnight | Reset::Rolling => clock::next_utc_midnight(now),
            Reset::PacificMidnight => clock::next_pacific_midnight(now),
            Reset::Monthly => clock::next_month_start(now),
        }
    }

    fn period_start(reset: Reset, now: i64) -> i64 {
        match reset {
            Reset::UtcMidnight | Reset::Rolling => now.div_euclid(DAY) * DAY,
            Reset::PacificMidnight => clock::pacific_midnight_at_or_before(now),
            Reset::Monthly => clock::month_start(now),
        }
    }

    /// Drops what has left the window.
    fn expire(&mut self, now: i64) {
        match self.span {
            Span::Sliding(n) => {
                // A use is filed at the start of its slot: it leaves the window only once the
                // whole slot has, never early.
                let width = self.slot_width();
                while self.counter.slots.front().is_some_and(|(t, _)| *t + width + n <= now) {
                    self.counter.slots.pop_front();
                }
            }
            Span::Clock(reset) => {
                if now >= self.counter.period_end {
                    self.counter.slots.clear();
                    self.counter.period_end = Self::next_reset(reset, now);
                }
            }
        }
    }

    fn used(&mut self, now: i64) -> u64 {
        self.expire(now);
        self.counter.slots.iter().map(|(_, n)| n).sum()
    }

    /// Adds (or, negative, takes back) an amount spent at `at`.
    fn add(&mut self, at: i64, now: i64, amount: i64) {
        self.expire(now);
        let inside = match self.span {
            Span::Sliding(n) => at + n > now,
            Span::Clock(reset) => at >= Self::period_start(reset, now),
        };
        if !inside || amount == 0 {
            return;
        }
        let slot = match self.span {
            Span::Sliding(_) => at - at.rem_euclid(self.slot_width()),
            Span::Clock(_) => 0,
        };
        let pos = self.counter.slots.iter().rposition(|(t, _)| *t <= slot);
        match pos {
            Some(i) if self.counter.slots[i].0 == slot => {
                let v = &mut self.counter.slots[i].1;
                *v = v.saturating_add_signed(amount);
            }
            _ if amount > 0 => {
                let i = pos.map_or(0, |i| i + 1);
                self.counter.slots.insert(i, (slot, amount as u64));
            }
            _ => {}
        }
    }

    /// When `need` more would fit again: the moment enough of the window has expired.
    fn frees_at(&mut self, now: i64, need: u64) -> i64 {
        match self.span {
            Span::Clock(reset) => {
                self.expire(now);
                Self::next_reset(reset, now).max(self.counter.period_end)
            }
            Span::Sliding(n) => {
                let mut used = self.used(now);
                for (t, amount) in &self.counter.slots {
                    used = used.saturating_sub(*amount);
                    if used + need <= self.limit {
                        return t + self.slot_width() + n;
                    }
                }
                now + n
            }
        }
    }

    fn describe_span(&self) -> &'static str {
        match self.span {
            Span::Sliding(_) => "sliding",
            Span::Clock(r) => r.as_str(),
        }
    }
}

fn windows(limits: &Limits, reset: Reset) -> Vec<Win> {
    let day = if reset == Reset::Rolling {
        Span::Sliding(DAY)
    } else if reset == Reset::Monthly {
        Span::Clock(Reset::UtcMidnight)
    } else {
        Span::Clock(reset)
    };
    let month = if reset == Reset::Monthly {
        Span::Clock(Reset::Monthly)
    } else {
        Span::Sliding(30 * DAY)
    };
    let spec: [(&'static str, Option<u64>, Unit, Span); 8] = [
        ("rps", limits.rps, Unit::Requests, Span::Sliding(SECOND)),
        ("rpm", limits.rpm, Unit::Requests, Span::Sliding(MINUTE)),
        ("rph", limits.rph, Unit::Requests, Span::Sliding(HOUR)),
        ("rpd", limits.rpd, Unit::Requests, day),
        ("tpm", limits.tpm, Unit::Tokens, Span::Sliding(MINUTE)),
        ("tph", limits.tph, Unit::Tokens, Span::Sliding(HOUR)),
        ("tpd", limits.tpd, Unit::Tokens, day),
        ("tokens_per_month", limits.tokens_per_month, Unit::Tokens, month),
    ];
    spec.into_iter()
        .filter_map(|(name, limit, unit, span)| {
            limit.map(|limit| Win {
                name,
                unit,
                limit,
                span,
                counter: Counter::default(),
            })
        })
        .collect()
}

/// A budget the provider told us about in its headers.
#[derive(Debug, Clone)]
struct Learned {
    metric: Metric,
    window: Window,
    limit: Option<u64>,
    remaining: u64,
    reset_at: i64,
    /// Spent since the provider said so (requests or tokens, by metric).
    spent_since: u64,
}

/// A budget that may not be used until `until` (a 429 said so).
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub until_ms: i64,
    /// `quota` (a spent daily/monthly budget) or `cooling_down` (a short-window limit).
    pub outcome: &'static str,
    pub reason: String,
}

impl Park {
    /// A stored outcome (ledger, PostgreSQL, Redis) read back: `cooling_down`, else `quota`.
    pub fn outcome_from(stored: &str) -> &'static str {
        if stored == "cooling_down" {
            "cooling_down"
        } else {
            "quota"
        }
    }
}

#[derive(Debug)]
struct Budget {
    cfg: BudgetConfig,
    wins: Vec<Win>,
    learned: Vec<Learned>,
    park: Option<Park>,
    /// Spent today (UTC) in US dollars, and the end of that day.
    spent_usd: f64,
    spend_day_end: i64,
}

impl Budget {
    fn new(cfg: BudgetConfig) -> Budget {
        Budget {
            wins: windows(&cfg.limits, cfg.reset),
            cfg,
            learned: Vec::new(),
            park: None,
            spent_usd: 0.0,
            spend_day_end: 0,
        }
    }

    fn spent_today(&mut self, now: i64) -> f64 {
        if now >= self.spend_day_end {
            self.spent_usd = 0.0;
            self.spend_day_end = clock::next_utc_midnight(now);
        }
        self.spent_usd
    }

    /// Why this budget cannot take `tokens` more now: `(outcome, sentence, until)`.
    fn refuse(&mut self, now: i64, tokens: u64, input: u64) -> Option<(&'static str, String, i64)> {
        let key = self.cfg.key.clone();
        if let Some(p) = &self.park {
            if p.until_ms > now {
                return Some((
                    p.outcome,
                    format!(
                        "{} (until {}, in {})",
                        p.reason,
                        clock::format_utc(p.until_ms),
                        clock::format_wait(p.until_ms - now)
                    ),
                    p.until_ms,
                ));
            }
            self.park = None;
        }
        if let Some(cap) = self.cfg.usd_per_day {
            let spent = self.spent_today(now);
            if spent >= cap {
                let until = self.spend_day_end;
                return Some((
                    "spend_cap",
                    format!(
                        "`{key}` spent ${spent:.2} of its ${cap:.2} daily cap (resets {}, in {})",
                        clock::format_utc(until),
                        clock::format_wait(until - now)
                    ),
                    until,
                ));
            }
        }
        for w in &mut self.wins {
            let need = match w.unit {
                Unit::Requests => 1,
                // A request larger than the whole window may still go when the window is
                // empty: the provider decides.
                Unit::Tokens => tokens.min(w.limit),
            };
            let used = w.used(now);
            if used + need > w.limit {
                let until = w.frees_at(now, need);
                let what = match w.unit {
                    Unit::Requests => format!("{used} of {} requests used", w.limit),
                    Unit::Tokens => format!("{used} of {} tokens used, ~{need} needed", w.limit),
                };
                return Some((
                    "quota",
                    format!(
                        "`{key}` {} {what} ({}; frees up at {}, in {})",
                        w.name,
                        w.describe_span(),
                        clock::format_utc(until),
                        clock::format_wait(until - now)
                    ),
                    until,
                ));
            }
        }
        self.learned.retain(|l| l.reset_at > now);
        for l in &self.learned {
            let need = match l.metric {
                Metric::Requests => 1,
                Metric::Tokens | Metric::InputTokens => input.max(1),
                // What a request will write is not known before it is sent.
                Metric::OutputTokens => 1,
            };
            if l.remaining.saturating_sub(l.spent_since) < need {
                return Some((
                    "quota",
                    format!(
                        "`{key}`: the provider reported {} {} left{} (resets {}, in {})",
                        l.remaining.saturating_sub(l.spent_since),
                        metric_name(l.metric),
                        l.limit.map(|n| format!(" of {n}")).unwrap_or_default(),
                        clock::format_utc(l.reset_at),
                        clock::format_wait(l.reset_at - now)
                    ),
                    l.reset_at,
                ));
            }
        }
        None
    }

    fn charge(&mut self, at: i64, now: i64, requests: i64, tokens: i64) {
        for w in &mut self.wins {
            let n = match w.unit {
                Unit::Requests => requests,
                Unit::Tokens => tokens,
            };
            w.add(at, now, n);
        }
        for l in &mut self.learned {
            let n = match l.metric {
                Metric::Requests => requests,
                _ => tokens,
            };
            l.spent_since = l.spent_since.saturating_add_signed(n);
        }
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Requests => "requests",
        Metric::Tokens => "tokens",
        Metric::InputTokens => "input tokens",
        Metric::OutputTokens => "output tokens",
    }
}

/// The budgets a lane draws on. The first is its home: parks and what the provider reports go
/// there.
#[derive(Debug, Clone)]
struct LaneBudgets {
    keys: Vec<String>,
}

/// A lane's budgets held for one attempt.
#[derive(Debug)]
#[must_use = "settle the reservation with Quota::settle"]
pub struct Reservation {
    lane: String,
    at: i64,
    tokens: u64,
    settled: bool,
    /// What Redis holds for it, when replicas share their counts.
    shared: Option<SharedHold>,
}

/// A new park to persist (the ledger stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct ParkRecord {
    pub budget: String,
    pub park: Park,
}

/// How a past attempt is replayed into the counters at start.
#[derive(Debug, Clone)]
pub struct PastAttempt {
    pub ts_ms: i64,
    pub lane: String,
    pub tokens: u64,
    pub cost_usd: f64,
}

pub struct Quota {
    clock: Clock,
    /// Shared with the quota of a reloaded config where a budget did not change, so requests
    /// in flight across a reload settle into the same counters.
    budgets: HashMap<String, Arc<Mutex<Budget>>>,
    lanes: HashMap<String, LaneBudgets>,
    /// Redis, when replicas share their counts (`storage.shared`).
    shared: Option<Arc<Shared>>,
}

fn lock(m: &Mutex<Budget>) -> MutexGuard<'_, Budget> {
    // A poisoned lock means another thread panicked mid-update; the counters are plain data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One budget's state, for `switchyard status` and `/api/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BudgetStatus {
    pub key: String,
    pub reset: &'static str,
    pub source: String,
    pub windows: Vec<WindowStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<ReportedStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_day: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_usd_today: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowStatus {
    pub name: &'static str,
    pub limit: u64,
    pub used: u64,
    pub left: u64,
    /// When the window is whole again (clock windows) or its oldest use expires (sliding).
    pub resets_at_ms: Option<i64>,
    pub span: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Blocked {
    pub outcome: &'static str,
    pub reason: String,
    pub until_ms: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportedStatus {
    pub metric: &'static str,
    pub limit: Option<u64>,
    pub remaining: u64,
    pub resets_at_ms: i64,
}

impl Quota {
    pub fn new(config: &Config, clock: Clock) -> Quota {
        let budgets = config
            .budgets
            .values()
            .map(|b| (b.key.clone(), Arc::new(Mutex::new(Budget::new(b.clone())))))
            .collect();
        let lanes = config
            .lanes
            .values()
            .map(|l| {
                (
                    l.name.clone(),
                    LaneBudgets {
                        keys: l.budgets.clone(),
                    },
                )
            })
            .collect();
        Quota {
            clock,
            budgets,
            lanes,
            shared: None,
        }
    }

    /// Counts in Redis too, shared with other replicas.
    pub fn with_shared(mut self, shared: Option<Arc<Shared>>) -> Quota {
        self.shared = shared;
        self
    }

    /// The quota for a reloaded config: budgets that did not change keep their live state
    /// (shared with `old`, so requests in flight settle into them); new or changed ones are
    /// rebuilt from the ledger (flush it first).
    pub async fn reload(config: &Config, old: &Quota, ledger: &crate::ledger::Reader) -> Result<Quota, String> {
        let mut q = Quota::from_ledger(config, old.clock, ledger).await?;
        q.shared.clone_from(&old.shared);
        for (key, b) in q.budgets.iter_mut() {
            if let Some(prev) = old.budgets.get(key)
                && lock(prev).cfg == lock(b).cfg
            {
                *b = prev.clone();
            }
        }
        Ok(q)
    }

    /// A quota for `config` with what the ledger remembers: parks still in force, and every
    /// attempt inside the longest window, replayed.
    pub async fn from_ledger(config: &Config, clock: Clock, ledger: &crate::ledger::Reader) -> Result<Quota, String> {
        let quota = Quota::new(config, clock);
        let (since, now) = (quota.history_needed_ms(), quota.now_ms());
        let (parks, past) = ledger
            .quota_history(since, now)
            .await
            .map_err(|e| format!("ledger: cannot read the quota history: {e}"))?;
        if !parks.is_empty() || !past.is_empty() {
            tracing::info!(
                parks = parks.len(),
                attempts = past.len(),
                "quota state restored from the ledger"
            );
        }
        quota.restore(&parks, &past);
        Ok(quota)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The lane's budgets, locked in a fixed order (by key) so two lanes sharing budgets
    /// never deadlock.
    fn locked(&self, lane: &str) -> Vec<MutexGuard<'_, Budget>> {
        let Some(lb) = self.lanes.get(lane) else {
            return Vec::new();
        };
        let mut keys: Vec<&String> = lb.keys.iter().collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| self.budgets.get(k))
            .map(|b| lock(b))
            .collect()
    }

    fn home(&self, lane: &str) -> Option<&Mutex<Budget>> {
        self.lanes
            .get(lane)
            .and_then(|l| l.keys.first())
            .and_then(|k| self.budgets.get(k))
            .map(|b| &**b)
    }

    /// Takes one request and `tokens` (estimated input + output) from every budget of the
    /// lane, or says why not: `Err((outcome, reason, until_ms))`. `input` is the estimated
    /// input alone (checked against token budgets the provider reported).
    pub fn reserve(&self, lane: &str, tokens: u64, input: u64) -> Result<Reservation, (&'static str, String, i64)> {
        let (tokens, input) = (tokens.min(MAX_RESERVATION), input.min(MAX_RESERVATION));
        let now = self.now_ms();
        let mut held = self.locked(lane);
        for b in &mut held {
            if let Some(refusal) = b.refuse(now, tokens, input) {
                return Err(refusal);
            }
        }
        for b in &mut held {
            b.charge(now, now, 1, tokens as i64);
        }
        Ok(Reservation {
            lane: lane.to_owned(),
            at: now,
            tokens,
            settled: false,
            shared: None,
        })
    }

    /// [`Quota::reserve`], and then, when replicas share their counts, the same windows in
    /// Redis, atomically across replicas. Redis out of reach: the local reservation stands
    /// (see [`crate::shared`]).
    pub async fn reserve_shared(
        &self,
        lane: &str,
        tokens: u64,
        input: u64,
    ) -> Result<Reservation, (&'static str, String, i64)> {
        let mut r = self.reserve(lane, tokens, input)?;
        let Some(shared) = &self.shared else { return Ok(r) };
        let now = self.now_ms();
        let (windows, parks) = self.shared_plan(lane, r.tokens, now, shared);
        match shared.reserve(&windows, &parks, now).await {
            Reserved::Taken(hold) => {
                r.shared = Some(hold);
                Ok(r)
            }
            Reserved::Refused(outcome, why, until) => {
                self.settle(r, false, None, 0.0);
                Err((outcome, why, until))
            }
            Reserved::Unavailable => Ok(r),
        }
    }

    /// The lane's counted windows as the shared script takes them, and its budgets' park keys.
    fn shared_plan(&self, lane: &str, tokens: u64, now: i64, shared: &Shared) -> (Vec<SharedWindow>, Vec<String>) {
        let mut windows = Vec::new();
        let mut parks = Vec::new();
        for b in self.locked(lane) {
            parks.push(shared.park_key(&b.cfg.key));
            for w in &b.wins {
                let (sliding_ms, width, slot, period_end) = match w.span {
                    Span::Sliding(n) => {
                        let width = w.slot_width();
                        (n, width, now - now.rem_euclid(width), 0)
                    }
                    Span::Clock(reset) => (0, 0, Win::period_start(reset, now), Win::next_reset(reset, now)),
                };
                windows.push(SharedWindow {
                    key: shared.window_key(&b.cfg.key, w.name),
                    name: w.name,
                    budget: b.cfg.key.clone(),
                    limit: w.limit,
                    amount: match w.unit {
                        Unit::Requests => 1,
                        Unit::Tokens => tokens,
                    },
                    tokens: w.unit == Unit::Tokens,
                    sliding_ms,
                    slot_width_ms: width,
                    slot,
                    period_end,
                });
            }
        }
        (windows, parks)
    }

    /// Settles a reservation: `reached` says whether the provider saw the request (a refused
    /// connection costs nothing); `tokens` are the actual tokens when known (else the
    /// estimate stands for an answer, and nothing for a failure); `cost_usd` is added to the
    /// budgets' daily spend.
    pub fn settle(&self, mut r: Reservation, reached: bool, tokens: Option<u64>, cost_usd: f64) {
        r.settled = true;
        if let (Some(hold), Some(shared)) = (r.shared.take(), &self.shared) {
            shared.settle(hold, reached, tokens);
        }
        let now = self.now_ms();
        let (requests, token_delta) = if reached {
            (0, tokens.map_or(0, |t| t.min(MAX_RESERVATION) as i64 - r.tokens as i64))
        } else {
            (-1, -(r.tokens as i64))
        };
        for b in &mut self.locked(&r.lane) {
            if requests != 0 || token_delta != 0 {
                b.charge(r.at, now, requests, token_delta);
            }
            if cost_usd > 0.0 {
                b.spent_today(now);
                b.spent_usd += cost_usd;
            }
        }
    }

    /// Parks the lane's home budget until `until_ms`. Returns the record to persist.
    pub fn park(&self, lane: &str, until_ms: i64, outcome: &'static str, reason: String) -> Option<ParkRecord> {
        let home = self.home(lane)?;
        let mut b = lock(home);
        if b.park.as_ref().is_some_and(|p| p.until_ms >= until_ms) {
            return None;
        }
        let park = Park {
            until_ms,
            outcome,
            reason,
        };
        b.park = Some(park.clone());
        if let Some(shared) = &self.shared {
            shared.park(&b.cfg.key, until_ms, outcome, self.now_ms());
        }
        Some(ParkRecord {
            budget: b.cfg.key.clone(),
            park,
        })
    }

    /// When a budget spent for the day (or month) is whole again, by its reset clock.
    pub fn next_reset(&self, lane: &str) -> i64 {
        let now = self.now_ms();
        let reset = self.home(lane).map_or(Reset::Rolling, |b| lock(b).cfg.reset);
        match reset {
            Reset::Rolling => now + ROLLING_PARK_MS,
            r => Win::next_reset(r, now),
        }
    }

    /// Takes in what the provider reported about the lane's budgets. A budget reported spent
    /// with a known reset becomes a park (and is persisted); the rest is kept to predict the
    /// next requests.
    pub fn learn(&self, lane: &str, observed: &[Observed]) -> Vec<ParkRecord> {
        let now = self.now_ms();
        let mut parks = Vec::new();
        let Some(home) = self.home(lane) else {
            return parks;
        };
        let mut b = lock(home);
        for o in observed {
            let reset_at = match (o.reset_at_ms, o.window) {
                (Some(t), _) => t,
                (None, Window::Second) => now + SECOND,
                (None, Window::Minute) => now + MINUTE,
                (None, Window::Hour) => now + HOUR,
                (None, Window::Day) => Win::next_reset(b.cfg.reset, now),
                (None, Window::Month) => clock::next_month_start(now),
                (None, Window::Unknown) => now + MINUTE,
            };
            if reset_at <= now {
                continue;
            }
            // A reset further off than any free tier's month is a misread header, not a park
            // to keep for years.
            let reset_at = reset_at.min(now + MAX_PARK_MS);
            if o.remaining == 0 && reset_at - now > MINUTE {
                let park = Park {
                    until_ms: reset_at,
                    outcome: "quota",
                    reason: format!(
                        "`{}`: the provider reported 0 {} left{}",
                        b.cfg.key,
                        metric_name(o.metric),
                        o.limit.map(|n| format!(" of {n}")).unwrap_or_default()
                    ),
                };
                if b.park.as_ref().is_none_or(|p| p.until_ms < reset_at) {
                    if let Some(shared) = &self.shared {
                        shared.park(&b.cfg.key, reset_at, "quota", now);
                    }
                    b.park = Some(park.clone());
                    parks.push(ParkRecord {
                        budget: b.cfg.key.clone(),
                        park,
                    });
                }
                continue;
            }
            let fresh = Learned {
                metric: o.metric,
                window: o.window,
                limit: o.limit,
                remaining: o.remaining,
                reset_at,
                spent_since: 0,
            };
            match b
                .learned
                .iter_mut()
                .find(|l| l.metric == o.metric && l.window == o.window)
            {
                Some(l) => *l = fresh,
                None => b.learned.push(fresh),
            }
        }
        parks
    }

    /// Restores persisted parks and replays past attempts (oldest first) into the counters.
    pub fn restore(&self, parks: &[ParkRecord], past: &[PastAttempt]) {
        let now = self.now_ms();
        for p in parks.iter().filter(|p| p.park.until_ms > now) {
            if let Some(b) = self.budgets.get(&p.budget) {
                let mut b = lock(b);
                if b.park.as_ref().is_none_or(|x| x.until_ms < p.park.until_ms) {
                    b.park = Some(p.park.clone());
                }
            }
        }
        for a in past {
            for b in &mut self.locked(&a.lane) {
                b.charge(a.ts_ms, now, 1, a.tokens as i64);
                if a.cost_usd > 0.0 && a.ts_ms >= now.div_euclid(DAY) * DAY {
                    b.spent_today(now);
                    b.spent_usd += a.cost_usd;
                }
            }
        }
    }

    /// How far back [`Quota::restore`] needs past attempts.
    pub fn history_needed_ms(&self) -> i64 {
        let now = self.now_ms();
        let mut since = now;
        for b in self.budgets.values() {
            let b = lock(b);
            for w in &b.wins {
                let start = match w.span {
                    Span::Sliding(n) => now - n,
                    Span::Clock(r) => Win::period_start(r, now),
                };
                since = since.min(start);
            }
            if b.cfg.usd_per_day.is_some() {
                since = since.min(now.div_euclid(DAY) * DAY);
            }
        }
        since
    }

    /// The state of every budget of a lane.
    pub fn status(&self, lane: &str) -> Vec<BudgetStatus> {
        let now = self.now_ms();
        let Some(lb) = self.lanes.get(lane) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in &lb.keys {
            let Some(m) = self.budgets.get(key) else { continue };
            let mut b = lock(m);
            let blocked = b.refuse(now, 0, 0).map(|(outcome, reason, until_ms)| Blocked {
                outcome,
                reason,
                until_ms,
            });
            let windows = b
                .wins
                .iter_mut()
                .map(|w| {
                    let used = w.used(now);
                    let resets_at_ms = match w.span {
                        Span::Clock(r) => Some(Win::next_reset(r, now)),
                        Span::Sliding(n) => w.counter.slots.front().map(|(t, _)| t + n),
                    };
                    WindowStatus {
                        name: w.name,
                        limit: w.limit,
                        used,
                        left: w.limit.saturating_sub(used),
                        resets_at_ms,
                        span: w.describe_span(),
                    }
                })
                .collect();
            let reported = b
                .learned
                .iter()
                .filter(|l| l.reset_at > now)
                .map(|l| ReportedStatus {
                    metric: metric_name(l.metric),
                    limit: l.limit,
                    remaining: l.remaining.saturating_sub(l.spent_since),
                    resets_at_ms: l.reset_at,
                })
                .collect();
            let spent = b.cfg.usd_per_day.map(|_| b.spent_today(now));
            out.push(BudgetStatus {
                key: key.clone(),
                reset: b.cfg.reset.as_str(),
                source: b.cfg.source.clone(),
                windows,
                blocked,
                reported,
                usd_per_day: b.cfg.usd_per_day,
                spent_usd_today: spent,
            });
        }
        out
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            // Every path settles its reservation; one that did not keeps the estimate, which
            // errs on the side of spending less.
            tracing::debug!(lane = %self.lane, "a quota reservation was dropped unsettled; its estimate stands");
        }
    }
}

#[cfg(test)]
mod tests;
