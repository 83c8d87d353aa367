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

#[derive(Debug)]
pub struct Health {
    cfg: HealthConfig,
    lanes: HashMap<String, Mutex<LaneState>>,
}

impl Health {
    pub fn new<'a>(cfg: HealthConfig, lanes: impl IntoIterator<Item = &'a String>) -> Self {
        Health {
            cfg,
            lanes: lanes
                .into_iter()
                .map(|l| (l.clone(), Mutex::new(LaneState::default())))
                .collect(),
        }
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

    pub fn success(&self, lane: &str) -> Option<Transition> {
        self.with(lane, |s| {
            s.consecutive_failures = 0;
            s.open.take().map(|_| Transition::Up)
        })
        .flatten()
    }

    /// A failure that says the lane is unhealthy. Returns `Down` when it opens the breaker.
    pub fn failure(&self, lane: &str) -> Option<Transition> {
        let cfg = self.cfg;
        self.with(lane, |s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if s.open.is_none() && s.consecutive_failures >= cfg.failures {
                s.open = Some(Open {
                    next_probe: Instant::now() + cfg.cooldown,
                    cooldown: cfg.cooldown,
                });
                Some(Transition::Down)
            } else {
                None
            }
        })
        .flatten()
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
            return self.success(lane);
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
        assert_eq!(h.failure("a"), None);
        assert_eq!(h.check("a"), None);
        assert_eq!(h.failure("a"), Some(Transition::Down));
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
        assert_eq!(h.failure("a"), None, "the count starts again after recovery");
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let h = health();
        h.failure("a");
        h.success("a");
        assert_eq!(h.failure("a"), None);
        assert_eq!(h.check("a"), None);
        assert_eq!(h.check("unknown-lane"), None);
    }
}
