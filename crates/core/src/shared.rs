//! State shared by several replicas through Redis (`storage.shared: redis://…`): quota
//! counters, parks (cool-downs and spent budgets) and open breakers.
//!
//! What must stay true:
//! - Two replicas never spend a free quota twice: every reservation checks and takes all the
//!   windows of a lane's budgets in one Lua script, which Redis runs atomically. Each replica
//!   still counts locally as well (its own view, and the fallback below).
//! - Nothing here can hang a request: every Redis call has a short deadline.
//! - When Redis cannot be reached the gateway **keeps serving on its local counters** (fail
//!   open) and says so: a warning in the log when it goes and when it comes back,
//!   `shared.up = false` in `/api/status`, `switchyard_shared_up 0` in `/metrics`. While it
//!   is gone each replica enforces the limits on its own, so together they can spend up to
//!   replicas × the free quota; what was spent meanwhile is not added to Redis afterwards.
//!   Refusing every request instead would turn a cache outage into a full outage of free and
//!   local lanes alike, which is the worse failure for a gateway whose job is to answer.

use redis::aio::ConnectionManager;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Deadline of one Redis call on the request path. Only the first request after Redis went
/// away can pay it: while it is down, requests do not ask it (see [`Shared::is_up`]).
const DEADLINE: Duration = Duration::from_secs(1);

/// Checks parks, then every window; takes the amounts only if all fit. Returns `{0}` when
/// taken, `{-1, park_index, 'until|outcome'}` when a budget is parked, `{window_index, used,
/// frees_at}` when a window is full. As the local count does, a request larger than a whole
/// token window is let through when the window is empty (the provider decides), and charged
/// in full.
const RESERVE: &str = r"
local now = tonumber(ARGV[1])
local nw = tonumber(ARGV[2])
for i = nw + 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    local sep = string.find(v, '|', 1, true)
    local u = tonumber(sep and string.sub(v, 1, sep - 1) or v)
    if u and u > now then return {-1, i - nw, v} end
  end
end
local drops = {}
for i = 1, nw do
  local b = 2 + (i - 1) * 6
  local limit = tonumber(ARGV[b + 1])
  local amount = tonumber(ARGV[b + 2])
  local n = tonumber(ARGV[b + 3])
  local width = tonumber(ARGV[b + 4])
  local slot = tonumber(ARGV[b + 5])
  local period_end = tonumber(ARGV[b + 6])
  local h = redis.call('HGETALL', KEYS[i])
  local used = 0
  local live = {}
  local dead = {}
  for j = 1, #h, 2 do
    local t = tonumber(h[j])
    local v = tonumber(h[j + 1])
    local alive
    if n > 0 then alive = (t + width + n > now) else alive = (t == slot) end
    if alive then
      used = used + v
      live[#live + 1] = {t, v}
    else
      dead[#dead + 1] = h[j]
    end
  end
  drops[i] = dead
  local need = amount
  if need > limit then need = limit end
  if used + need > limit then
    local free = period_end
    if n > 0 then
      table.sort(live, function(a, c) return a[1] < c[1] end)
      free = now + n
      local u = used
      for _, p in ipairs(live) do
        u = u - p[2]
        if u + need <= limit then
          free = p[1] + width + n
          break
        end
      end
    end
    return {i, used, tostring(free)}
  end
end
for i = 1, nw do
  local b = 2 + (i - 1) * 6
  local amount = tonumber(ARGV[b + 2])
  local n = tonumber(ARGV[b + 3])
  local width = tonumber(ARGV[b + 4])
  local period_end = tonumber(ARGV[b + 6])
  if #drops[i] > 0 then redis.call('HDEL', KEYS[i], unpack(drops[i])) end
  if amount > 0 then redis.call('HINCRBY', KEYS[i], ARGV[b + 5], amount) end
  local ttl = n + width + 1000
  if n == 0 then ttl = period_end - now + 3600000 end
  if ttl < 1000 then ttl = 1000 end
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return {0}
";

/// Adds a (possibly negative) correction to the slots a reservation took, where they still
/// exist (a slot that has left its window is not brought back, and no key without expiry is
/// made).
const SETTLE: &str = r"
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[2 * i - 1]) == 1 then
    local v = redis.call('HINCRBY', KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])
    if v <= 0 then redis.call('HDEL', KEYS[i], ARGV[2 * i - 1]) end
  end
end
return 0
";

/// One window of a budget, as the Lua script counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWindow {
    pub key: String,
    /// `rpd`, `tpm` … for the refusal's wording.
    pub name: &'static str,
    pub budget: String,
    pub limit: u64,
    pub amount: u64,
    pub tokens: bool,
    /// Sliding windows: their length; 0 for a clock window.
    pub sliding_ms: i64,
    pub slot_width_ms: i64,
    /// The slot this use is filed under (sliding) or the period's start (clock).
    pub slot: i64,
    /// Clock windows: when the period ends.
    pub period_end: i64,
}

/// What a shared reservation took, to correct once the real token count is known.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedHold {
    windows: Vec<(String, i64, bool)>,
    requests: i64,
    tokens: i64,
}

pub enum Reserved {
    Taken(SharedHold),
    /// `(outcome, reason, frees_at_ms)`: `quota` or `cooling_down` (a park's own outcome).
    Refused(&'static str, String, i64),
    /// Redis could not be asked: go on with the local counts.
    Unavailable,
}

pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    reserve: redis::Script,
    settle: redis::Script,
    up: AtomicBool,
    /// When a refused command was last logged (ms).
    logged_ms: std::sync::atomic::AtomicI64,
    /// Lanes whose breaker some replica has open.
    down: RwLock<HashSet<String>>,
    /// Shown in status: the URL without its password.
    pub shown_url: String,
}

impl Shared {
    /// Sets up the client; connects lazily (a Redis that is down at start is not an error).
    pub fn new(url: &str) -> Result<Arc<Shared>, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("storage.shared: `{}` is not a Redis URL: {e}", redact(url)))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(DEADLINE))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_lazy(cfg)
            .map_err(|e| format!("storage.shared: {e}"))?;
        Ok(Arc::new(Shared {
            conn,
            prefix: "switchyard:".into(),
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
            up: AtomicBool::new(true),
            logged_ms: std::sync::atomic::AtomicI64::new(0),
            down: RwLock::new(HashSet::new()),
            shown_url: redact(url),
        }))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A Redis error: a lost connection marks Redis down; an error Redis itself answered
    /// (read-only replica, out of memory, a script error) fails only this call, logged at most
    /// every half minute, so such a Redis does not flap between up and down.
    fn failed(&self, e: &redis::RedisError) {
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() {
            self.mark(false, &e.to_string());
        } else {
            let now = crate::clock::wall_now_ms();
            if now - self.logged_ms.swap(now, Ordering::Relaxed) >= 30_000 {
                tracing::warn!("shared state (Redis) refused a command ({e}); this replica counts on its own for it");
            }
        }
    }

    fn mark(&self, ok: bool, why: &str) {
        if self.up.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::warn!("shared state (Redis) is back: quotas are counted across replicas again");
            } else {
                tracing::warn!(
                    "shared state (Redis) unreachable ({why}): serving on this replica's own counters until it is back"
                );
            }
        }
    }

    pub fn window_key(&self, budget: &str, window: &str) -> String {
        format!("{}q:{budget}:{window}", self.prefix)
    }

    pub fn park_key(&self, budget: &str) -> String {
        format!("{}park:{budget}", self.prefix)
    }

    fn down_key(&self, lane: &str) -> String {
        format!("{}down:{lane}", self.prefix)
    }

    /// Checks and takes every window at once, atomically across replicas. While Redis is
    /// known to be down, does not ask it (the poll notices when it is back).
    pub async fn reserve(&self, windows: &[SharedWindow], parks: &[String], now: i64) -> Reserved {
        if !self.is_up() {
            return Reserved::Unavailable;
        }
        if windows.is_empty() && parks.is_empty() {
            return Reserved::Taken(SharedHold {
                windows: Vec::new(),
                requests: 0,
                tokens: 0,
            });
        }
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(now).arg(windows.len());
        for w in windows {
            inv.key(&w.key);
            inv.arg(w.limit)
                .arg(w.amount)
                .arg(w.sliding_ms)
                .arg(w.slot_width_ms)
                .arg(w.slot)
                .arg(w.period_end);
        }
        for p in parks {
            inv.key(p);
        }
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(DEADLINE, inv.invoke_async::<Vec<redis::Value>>(&mut conn)).await;
        let v = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.failed(&e);
                return Reserved::Unavailable;
            }
            Err(_) => {
                self.mark(false, "no answer within 250 ms");
                return Reserved::Unavailable;
            }
        };
        self.mark(true, "");
        let int = |i: usize| -> i64 {
            match v.get(i) {
                Some(redis::Value::Int(n)) => *n,
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).parse().unwrap_or(0),
                _ => 0,
            }
        };
        match int(0) {
            0 => Reserved::Taken(SharedHold {
                windows: windows.iter().map(|w| (w.key.clone(), w.slot, w.tokens)).collect(),
                requests: 1,
                tokens: windows.iter().find(|w| w.tokens).map_or(0, |w| w.amount as i64),
            }),
            -1 => {
                let value = match v.get(2) {
                    Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                let (until, outcome) = value.split_once('|').unwrap_or((value.as_str(), "quota"));
                let until = until.parse().unwrap_or(now);
                let outcome = crate::quota::Park::outcome_from(outcome);
                let budget = usize::try_from(int(1) - 1)
                    .ok()
                    .and_then(|i| parks.get(i))
                    .map(|k| k.trim_start_matches(&format!("{}park:", self.prefix)).to_owned())
                    .unwrap_or_default();
                let what = if outcome == "cooling_down" {
                    "cooling down (rate limited)"
                } else {
                    "parked"
                };
                Reserved::Refused(
                    outcome,
                    format!(
                        "budget `{budget}` is {what} by another replica until {}",
                        crate::clock::format_utc(until)
                    ),
                    until,
                )
            }
            i => {
                let w = usize::try_from(i - 1).ok().and_then(|i| windows.get(i));
                let (used, frees) = (int(1), int(2));
                match w {
                    Some(w) => Reserved::Refused(
                        "quota",
                        format!(
                            "budget `{}`: {used} of {} {} used across replicas; frees up {}",
                            w.budget,
                            w.limit,
                            w.name,
                            crate::clock::format_utc(frees)
                        ),
                        frees,
                    ),
                    None => Reserved::Unavailable,
                }
            }
        }
    }

    /// Corrects a reservation once the attempt is over: a request that never reached the
    /// provider gives everything back; otherwise the tokens become the real count. Off the
    /// request path.
    pub fn settle(self: &Arc<Self>, hold: SharedHold, reached: bool, tokens: Option<u64>) {
        let (req_delta, tok_delta) = if !reached {
            (-hold.requests, -hold.tokens)
        } else {
            (0, tokens.map_or(0, |t| t.min(1 << 40) as i64 - hold.tokens))
        };
        if hold.windows.is_empty() || (req_delta == 0 && tok_delta == 0) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut inv = this.settle.prepare_invoke();
            for (key, slot, is_tokens) in &hold.windows {
                let d = if *is_tokens { tok_delta } else { req_delta };
                if d != 0 {
                    inv.key(key);
                    inv.arg(slot).arg(d);
                }
            }
            let mut conn = this.conn.clone();
            if let Ok(Err(e)) = tokio::time::timeout(DEADLINE * 4, inv.invoke_async::<i64>(&mut conn)).await {
                this.failed(&e);
            }
        });
    }

    /// Tells the other replicas a budget is parked until `until_ms` (`outcome`: `quota` or
    /// `cooling_down`).
    pub fn park(self: &Arc<Self>, budget: &str, until_ms: i64, outcome: &str, now_ms: i64) {
        let ttl = until_ms - now_ms;
        if ttl <= 0 {
            return;
        }
        let (this, key, outcome) = (self.clone(), self.park_key(budget), outcome.to_owned());
        tokio::spawn(async move {
            let mut conn = this.conn.clone();
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(format!("{until_ms}|{outcome}")).arg("PX").arg(ttl);
            if let Ok(Err(e)) = tokio::time::timeout(DEADLINE * 4, set.query_async::<()>(&mut conn)).await {
                this.failed(&e);
            }
        });
    }

    /// A breaker opened (`ttl`: its longest cool-down) or closed on this replica.
    pub fn lane_state(self: &Arc<Self>, lane: &str, down: bool, ttl: Duration) {
        if let Ok(mut d) = self.down.write() {
            if down {
                d.insert(lane.to_owned());
            } else {
                d.remove(lane);
            }
        }
        let (this, key) = (self.clone(), self.down_key(lane));
        tokio::spawn(async move {
            let mut conn = this.conn.clone();
            let cmd = if down {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1000) as u64)
                    .clone()
            } else {
                redis::cmd("DEL").arg(&key).clone()
            };
            let _ = tokio::time::timeout(DEADLINE * 4, cmd.query_async::<()>(&mut conn)).await;
        });
    }

    fn clear_down(&self) {
        if let Ok(mut d) = self.down.write() {
            d.clear();
        }
    }

    /// Is the lane's breaker open on some replica (as of the last poll)?
    pub fn is_down(&self, lane: &str) -> bool {
        self.down.read().is_ok_and(|d| d.contains(lane))
    }

    /// Reads which lanes are down on any replica; also how Redis coming back is noticed.
    pub async fn poll(&self, lanes: &[String]) {
        if lanes.is_empty() {
            return;
        }
        let keys: Vec<String> = lanes.iter().map(|l| self.down_key(l)).collect();
        let mut conn = self.conn.clone();
        let got = tokio::time::timeout(
            DEADLINE * 4,
            redis::cmd("MGET")
                .arg(&keys)
                .query_async::<Vec<Option<String>>>(&mut conn),
        )
        .await;
        match got {
            Ok(Ok(v)) => {
                self.mark(true, "");
                let down: HashSet<String> = lanes
                    .iter()
                    .zip(v)
                    .filter(|(_, v)| v.is_some())
                    .map(|(l, _)| l.clone())
                    .collect();
                if let Ok(mut d) = self.down.write() {
                    *d = down;
                }
            }
            // Unknown: no lane is held down on another replica's word meanwhile.
            Ok(Err(e)) => {
                self.clear_down();
                self.failed(&e);
            }
            Err(_) => {
                self.clear_down();
                self.mark(false, "no answer within 4 s");
            }
        }
    }
}

/// `redis://:secret@host:6379/0` → `redis://:***@host:6379/0`; a `password=` query
/// parameter (`postgres://h/db?password=…`) is masked too.
pub fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let cred = &url[s + 3..at];
            let user = cred.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[expect(clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    /// The machine's Redis (127.0.0.1:6379); `None` (skipped) when it is not there, unless
    /// SWITCHYARD_REQUIRE_SERVICES is set.
    async fn redis() -> Option<Arc<Shared>> {
        let s = Shared::new("redis://127.0.0.1:6379").ok()?;
        let mut conn = s.conn.clone();
        let ping = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        if !matches!(ping, Ok(Ok(_))) {
            assert!(
                std::env::var_os("SWITCHYARD_REQUIRE_SERVICES").is_none(),
                "Redis on 127.0.0.1:6379 is required"
            );
            return None;
        }
        Some(s)
    }

    fn window(
        s: &Shared,
        budget: &str,
        name: &'static str,
        limit: u64,
        amount: u64,
        now: i64,
        sliding: i64,
    ) -> SharedWindow {
        let width = (sliding / 60).max(1);
        SharedWindow {
            key: s.window_key(budget, name),
            name,
            budget: budget.into(),
            limit,
            amount,
            tokens: name.starts_with('t'),
            sliding_ms: sliding,
            slot_width_ms: if sliding > 0 { width } else { 0 },
            slot: if sliding > 0 { now - now.rem_euclid(width) } else { 0 },
            period_end: if sliding > 0 { 0 } else { now + 3_600_000 },
        }
    }

    #[tokio::test]
    async fn windows_are_taken_together_refused_with_a_time_and_given_back() {
        let Some(s) = redis().await else { return };
        let budget = format!("test-{}-{}", std::process::id(), crate::clock::wall_now_ms());
        let now = crate::clock::wall_now_ms();
        let plan = |amount_tokens: u64| {
            vec![
                window(&s, &budget, "rpm", 3, 1, now, 60_000),
                window(&s, &budget, "tpd", 1000, amount_tokens, now, 0),
            ]
        };
        let mut holds = Vec::new();
        for _ in 0..3 {
            match s.reserve(&plan(100), &[], now).await {
                Reserved::Taken(h) => holds.push(h),
                _ => panic!("the first three fit"),
            }
        }
        match s.reserve(&plan(100), &[], now).await {
            Reserved::Refused(outcome, why, frees) => {
                assert_eq!(outcome, "quota");
                assert!(why.contains("3 of 3 rpm used across replicas"), "{why}");
                // The oldest use leaves the sliding minute at its slot's end plus a minute.
                assert!(frees > now + 59_000 && frees <= now + 61_000, "{frees} vs {now}");
            }
            _ => panic!("the fourth must be refused"),
        }
        // Nothing was taken by the refusal: tokens still 300 of 1000. A request that never
        // reached the provider gives its request and tokens back.
        let h = holds.pop().unwrap_or_else(|| unreachable!());
        s.settle(h, false, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            matches!(s.reserve(&plan(800), &[], now).await, Reserved::Taken(_)),
            "a request was given back (2 of 3 rpm), and 300 - 100 + 800 tokens fit 1000"
        );
        match s
            .reserve(&[window(&s, &budget, "tpd", 1000, 1, now, 0)], &[], now)
            .await
        {
            Reserved::Refused(_, why, _) => assert!(why.contains("1000 of 1000 tpd"), "{why}"),
            _ => panic!("tpd is full"),
        }
        // A request larger than a whole token window goes through when the window is empty
        // (as the local count lets it: the provider decides), charged in full.
        let big = format!("{budget}-big");
        let tpm = |amount| [window(&s, &big, "tpm", 100, amount, now, 60_000)];
        assert!(matches!(s.reserve(&tpm(500), &[], now).await, Reserved::Taken(_)));
        assert!(matches!(s.reserve(&tpm(1), &[], now).await, Reserved::Refused(..)));
        // A park set by one replica is seen by the next reservation.
        s.park(&budget, now + 60_000, "cooling_down", now);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let parks = [s.park_key(&budget)];
        match s.reserve(&[], &parks, now).await {
            Reserved::Refused(outcome, why, until) => {
                assert_eq!(outcome, "cooling_down");
                assert!(why.contains("cooling down (rate limited) by another replica"), "{why}");
                assert_eq!(until, now + 60_000);
            }
            _ => panic!("parked"),
        }
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.2:6379/0"),
            "redis://:***@10.0.0.2:6379/0"
        );
        assert_eq!(redact("redis://app:hunter2@h/1"), "redis://app:***@h/1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("postgres://h/db?sslmode=disable&password=hunter2"),
            "postgres://h/db?sslmode=disable&password=***"
        );
    }
}
