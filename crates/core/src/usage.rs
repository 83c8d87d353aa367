//! Reports over the ledger: usage per lane, route, day or provider (requests, tokens, cost,
//! the share answered locally, fallbacks and why), a time series per lane, and pages of
//! recent requests with their attempt trails. `switchyard usage` and `/api/usage`,
//! `/api/series`, `/api/requests` are views of these.
//!
//! Read-only: a report opens the database without migrating it, so an older ledger (without
//! the `cost_usd` or `local` columns) reads as unknown cost and not local, and a missing file
//! is an empty report. What a fallback is stays [`ledger::fallback_from`]'s to say: attempts
//! are loaded here and judged in Rust, never re-defined in SQL.

use crate::clock;
use crate::ledger::{self, AttemptRecord, Reader, RequestRecord};
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

const SECOND_MS: i64 = 1000;
const DAY_MS: i64 = 86_400_000;

/// The key of a row, when the request has none (no lane answered, no route was found).
pub const NONE_KEY: &str = "(none)";

/// The most buckets a series has; a finer step is widened to fit.
pub const MAX_BUCKETS: i64 = 500;

/// The widest step a caller may ask a series for (366 days); `/api/series` refuses more. A
/// longer period still gets a wider step, to keep within [`MAX_BUCKETS`].
pub const MAX_STEP_MS: i64 = 366 * DAY_MS;

/// What a usage report's rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The lane that answered.
    Lane,
    /// The route the request took.
    Route,
    /// The UTC day the request started.
    Day,
    /// The provider of the lane that answered.
    Provider,
}

impl By {
    pub const NAMES: &'static str = "lane, route, day or provider";

    pub fn as_str(self) -> &'static str {
        match self {
            By::Lane => "lane",
            By::Route => "route",
            By::Day => "day",
            By::Provider => "provider",
        }
    }
}

impl std::str::FromStr for By {
    type Err = String;

    fn from_str(s: &str) -> Result<By, String> {
        match s {
            "lane" => Ok(By::Lane),
            "route" => Ok(By::Route),
            "day" => Ok(By::Day),
            "provider" => Ok(By::Provider),
            _ => Err(format!("cannot group by `{s}`: use {}", By::NAMES)),
        }
    }
}

const SINCE_FORMS: &str = "a time back from now (90s, 30m, 24h, 7d, 2w), a UTC date (2026-11-20, from its \
                           midnight) or a time (2026-11-20T10:00:00Z, 2026-11-20T10:00+02:00)";

/// The start of a report: `24h`, `7d`, `30m`, `90s`, `2w` back from `now_ms`, a date
/// (`2026-11-20`, its UTC midnight) or an RFC 3339 time (`2026-11-20T10:00:00Z`; the `T` may
/// be a space, seconds and the zone may be left out, a missing zone is UTC).
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("cannot read `{s}` as a time: use {SINCE_FORMS}");
    if t.is_empty() {
        return Err(bad());
    }
    // `24h`: digits, then one letter. Anything else is a date or a time.
    let duration = t
        .char_indices()
        .last()
        .filter(|(i, c)| *i > 0 && c.is_ascii_alphabetic() && t[..*i].bytes().all(|b| b.is_ascii_digit()));
    if let Some((i, unit)) = duration {
        let digits = &t[..i];
        let unit_ms = match unit {
            's' => SECOND_MS,
            'm' => 60 * SECOND_MS,
            'h' => 3600 * SECOND_MS,
            'd' => DAY_MS,
            'w' => 7 * DAY_MS,
            _ => return Err(bad()),
        };
        let back = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .ok_or_else(|| format!("`{s}` is too far back"))?;
        return Ok(now_ms.saturating_sub(back));
    }
    parse_time(t).ok_or_else(bad)
}

/// `YYYY-MM-DD`, optionally followed by `T` (or a space), `HH:MM[:SS[.fff]]` and `Z` or
/// `±HH:MM`.
fn parse_time(t: &str) -> Option<i64> {
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = if t.len() > 10 {
        (t.get(..10)?, Some(t.get(10..)?))
    } else {
        (t, None)
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&m) || day < 1 || day > days_in_month(y, m as u32) {
        return None;
    }
    let midnight = clock::days_from_civil(y, m as u32, day as u32) * DAY_MS;
    let Some(rest) = rest else {
        return Some(midnight);
    };
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    // The zone: `Z`, `±HH:MM`, or nothing (UTC).
    let (clock_part, offset_ms) = if let Some(c) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        (c, 0)
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, z) = rest.split_at(rest.len() - 6);
        let (zh, zm) = (num(z.get(1..3)?, 2)?, num(z.get(4..6)?, 2)?);
        if z.as_bytes()[3] != b':' || zh > 23 || zm > 59 {
            return None;
        }
        let sign = if z.starts_with('-') { -1 } else { 1 };
        (c, sign * (zh * 60 + zm) * 60 * SECOND_MS)
    } else {
        (rest, 0)
    };
    let mut parts = clock_part.split(':');
    let (h, min) = (num(parts.next()?, 2)?, num(parts.next()?, 2)?);
    let (sec, frac_ms) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if !frac.bytes().all(|b| b.is_ascii_digit()) || (sec.contains('.') && frac.is_empty()) {
                return None;
            }
            let ms = format!("{frac:0<3}").get(..3)?.parse::<i64>().ok()?;
            (num(whole, 2)?, ms)
        }
    };
    if parts.next().is_some() || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(midnight + ((h * 60 + min) * 60 + sec) * SECOND_MS + frac_ms - offset_ms)
}

fn days_in_month(y: i64, m: u32) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    clock::days_from_civil(ny, nm, 1) - clock::days_from_civil(y, m, 1)
}

/// `2026-11-20`: the UTC date of a time.
pub fn utc_date(ms: i64) -> String {
    let (y, m, d) = clock::civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// One group of requests (or the total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    /// Every request in the period.
    pub requests: u64,
    /// Answered in full (`status` ok).
    pub ok: u64,
    /// Failed or abandoned by the client.
    pub errors: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Dollars spent; free lanes and unknown prices count as 0.
    pub cost_usd: f64,
    /// Of the requests some lane answered, the share a local lane answered (0 when none).
    pub local_share: f64,
    /// Requests that went on to another lane after one failed or was unavailable.
    pub fallbacks: u64,
    #[serde(skip)]
    answered: u64,
    #[serde(skip)]
    answered_locally: u64,
}

impl Row {
    fn new(key: String) -> Row {
        Row { key, ..Row::default() }
    }

    fn add(&mut self, r: &Req, fell_back: bool) {
        self.requests += 1;
        if r.status == "ok" {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
        self.tokens_in += r.tokens_in;
        self.tokens_out += r.tokens_out;
        self.cost_usd += r.cost_usd;
        if r.lane.is_some() {
            self.answered += 1;
            self.answered_locally += u64::from(r.local);
        }
        self.fallbacks += u64::from(fell_back);
    }

    fn finish(&mut self) {
        self.local_share = if self.answered == 0 {
            0.0
        } else {
            self.answered_locally as f64 / self.answered as f64
        };
        // Sums of many small prices: keep the JSON free of float noise (0.30000000000000004).
        self.cost_usd = (self.cost_usd * 1e9).round() / 1e9;
    }
}

/// How often a lane failed a request that then went on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackReason {
    /// The lane that failed or was unavailable.
    pub lane: String,
    /// Its outcome: an error class (`connect`, `unavailable`, `rate_limited` …) or a skip
    /// (`breaker_open`, `quota`, `cooling_down` …).
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: By,
    pub total: Row,
    pub rows: Vec<Row>,
    pub fallback_reasons: Vec<FallbackReason>,
}

/// One request as a report needs it.
struct Req {
    ts_ms: i64,
    route: Option<String>,
    lane: Option<String>,
    status: String,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
    local: bool,
    attempts: Vec<AttemptRecord>,
}

impl Req {
    fn key(&self, by: By) -> String {
        let or_none = |k: Option<&str>| k.unwrap_or(NONE_KEY).to_owned();
        match by {
            By::Lane => or_none(self.lane.as_deref()),
            By::Route => or_none(self.route.as_deref()),
            By::Day => utc_date(self.ts_ms),
            By::Provider => or_none(
                self.lane
                    .as_deref()
                    .and_then(|lane| self.attempts.iter().rev().find(|a| a.lane == lane && a.outcome == "ok"))
                    .map(|a| a.provider.as_str()),
            ),
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Option<Connection>> {
    if !path.exists() {
        return Ok(None);
    }
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map(Some)
}

/// Calls `each` for every request with `since_ms <= ts_ms <= until_ms`, oldest first, with
/// its attempts. One pass over one query: memory stays flat however long the period.
fn for_each_request(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    mut each: impl FnMut(Req),
) -> rusqlite::Result<()> {
    let cost = if ledger::has_column(conn, "requests", "cost_usd")? {
        "r.cost_usd"
    } else {
        "NULL"
    };
    let local = if ledger::has_column(conn, "requests", "local")? {
        "r.local"
    } else {
        "0"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT r.id, r.ts_ms, r.route, r.lane, r.status, r.tokens_in, r.tokens_out, {cost}, {local}, \
                a.lane, a.provider, a.outcome \
         FROM requests r LEFT JOIN attempts a ON a.request_id = r.id \
         WHERE r.ts_ms BETWEEN ?1 AND ?2 ORDER BY r.ts_ms, r.id, a.seq"
    ))?;
    let mut rows = stmt.query(params![since_ms, until_ms])?;
    let mut current: Option<(String, Req)> = None;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        if current.as_ref().is_none_or(|(c, _)| *c != id) {
            if let Some((_, done)) = current.take() {
                each(done);
            }
            let count =
                |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64) };
            current = Some((
                id,
                Req {
                    ts_ms: row.get(1)?,
                    route: row.get(2)?,
                    lane: row.get(3)?,
                    status: row.get(4)?,
                    tokens_in: count(5)?,
                    tokens_out: count(6)?,
                    cost_usd: row.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                    local: row.get::<_, Option<bool>>(8)?.unwrap_or(false),
                    attempts: Vec::new(),
                },
            ));
        }
        if let (Some((_, req)), Some(lane)) = (current.as_mut(), row.get::<_, Option<String>>(9)?) {
            req.attempts.push(AttemptRecord {
                lane,
                provider: row.get(10)?,
                outcome: row.get(11)?,
                ..AttemptRecord::default()
            });
        }
    }
    if let Some((_, done)) = current {
        each(done);
    }
    Ok(())
}

/// Usage from `since_ms` to `until_ms` (both included), grouped `by`. Rows come by requests,
/// most first (by day: oldest day first); a missing database is an empty report.
pub fn report(path: &Path, since_ms: i64, until_ms: i64, by: By) -> rusqlite::Result<UsageReport> {
    let mut agg = Agg::new(by);
    if let Some(conn) = open(path)? {
        for_each_request(&conn, since_ms, until_ms, |r| agg.add(&r))?;
    }
    Ok(agg.finish(since_ms, until_ms))
}

/// [`report`], [`series`] and [`requests`] from wherever the ledger is (SQLite off the async
/// threads, or PostgreSQL).
pub async fn report_from(reader: &Reader, since_ms: i64, until_ms: i64, by: By) -> Result<UsageReport, String> {
    match reader {
        Reader::Sqlite(path) => {
            let path = path.clone();
            ledger::blocking(move || report(&path, since_ms, until_ms, by)).await
        }
        Reader::Postgres(pool) => {
            let rows = crate::pg::requests_between(pool, since_ms, until_ms)
                .await
                .map_err(|e| e.to_string())?;
            let mut agg = Agg::new(by);
            for r in rows {
                agg.add(&Req {
                    ts_ms: r.ts_ms,
                    route: r.route,
                    lane: r.lane,
                    status: r.status,
                    tokens_in: r.tokens_in.unwrap_or(0),
                    tokens_out: r.tokens_out.unwrap_or(0),
                    cost_usd: r.cost_usd.unwrap_or(0.0),
                    local: r.local,
                    attempts: r.attempts,
                });
            }
            Ok(agg.finish(since_ms, until_ms))
        }
    }
}

pub async fn series_from(reader: &Reader, since_ms: i64, until_ms: i64, step_ms: i64) -> Result<Series, String> {
    match reader {
        Reader::Sqlite(path) => {
            let path = path.clone();
            ledger::blocking(move || series(&path, since_ms, until_ms, step_ms)).await
        }
        Reader::Postgres(pool) => {
            let step_ms = series_step(since_ms, until_ms, step_ms);
            let points = crate::pg::series_points(pool, since_ms, until_ms, step_ms, NONE_KEY)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(t, lane, n, i, o)| Point {
                    t,
                    lane,
                    requests: n.max(0) as u64,
                    tokens_in: i.max(0) as u64,
                    tokens_out: o.max(0) as u64,
                })
                .collect();
            Ok(series_of(since_ms, until_ms, step_ms, points))
        }
    }
}

pub async fn requests_from(
    reader: &Reader,
    limit: i64,
    before: Option<(i64, Option<String>)>,
) -> Result<Vec<RequestRecord>, String> {
    reader.recent_before(limit, before).await
}

/// Adds requests up into a report.
struct Agg {
    by: By,
    total: Row,
    groups: HashMap<String, Row>,
    reasons: HashMap<(String, String), u64>,
}

impl Agg {
    fn new(by: By) -> Agg {
        Agg {
            by,
            total: Row::new("total".into()),
            groups: HashMap::new(),
            reasons: HashMap::new(),
        }
    }

    fn add(&mut self, r: &Req) {
        let from = ledger::fallback_from(&r.attempts);
        if let Some(a) = from {
            *self.reasons.entry((a.lane.clone(), a.outcome.clone())).or_default() += 1;
        }
        self.total.add(r, from.is_some());
        let key = r.key(self.by);
        self.groups
            .entry(key)
            .or_insert_with_key(|k| Row::new(k.clone()))
            .add(r, from.is_some());
    }

    fn finish(self, since_ms: i64, until_ms: i64) -> UsageReport {
        let Agg {
            by,
            mut total,
            groups,
            reasons,
        } = self;
        total.finish();
        let mut rows: Vec<Row> = groups.into_values().collect();
        rows.iter_mut().for_each(Row::finish);
        match by {
            By::Day => rows.sort_by(|a, b| a.key.cmp(&b.key)),
            _ => rows.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key))),
        }
        let mut fallback_reasons: Vec<FallbackReason> = reasons
            .into_iter()
            .map(|((lane, reason), count)| FallbackReason { lane, reason, count })
            .collect();
        fallback_reasons.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.lane.cmp(&b.lane))
                .then_with(|| a.reason.cmp(&b.reason))
        });
        UsageReport {
            since_ms,
            until_ms,
            by,
            total,
            rows,
            fallback_reasons,
        }
    }
}

/// Requests and tokens of one lane in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// The bucket's start: a multiple of the step since the Unix epoch.
    pub t: i64,
    pub lane: String,
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    pub since_ms: i64,
    pub until_ms: i64,
    /// The bucket width actually used (widened so there are at most [`MAX_BUCKETS`]).
    pub step_ms: i64,
    /// Every lane with a point, most requests first.
    pub lanes: Vec<String>,
    /// Non-empty buckets only, by time, then lane.
    pub points: Vec<Point>,
}

/// The step a series uses: at least a second, at most [`MAX_STEP_MS`] unless the period needs
/// more, widened so `[since, until]` spans at most [`MAX_BUCKETS`] buckets.
pub fn series_step(since_ms: i64, until_ms: i64, step_ms: i64) -> i64 {
    let span = until_ms.saturating_sub(since_ms).max(0);
    // With the epoch alignment a span of n steps touches up to n + 2 buckets.
    let widest = span / (MAX_BUCKETS - 1) + 1;
    // Whole seconds: charts label buckets in seconds and a finer step is never wanted. The
    // step is at most about i64::MAX / 499 here, so rounding it up and the SQL's
    // `ts_ms % step + step` stay far from overflowing (SQLite would turn them into floats).
    let step = step_ms.clamp(SECOND_MS, MAX_STEP_MS).max(widest);
    let seconds = step / SECOND_MS + i64::from(step % SECOND_MS != 0);
    seconds.saturating_mul(SECOND_MS)
}

/// Requests and tokens per lane per `step_ms` from `since_ms` to `until_ms` (both included).
/// Requests no lane answered are under `(none)`.
pub fn series(path: &Path, since_ms: i64, until_ms: i64, step_ms: i64) -> rusqlite::Result<Series> {
    let step_ms = series_step(since_ms, until_ms, step_ms);
    let mut points = Vec::new();
    if let Some(conn) = open(path)? {
        // Plain sums over plain columns: no fallback judgement involved, so SQL may group.
        let mut stmt = conn.prepare(
            "SELECT (ts_ms - (ts_ms % ?3 + ?3) % ?3) AS t, coalesce(lane, ?4), count(*), \
                    sum(max(coalesce(tokens_in, 0), 0)), sum(max(coalesce(tokens_out, 0), 0)) \
             FROM requests WHERE ts_ms BETWEEN ?1 AND ?2 GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        let rows = stmt.query_map(params![since_ms, until_ms, step_ms, NONE_KEY], |r| {
            Ok(Point {
                t: r.get(0)?,
                lane: r.get(1)?,
                requests: r.get::<_, i64>(2)?.max(0) as u64,
                tokens_in: r.get::<_, i64>(3)?.max(0) as u64,
                tokens_out: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })?;
        points = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    }
    Ok(series_of(since_ms, until_ms, step_ms, points))
}

fn series_of(since_ms: i64, until_ms: i64, step_ms: i64, points: Vec<Point>) -> Series {
    let mut per_lane: HashMap<&str, u64> = HashMap::new();
    for p in &points {
        *per_lane.entry(p.lane.as_str()).or_default() += p.requests;
    }
    let mut lanes: Vec<(&str, u64)> = per_lane.into_iter().collect();
    lanes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let lanes = lanes.into_iter().map(|(l, _)| l.to_owned()).collect();
    Series {
        since_ms,
        until_ms,
        step_ms,
        lanes,
        points,
    }
}

/// The newest `limit` requests before `before` (all when `None`; see [`ledger::Before`]),
/// newest first, with their attempts.
pub fn requests(path: &Path, limit: i64, before: Option<ledger::Before<'_>>) -> rusqlite::Result<Vec<RequestRecord>> {
    ledger::recent_before(path, limit, before)
}

/// `/api/requests`: a page of requests as the dashboard shows them.
#[derive(Debug, Clone, Serialize)]
pub struct RequestsPage {
    pub requests: Vec<RequestView>,
}

impl RequestsPage {
    pub fn new(records: &[RequestRecord]) -> RequestsPage {
        RequestsPage {
            requests: records.iter().map(RequestView::from).collect(),
        }
    }
}

/// One request with its attempt trail. The caller is the short hash of its key, never a key.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: String,
    pub ts_ms: i64,
    pub caller: Option<String>,
    pub route: Option<String>,
    pub lane: Option<String>,
    pub model: String,
    pub status: String,
    pub error_class: Option<String>,
    pub http_status: u16,
    pub stream: bool,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub ttft_ms: Option<f64>,
    pub duration_ms: f64,
    pub cost_usd: Option<f64>,
    pub local: bool,
    pub fallback: Option<FallbackView>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackView {
    pub lane: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub lane: String,
    pub provider: String,
    pub outcome: String,
    pub http_status: Option<u16>,
    pub ttft_ms: Option<f64>,
    pub duration_ms: f64,
    pub detail: Option<String>,
}

impl From<&RequestRecord> for RequestView {
    fn from(r: &RequestRecord) -> RequestView {
        RequestView {
            id: r.id.clone(),
            ts_ms: r.ts_ms,
            caller: r.caller.clone(),
            route: r.route.clone(),
            lane: r.lane.clone(),
            model: r.model.clone(),
            status: r.status.clone(),
            error_class: r.error_class.clone(),
            http_status: r.http_status,
            stream: r.stream,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            ttft_ms: r.ttft_ms,
            duration_ms: r.duration_ms,
            cost_usd: r.cost_usd,
            local: r.local,
            fallback: ledger::fallback_from(&r.attempts).map(|a| FallbackView {
                lane: a.lane.clone(),
                reason: a.outcome.clone(),
            }),
            attempts: r
                .attempts
                .iter()
                .map(|a| AttemptView {
                    lane: a.lane.clone(),
                    provider: a.provider.clone(),
                    outcome: a.outcome.clone(),
                    http_status: a.http_status,
                    ttft_ms: a.ttft_ms,
                    duration_ms: a.duration_ms,
                    detail: a.detail.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;
    use crate::ledger::Ledger;

    const HOUR: i64 = 3_600_000;

    fn day0() -> i64 {
        clock::days_from_civil(2026, 11, 20) * DAY_MS
    }

    fn att(lane: &str, provider: &str, outcome: &str) -> AttemptRecord {
        AttemptRecord {
            lane: lane.into(),
            provider: provider.into(),
            outcome: outcome.into(),
            duration_ms: 1.0,
            ..AttemptRecord::default()
        }
    }

    #[expect(clippy::too_many_arguments, reason = "a table of test rows")]
    fn req(
        id: &str,
        ts_ms: i64,
        route: Option<&str>,
        lane: Option<&str>,
        status: &str,
        tokens: (Option<u64>, Option<u64>),
        cost_usd: Option<f64>,
        local: bool,
        attempts: Vec<AttemptRecord>,
    ) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            ts_ms,
            caller: Some("key:0123abcd".into()),
            dialect: "openai".into(),
            model: "default".into(),
            route: route.map(Into::into),
            lane: lane.map(Into::into),
            status: status.into(),
            http_status: if status == "ok" { 200 } else { 503 },
            tokens_in: tokens.0,
            tokens_out: tokens.1,
            duration_ms: 5.0,
            cost_usd,
            local,
            attempts,
            ..RequestRecord::default()
        }
    }

    /// Two days of traffic: l0 is local (provider p0), l1 is a paid cloud lane (p1).
    async fn ledger() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        let (d0, d1) = (day0(), day0() + DAY_MS);
        let ok = "ok";
        for r in [
            // Before the period: never counted.
            req(
                "r0",
                d0 - HOUR,
                Some("default"),
                Some("l0"),
                ok,
                (Some(100), Some(100)),
                None,
                true,
                vec![att("l0", "p0", ok)],
            ),
            // l0 refused the connection, l1 answered: a fallback, and it cost.
            req(
                "r1",
                d0 + HOUR,
                Some("default"),
                Some("l1"),
                ok,
                (Some(7), Some(3)),
                Some(0.002),
                false,
                vec![att("l0", "p0", "connect"), att("l1", "p1", ok)],
            ),
            req(
                "r2",
                d0 + 2 * HOUR,
                Some("default"),
                Some("l0"),
                ok,
                (Some(10), Some(5)),
                None,
                true,
                vec![att("l0", "p0", ok)],
            ),
            // A premium lane passed over by policy is no fallback.
            req(
                "r3",
                d1 + HOUR,
                Some("code"),
                Some("l0"),
                ok,
                (Some(1), Some(1)),
                Some(0.0),
                true,
                vec![att("c", "pc", "premium_not_allowed"), att("l0", "p0", ok)],
            ),
            // Every lane failed: it still fell back from l0.
            req(
                "r4",
                d1 + 2 * HOUR,
                Some("default"),
                None,
                "error",
                (None, None),
                None,
                false,
                vec![att("l0", "p0", "connect"), att("l1", "p1", "unavailable")],
            ),
            // No route at all: no attempts.
            req(
                "r5",
                d1 + 3 * HOUR,
                None,
                None,
                "error",
                (None, None),
                None,
                false,
                vec![],
            ),
            // The client went away after l1 began to answer; l0's breaker was open.
            req(
                "r6",
                d1 + 4 * HOUR,
                Some("default"),
                Some("l1"),
                "client_disconnected",
                (Some(2), None),
                Some(0.001),
                false,
                vec![att("l0", "p0", "breaker_open"), att("l1", "p1", ok)],
            ),
            // The caller's own mistake, on the only lane tried: nowhere to fall back to.
            req(
                "r7",
                d1 + 4 * HOUR + 30 * 60_000,
                Some("default"),
                None,
                "error",
                (None, None),
                None,
                false,
                vec![att("l0", "p0", "bad_request")],
            ),
        ] {
            ledger.record(r);
        }
        ledger.flush().await;
        (dir, path)
    }

    fn keys(r: &UsageReport) -> Vec<(&str, u64)> {
        r.rows.iter().map(|r| (r.key.as_str(), r.requests)).collect()
    }

    fn period() -> (i64, i64) {
        (day0(), day0() + 2 * DAY_MS - 1)
    }

    #[tokio::test]
    async fn by_lane_counts_tokens_cost_local_share_and_fallbacks() {
        let (_dir, path) = ledger().await;
        let (since, until) = period();
        let r = report(&path, since, until, By::Lane).unwrap();
        assert_eq!((r.since_ms, r.until_ms, r.by), (since, until, By::Lane));
        let t = &r.total;
        assert_eq!(
            (
                t.key.as_str(),
                t.requests,
                t.ok,
                t.errors,
                t.tokens_in,
                t.tokens_out,
                t.fallbacks
            ),
            ("total", 7, 3, 4, 20, 9, 3)
        );
        assert_eq!(t.cost_usd, 0.003);
        // Answered: r1, r2, r3, r6; locally: r2, r3.
        assert_eq!(t.local_share, 0.5);
        assert_eq!(keys(&r), [("(none)", 3), ("l0", 2), ("l1", 2)]);
        let l0 = &r.rows[1];
        assert_eq!(
            (l0.ok, l0.errors, l0.local_share, l0.fallbacks, l0.cost_usd),
            (2, 0, 1.0, 0, 0.0)
        );
        assert_eq!((l0.tokens_in, l0.tokens_out), (11, 6));
        let l1 = &r.rows[2];
        assert_eq!(
            (l1.ok, l1.errors, l1.local_share, l1.fallbacks, l1.cost_usd),
            (1, 1, 0.0, 2, 0.003)
        );
        let none = &r.rows[0];
        assert_eq!((none.errors, none.local_share, none.fallbacks), (3, 0.0, 1));
        assert_eq!(
            r.fallback_reasons,
            [
                FallbackReason {
                    lane: "l0".into(),
                    reason: "connect".into(),
                    count: 2
                },
                FallbackReason {
                    lane: "l0".into(),
                    reason: "breaker_open".into(),
                    count: 1
                },
            ]
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["by"], "lane");
        assert_eq!(
            json["rows"][1],
            serde_json::json!({"key": "l0", "requests": 2, "ok": 2, "errors": 0, "tokens_in": 11, "tokens_out": 6,
                               "cost_usd": 0.0, "local_share": 1.0, "fallbacks": 0})
        );
        assert_eq!(
            json["fallback_reasons"][0],
            serde_json::json!({"lane": "l0", "reason": "connect", "count": 2})
        );
    }

    #[tokio::test]
    async fn by_route_day_and_provider() {
        let (_dir, path) = ledger().await;
        let (since, until) = period();
        let r = report(&path, since, until, By::Route).unwrap();
        assert_eq!(keys(&r), [("default", 5), ("(none)", 1), ("code", 1)]);
        assert_eq!(r.rows[0].fallbacks, 3);

        let r = report(&path, since, until, By::Day).unwrap();
        assert_eq!(keys(&r), [("2026-11-20", 2), ("2026-11-21", 5)]);
        assert_eq!((r.rows[0].cost_usd, r.rows[1].cost_usd), (0.002, 0.001));
        assert_eq!((r.rows[0].local_share, r.rows[1].local_share), (0.5, 0.5));

        // The provider of the attempt that answered, not of the first one tried.
        let r = report(&path, since, until, By::Provider).unwrap();
        assert_eq!(keys(&r), [("(none)", 3), ("p0", 2), ("p1", 2)]);
        assert_eq!(r.rows[2].fallbacks, 2);
        // Every grouping adds up to the same total.
        assert_eq!(r.total, report(&path, since, until, By::Lane).unwrap().total);
    }

    #[tokio::test]
    async fn the_period_bounds_are_kept_and_a_missing_ledger_is_an_empty_report() {
        let (dir, path) = ledger().await;
        let r = report(&path, day0() + DAY_MS, day0() + DAY_MS + 2 * HOUR, By::Lane).unwrap();
        // r3 (d1 + 1h) and r4 (d1 + 2h, the end, included).
        assert_eq!(r.total.requests, 2);
        let r = report(&path, day0() - 2 * HOUR, day0(), By::Lane).unwrap();
        assert_eq!((r.total.requests, r.total.tokens_in), (1, 100));

        let missing = dir.path().join("nothing-here.db");
        let r = report(&missing, 0, i64::MAX, By::Provider).unwrap();
        assert_eq!((r.total.requests, r.rows.len(), r.fallback_reasons.len()), (0, 0, 0));
        assert_eq!(r.total.local_share, 0.0);
        let s = series(&missing, 0, 1000 * HOUR, 60_000).unwrap();
        assert!(s.points.is_empty() && s.lanes.is_empty());
        assert!(requests(&missing, 10, None).unwrap().is_empty());
        assert!(!missing.exists(), "a report must not create the database");
    }

    #[tokio::test]
    async fn a_ledger_without_cost_and_local_columns_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE requests (id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, caller TEXT, dialect TEXT NOT NULL,
                 model TEXT NOT NULL, route TEXT, lane TEXT, status TEXT NOT NULL, error_class TEXT,
                 http_status INTEGER NOT NULL, stream INTEGER NOT NULL, tokens_in INTEGER, tokens_out INTEGER,
                 ttft_ms REAL, duration_ms REAL NOT NULL, attempt_count INTEGER NOT NULL);
             CREATE TABLE attempts (request_id TEXT NOT NULL, seq INTEGER NOT NULL, lane TEXT NOT NULL,
                 provider TEXT NOT NULL, outcome TEXT NOT NULL, http_status INTEGER, ttft_ms REAL,
                 duration_ms REAL NOT NULL, detail TEXT, PRIMARY KEY (request_id, seq));
             INSERT INTO requests VALUES ('r1', 1000, NULL, 'openai', 'default', 'default', 'b', 'ok', NULL, 200, 0, 5, 7, 1.0, 2.0, 2);
             INSERT INTO attempts VALUES ('r1', 0, 'a', 'pa', 'timeout', NULL, NULL, 1.0, NULL);
             INSERT INTO attempts VALUES ('r1', 1, 'b', 'pb', 'ok', 200, 1.0, 2.0, NULL);",
        )
        .unwrap();
        drop(c);
        let r = report(&path, 0, 2000, By::Provider).unwrap();
        assert_eq!(keys(&r), [("pb", 1)]);
        assert_eq!(
            (
                r.total.tokens_out,
                r.total.cost_usd,
                r.total.local_share,
                r.total.fallbacks
            ),
            (7, 0.0, 0.0, 1)
        );
        let page = requests(&path, 10, None).unwrap();
        assert_eq!((page.len(), page[0].cost_usd, page[0].local), (1, None, false));
    }

    #[tokio::test]
    async fn series_buckets_per_lane_and_caps_the_bucket_count() {
        let (_dir, path) = ledger().await;
        let (since, until) = (day0() + DAY_MS, day0() + DAY_MS + 5 * HOUR);
        let s = series(&path, since, until, HOUR).unwrap();
        assert_eq!(s.step_ms, HOUR);
        let d1 = day0() + DAY_MS;
        let pts: Vec<(i64, &str, u64)> = s
            .points
            .iter()
            .map(|p| ((p.t - d1) / HOUR, p.lane.as_str(), p.requests))
            .collect();
        assert_eq!(
            pts,
            [
                (1, "l0", 1),
                (2, "(none)", 1),
                (3, "(none)", 1),
                (4, "(none)", 1),
                (4, "l1", 1)
            ]
        );
        assert_eq!(s.lanes, ["(none)", "l0", "l1"]);
        assert_eq!((s.points[0].tokens_in, s.points[0].tokens_out), (1, 1));
        assert_eq!((s.points[4].tokens_in, s.points[4].tokens_out), (2, 0));

        // Buckets are aligned to the epoch, not to `since`: r3 (d1 + 1h) is in the 1h bucket.
        let s = series(&path, d1 + HOUR + 1, until, HOUR).unwrap();
        assert_eq!(s.points[0].t, d1 + 2 * HOUR, "r3 is before since");
        let s = series(&path, d1, d1 + 2 * HOUR, 2 * HOUR).unwrap();
        assert_eq!(s.points.iter().map(|p| p.t).collect::<Vec<_>>(), [d1, d1 + 2 * HOUR]);

        // A second per bucket over two days would be 172,800 buckets: widened to 500 at most.
        let (since, until) = period();
        let s = series(&path, since, until, 1000).unwrap();
        assert!((until - since) / s.step_ms < MAX_BUCKETS, "{}", s.step_ms);
        assert_eq!(s.step_ms % 1000, 0);
        assert_eq!(s.points.iter().map(|p| p.requests).sum::<u64>(), 7);
        assert_eq!(series_step(0, 3_600_000, 0), 8000);
        assert_eq!(series_step(0, 3_600_000, 60_000), 60_000);
        assert_eq!(series_step(0, 3_600_000, 1500), 8000);
        assert_eq!(series_step(0, 60_000, 1500), 2000);
    }

    fn cursor(r: &RequestRecord) -> ledger::Before<'_> {
        ledger::Before {
            ts_ms: r.ts_ms,
            id: Some(&r.id),
        }
    }

    /// Five requests in one millisecond, paged two at a time: every one is seen once, in
    /// order, and a `ts_ms`-only cursor would have lost three of them.
    #[tokio::test]
    async fn paging_by_time_and_id_keeps_requests_of_the_same_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        let t = day0();
        for (id, ts) in [
            ("a0", t - 1),
            ("b1", t),
            ("b2", t),
            ("b3", t),
            ("b4", t),
            ("b5", t),
            ("c0", t + 1),
        ] {
            ledger.record(req(id, ts, None, None, "ok", (None, None), None, false, vec![]));
        }
        ledger.flush().await;
        let mut seen = Vec::new();
        let mut before: Option<RequestRecord> = None;
        loop {
            let page = requests(&path, 2, before.as_ref().map(cursor)).unwrap();
            let Some(last) = page.last().cloned() else { break };
            seen.extend(page.into_iter().map(|r| r.id));
            before = Some(last);
        }
        assert_eq!(seen, ["c0", "b5", "b4", "b3", "b2", "b1", "a0"]);
        // The millisecond alone skips the rest of that millisecond.
        let ms_only = ledger::Before { ts_ms: t, id: None };
        let ids: Vec<String> = requests(&path, 10, Some(ms_only))
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a0"]);
    }

    #[tokio::test]
    async fn a_huge_step_neither_overflows_nor_exceeds_the_cap() {
        // `?step=9223372036854776` seconds, in ms, saturated: once an overflow in the rounding.
        let asked = 9_223_372_036_854_776_i64.saturating_mul(1000);
        for step in [asked, i64::MAX - 1, MAX_STEP_MS + 1] {
            assert_eq!(series_step(0, 3_600_000, step), MAX_STEP_MS, "{step}");
        }
        let (_dir, path) = ledger().await;
        let (since, until) = period();
        let s = series(&path, since, until, asked).unwrap();
        assert_eq!(s.step_ms, MAX_STEP_MS);
        assert_eq!(s.points.iter().map(|p| p.requests).sum::<u64>(), 7);
        assert!(s.points.iter().all(|p| p.t % MAX_STEP_MS == 0));
        assert_eq!(series_step(i64::MIN, i64::MAX, i64::MAX) % SECOND_MS, 0);
        assert!(
            series_step(i64::MIN, i64::MAX, 1) > MAX_STEP_MS,
            "a huge period still fits in 500 buckets"
        );
        assert_eq!(series_step(5, 0, -7), SECOND_MS);
    }

    #[tokio::test]
    async fn requests_are_newest_first_with_their_trail_and_fallback() {
        let (_dir, path) = ledger().await;
        let page = requests(&path, 3, None).unwrap();
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r7", "r6", "r5"]
        );
        let next = requests(&path, 3, Some(cursor(&page[2]))).unwrap();
        assert_eq!(
            next.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r4", "r3", "r2"]
        );
        // `ts_ms` alone still works, as before ids were part of the cursor.
        let by_ms = ledger::Before {
            ts_ms: page[2].ts_ms,
            id: None,
        };
        assert_eq!(requests(&path, 1, Some(by_ms)).unwrap()[0].id, "r4");

        let json = serde_json::to_value(RequestsPage::new(&page)).unwrap();
        let r6 = &json["requests"][1];
        assert_eq!(
            r6["fallback"],
            serde_json::json!({"lane": "l0", "reason": "breaker_open"})
        );
        assert_eq!(r6["attempts"][1]["provider"], "p1");
        assert_eq!(r6["attempts"][1]["outcome"], "ok");
        assert_eq!(
            (r6["status"].as_str(), r6["cost_usd"].as_f64(), r6["local"].as_bool()),
            (Some("client_disconnected"), Some(0.001), Some(false))
        );
        assert_eq!(r6["caller"], "key:0123abcd");
        assert_eq!(
            json["requests"][0]["fallback"],
            serde_json::Value::Null,
            "a lone bad_request did not fall back"
        );
        let keys: Vec<&str> = r6.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "id",
            "ts_ms",
            "route",
            "lane",
            "model",
            "status",
            "error_class",
            "http_status",
            "stream",
            "tokens_in",
            "tokens_out",
            "ttft_ms",
            "duration_ms",
            "cost_usd",
            "local",
            "fallback",
            "attempts",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn fell_back_needs_a_later_attempt_and_ignores_policy_skips() {
        let ok = att("b", "p", "ok");
        assert_eq!(
            ledger::fallback_from(&[att("a", "p", "connect"), ok.clone()])
                .unwrap()
                .lane,
            "a"
        );
        assert_eq!(ledger::fallback_from(&[att("a", "p", "not_local"), ok.clone()]), None);
        assert_eq!(
            ledger::fallback_from(&[att("a", "p", "quota"), att("b", "p", "timeout")])
                .unwrap()
                .outcome,
            "quota"
        );
        assert_eq!(ledger::fallback_from(&[att("a", "p", "bad_request")]), None);
        assert_eq!(ledger::fallback_from(&[ok]), None);
        assert_eq!(ledger::fallback_from(&[]), None);
    }

    #[test]
    fn since_reads_durations_dates_and_times() {
        let now = day0() + 10 * HOUR;
        assert_eq!(parse_since("24h", now), Ok(now - DAY_MS));
        assert_eq!(parse_since("7d", now), Ok(now - 7 * DAY_MS));
        assert_eq!(parse_since("2w", now), Ok(now - 14 * DAY_MS));
        assert_eq!(parse_since("30m", now), Ok(now - 30 * 60_000));
        assert_eq!(parse_since(" 90s ", now), Ok(now - 90_000));
        assert_eq!(parse_since("0h", now), Ok(now));
        assert_eq!(parse_since("2026-11-20", now), Ok(day0()));
        assert_eq!(parse_since("2026-11-20T10:00:00Z", now), Ok(day0() + 10 * HOUR));
        assert_eq!(parse_since("2026-11-20T10:00Z", now), Ok(day0() + 10 * HOUR));
        assert_eq!(parse_since("2026-11-20 10:00:30", now), Ok(day0() + 10 * HOUR + 30_000));
        assert_eq!(
            parse_since("2026-11-20T10:00:00.250Z", now),
            Ok(day0() + 10 * HOUR + 250)
        );
        assert_eq!(parse_since("2026-11-20T12:00:00+02:00", now), Ok(day0() + 10 * HOUR));
        assert_eq!(parse_since("2026-11-20T05:30:00-04:30", now), Ok(day0() + 10 * HOUR));
        assert_eq!(
            parse_since("2024-02-29", now),
            Ok(clock::days_from_civil(2024, 2, 29) * DAY_MS)
        );
        assert_eq!(utc_date(day0() + DAY_MS - 1), "2026-11-20");
    }

    #[test]
    fn since_refuses_what_it_cannot_read_and_says_what_it_can() {
        let now = day0();
        for bad in [
            "",
            "yesterday",
            "24",
            "h",
            "-3h",
            "1.5h",
            "3y",
            "24 h",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026-11-20T25:00Z",
            "2026-11-20T10:61",
            "2026-11-20T10",
            "2026-11-20X10:00",
            "2026/11/20",
            "26-11-20",
            "2026-11-20T10:00:00.Z",
            "2026-11-20T10:00+2:00",
        ] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(e.contains("24h") && e.contains("2026-11-20T10:00:00Z"), "{e}");
        }
        assert!(
            parse_since("99999999999999999d", now)
                .unwrap_err()
                .contains("too far back")
        );
        assert_eq!("day".parse::<By>(), Ok(By::Day));
        assert_eq!(
            "lanes".parse::<By>().unwrap_err(),
            "cannot group by `lanes`: use lane, route, day or provider"
        );
    }
}
