//! Per-lane health: a consecutive-failure circuit breaker. (Rate limits are not a health
//! matter: a 429 parks the lane's quota budget, see [`crate::quota`].)
//!
//! A lane whose breaker is open is skipped at once, without a connection attempt. It is not
//! retried by live traffic: the gateway's prober (see [`crate::gateway`]) checks it in the
//! background when its cool-down has passed and closes the breaker when the provider answers
//! again, so traffic flips back on its own. Each failed probe doubles the cool-down up to
//! `health.max_cooldown`.
//!
//! Time comes from `tokio::time::Instant` so that tests can pause and advance it.

use crate::config::HealthConfig;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The breaker is open.
    BreakerOpen,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::BreakerOpen => "breaker_open",
        }
    }
}

#[derive(Debug, Default)]
struct LaneState {
    consecutive_failures: u32,
    /// Set while the breaker is open.
    open: Option<Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    next_probe: Instant,
    cooldown: Duration,
}

/// A change worth telling someone about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Down,
    Up,
}

/// Told of every transition: the lane, the transition, and why in words.
pub type Hook = Box<dyn Fn(&str, Transition, &str) + Send + Sync>;

pub struct Health {
    cfg: HealthConfig,
    lanes: HashMap<String, Mutex<LaneState>>,
    hook: Option<Hook>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("cfg", &self.cfg)
            .field("lanes", &self.lanes)
            .finish()
    }
}

impl Health {
    pub fn new<'a>(cfg: HealthConfig, lanes: impl IntoIterator<Item = &'a String>) -> Self {
        Health {
            cfg,
            lanes: lanes
                .into_iter()
                .map(|l| (l.clone(), Mutex::new(LaneState::default())))
                .collect(),
            hook: None,
        }
    }

    /// Calls `hook` on every transition (after the lane's state has changed).
    pub fn with_hook(mut self, hook: Hook) -> Self {
        self.hook = Some(hook);
        self
    }

    fn tell(&self, lane: &str, t: Option<Transition>, why: &str) -> Option<Transition> {
        if let (Some(t), Some(h)) = (t, &self.hook) {
            h(lane, t, why);
        }
        t
    }

    fn with<R>(&self, lane: &str, f: impl FnOnce(&mut LaneState) -> R) -> Option<R> {
        let m = self.lanes.get(lane)?;
        // A poisoned lock only means another thread panicked mid-update; the state is plain
        // data and still usable.
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut g))
    }

    /// Should this lane be skipped right now?
    pub fn check(&self, lane: &str) -> Option<Skip> {
        self.with(lane, |s| s.open.is_some().then_some(Skip::BreakerOpen))
            .flatten()
    }

    /// The lane answered. Returns `Up` when that closes its breaker.
    pub fn success(&self, lane: &str) -> Option<Transition> {
        self.close(lane, "it answered a request")
    }

    fn close(&self, lane: &str, why: &str) -> Option<Transition> {
        let t = self
            .with(lane, |s| {
                s.consecutive_failures = 0;
                s.open.take().map(|_| Transition::Up)
            })
            .flatten();
        self.tell(lane, t, why)
    }

    /// A failure that says the lane is unhealthy (`why`: what went wrong). Returns `Down` when
    /// it opens the breaker.
    pub fn failure(&self, lane: &str, why: &str) -> Option<Transition> {
        let cfg = self.cfg;
        let (t, count) = self
            .with(lane, |s| {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                let t = if s.open.is_none() && s.consecutive_failures >= cfg.failures {
                    s.open = Some(Open {
                        next_probe: Instant::now() + cfg.cooldown,
                        cooldown: cfg.cooldown,
                    });
                    Some(Transition::Down)
                } else {
                    None
                };
                (t, s.consecutive_failures)
            })
            .unwrap_or((None, 0));
        t?;
        let why = format!("{count} failures in a row, the last: {why}");
        self.tell(lane, t, &why)
    }

    /// Lanes whose breaker is open and whose next probe is due.
    pub fn due_for_probe(&self) -> Vec<String> {
        let now = Instant::now();
        let mut due = Vec::new();
        for (name, m) in &self.lanes {
            let g = m.lock().unwrap_or_else(|p| p.into_inner());
            if g.open.is_some_and(|o| o.next_probe <= now) {
                due.push(name.clone());
            }
        }
        due
    }

    /// Records a probe's result: a live lane closes, a dead one waits twice as long.
    pub fn probed(&self, lane: &str, alive: bool) -> Option<Transition> {
        if alive {
            return self.close(lane, "a health probe answered");
        }
        let max = self.cfg.max_cooldown;
        self.with(lane, |s| {
            if let Some(o) = &mut s.open {
                o.cooldown = (o.cooldown * 2).min(max);
                o.next_probe = Instant::now() + o.cooldown;
            }
        });
        None
    }

    /// Takes over the state of `lanes` from the health of the config before a reload (lanes
    /// that still point at the same model): an open breaker stays open, a count goes on.
    pub fn inherit<'a>(&self, old: &Health, lanes: impl IntoIterator<Item = &'a str>) {
        for lane in lanes {
            if let Some(state) = old.with(lane, |s| LaneState {
                consecutive_failures: s.consecutive_failures,
                open: s.open,
            }) {
                self.with(lane, |s| *s = state);
            }
        }
    }

    pub fn is_open(&self, lane: &str) -> bool {
        self.with(lane, |s| s.open.is_some()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        let cfg = HealthConfig {
            failures: 2,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(20),
        };
        Health::new(cfg, &["a".to_owned()])
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_with_backoff() {
        let h = health();
        assert_eq!(h.failure("a", "x"), None);
        assert_eq!(h.check("a"), None);
        assert_eq!(h.failure("a", "x"), Some(Transition::Down));
        assert_eq!(h.check("a"), Some(Skip::BreakerOpen));
        assert!(h.due_for_probe().is_empty());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(h.due_for_probe(), ["a"]);
        assert_eq!(h.probed("a", false), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(h.due_for_probe().is_empty(), "second wait is doubled to 10s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(h.due_for_probe(), ["a"]);
        h.probed("a", false);
        h.probed("a", false);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(h.due_for_probe(), ["a"], "capped at max_cooldown");
        assert_eq!(h.probed("a", true), Some(Transition::Up));
        assert_eq!(h.check("a"), None);
        assert_eq!(h.failure("a", "x"), None, "the count starts again after recovery");
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_hears_each_transition_once_with_its_reason() {
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let h = {
            let heard = heard.clone();
            health().with_hook(Box::new(move |lane, t, why| {
                heard
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((lane.to_owned(), t, why.to_owned()));
            }))
        };
        h.failure("a", "connect: refused");
        h.failure("a", "connect: refused");
        h.failure("a", "connect: refused");
        h.success("a");
        h.success("a");
        let heard = heard.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            heard,
            [
                (
                    "a".to_owned(),
                    Transition::Down,
                    "2 failures in a row, the last: connect: refused".to_owned()
                ),
                ("a".to_owned(), Transition::Up, "it answered a request".to_owned()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let h = health();
        h.failure("a", "x");
        h.success("a");
        assert_eq!(h.failure("a", "x"), None);
        assert_eq!(h.check("a"), None);
        assert_eq!(h.check("unknown-lane"), None);
    }
}
