//! The ledger in PostgreSQL (`storage.ledger: postgres://…`), for several replicas writing
//! one history: the same tables as the SQLite ledger (plus which replica wrote a row), its own
//! migrations, and the same reads (quota history, recent requests, usage reports).
//!
//! Writes work as with SQLite: records go into a channel, one task stores them in batches, one
//! transaction per batch (multi-row `INSERT … SELECT FROM UNNEST`), and an answer's last bytes
//! wait for their batch's commit (at most `ledger::DURABLE_WAIT`). A database that refuses
//! writes is retried with backoff for about a minute before a batch is given up, loudly;
//! from its first failure until a write succeeds again, answers do not wait for commits at
//! all (during such an outage, the kill -9 guarantee does not hold). The writer has its own
//! connection pool, so slow report queries cannot starve it.

use crate::ledger::{AttemptRecord, Before, Cmd, RequestRecord};
use crate::quota::{self, Park, ParkRecord, PastAttempt};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;
use tokio::sync::mpsc;

/// Migrations, in order; `switchyard_migrations` records which are in. Run under an advisory
/// lock, so replicas starting together do not race.
const MIGRATIONS: &[&str] = &["
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    caller TEXT,
    dialect TEXT NOT NULL,
    model TEXT NOT NULL,
    route TEXT,
    lane TEXT,
    status TEXT NOT NULL,
    error_class TEXT,
    http_status INTEGER NOT NULL,
    stream BOOLEAN NOT NULL,
    tokens_in BIGINT,
    tokens_out BIGINT,
    ttft_ms DOUBLE PRECISION,
    duration_ms DOUBLE PRECISION NOT NULL,
    attempt_count INTEGER NOT NULL,
    cost_usd DOUBLE PRECISION,
    local BOOLEAN NOT NULL DEFAULT FALSE,
    replica TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ms);
CREATE TABLE IF NOT EXISTS attempts (
    request_id TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    lane TEXT NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    ttft_ms DOUBLE PRECISION,
    duration_ms DOUBLE PRECISION NOT NULL,
    detail TEXT,
    PRIMARY KEY (request_id, seq)
);
CREATE TABLE IF NOT EXISTS quota_parks (
    budget TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL
);
"];

/// Connects and brings the schema up to date.
pub async fn connect(url: &str) -> Result<PgPool, String> {
    let shown = crate::shared::redact(url);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| format!("ledger: cannot connect to {shown}: {e}"))?;
    migrate(&pool)
        .await
        .map_err(|e| format!("ledger: cannot prepare the tables in {shown}: {e}"))?;
    Ok(pool)
}

/// The writer's own pool (connected on first use), apart from the readers'.
pub fn writer_pool(url: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)
        .map_err(|e| format!("ledger: {} is not a PostgreSQL URL: {e}", crate::shared::redact(url)))
}

async fn migrate(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7373690361)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS switchyard_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM switchyard_migrations")
        .fetch_one(&mut *tx)
        .await?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
        sqlx::raw_sql(*m).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO switchyard_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(i as i32 + 1)
            .bind(crate::clock::wall_now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A batch that takes longer than this to write is treated as failed (a database that went
/// away mid-query would otherwise hold the writer for the kernel's TCP timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which replica wrote a row: host and process.
fn replica() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}", std::process::id())
}

/// The writer: batches from the channel, one transaction each.
pub(crate) async fn writer(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let replica = replica();
    let mut batch: Vec<Box<RequestRecord>> = Vec::new();
    let mut parks: Vec<ParkRecord> = Vec::new();
    let mut waiters = Vec::new();
    // Set while writes fail: answers are not held for a commit that is not coming.
    let mut degraded = false;
    while let Some(cmd) = rx.recv().await {
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Record(r, w) => {
                    batch.push(r);
                    match w {
                        Some(w) if degraded => {
                            let _ = w.send(());
                        }
                        w => waiters.extend(w),
                    }
                }
                Cmd::Park(p) => parks.push(p),
                Cmd::Flush(w) | Cmd::Close(w) => waiters.push(w),
                // Journal segments belong to SQLite ledgers; none is sent here.
                Cmd::Retire(_, w) => waiters.extend(w),
            }
            if batch.len() < 512 {
                next = rx.try_recv().ok();
            }
        }
        let mut wait = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            let written = match tokio::time::timeout(WRITE_TIMEOUT, write(&pool, &batch, &parks, &replica)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} s", WRITE_TIMEOUT.as_secs())),
            };
            match written {
                Ok(()) => {
                    if degraded {
                        tracing::warn!("ledger (PostgreSQL) is writable again");
                    }
                    degraded = false;
                    break;
                }
                Err(e) if tries < 8 => {
                    degraded = true;
                    tries += 1;
                    tracing::warn!("ledger (PostgreSQL) write failed (try {tries}): {e}");
                    // Answers waiting on this batch go out now: an unreachable database must
                    // not hold every client for the half minute of retries.
                    for w in waiters.drain(..) {
                        let _ = w.send(());
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
                Err(e) => {
                    tracing::error!(
                        "ledger (PostgreSQL): {} request records and {} parks could not be stored: {e}",
                        batch.len(),
                        parks.len()
                    );
                    break;
                }
            }
        }
        batch.clear();
        parks.clear();
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

async fn write(pool: &PgPool, batch: &[Box<RequestRecord>], parks: &[ParkRecord], replica: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if !batch.is_empty() {
        let col = |f: &dyn Fn(&RequestRecord) -> Option<String>| batch.iter().map(|r| f(r)).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO requests (id, ts_ms, caller, dialect, model, route, lane, status, error_class, http_status, \
             stream, tokens_in, tokens_out, ttft_ms, duration_ms, attempt_count, cost_usd, local, replica) \
             SELECT *, $19::text FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::int4[], $11::bool[], $12::int8[], $13::int8[], $14::float8[], \
             $15::float8[], $16::int4[], $17::float8[], $18::bool[]) ON CONFLICT (id) DO NOTHING",
        )
        .bind(batch.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.ts_ms).collect::<Vec<_>>())
        .bind(col(&|r| r.caller.clone()))
        .bind(batch.iter().map(|r| r.dialect.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.model.clone()).collect::<Vec<_>>())
        .bind(col(&|r| r.route.clone()))
        .bind(col(&|r| r.lane.clone()))
        .bind(batch.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
        .bind(col(&|r| r.error_class.clone()))
        .bind(batch.iter().map(|r| i32::from(r.http_status)).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.stream).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.tokens_in.map(clamp)).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.tokens_out.map(clamp)).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.ttft_ms).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.attempts.len() as i32).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.cost_usd).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.local).collect::<Vec<_>>())
        .bind(replica)
        .execute(&mut *tx)
        .await?;
        let attempts: Vec<(&str, i32, &AttemptRecord)> = batch
            .iter()
            .flat_map(|r| r.attempts.iter().enumerate().map(|(i, a)| (r.id.as_str(), i as i32, a)))
            .collect();
        if !attempts.is_empty() {
            sqlx::query(
                "INSERT INTO attempts (request_id, seq, lane, provider, outcome, http_status, ttft_ms, duration_ms, detail) \
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::int4[], \
                 $7::float8[], $8::float8[], $9::text[]) ON CONFLICT (request_id, seq) DO NOTHING",
            )
            .bind(attempts.iter().map(|a| a.0.to_owned()).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.1).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.lane.clone()).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.provider.clone()).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.outcome.clone()).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.http_status.map(i32::from)).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.ttft_ms).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.duration_ms).collect::<Vec<_>>())
            .bind(attempts.iter().map(|a| a.2.detail.clone()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
    }
    for p in parks {
        sqlx::query(
            "INSERT INTO quota_parks (budget, until_ms, outcome, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (budget) DO UPDATE SET until_ms = greatest(quota_parks.until_ms, EXCLUDED.until_ms), \
             outcome = EXCLUDED.outcome, reason = EXCLUDED.reason",
        )
        .bind(&p.budget)
        .bind(p.park.until_ms)
        .bind(p.park.outcome)
        .bind(&p.park.reason)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// What quota accounting needs after a restart (see `ledger::quota_history`).
pub async fn quota_history(
    pool: &PgPool,
    since_ms: i64,
    now_ms: i64,
) -> sqlx::Result<(Vec<ParkRecord>, Vec<PastAttempt>)> {
    let parks = sqlx::query("SELECT budget, until_ms, outcome, reason FROM quota_parks WHERE until_ms > $1")
        .bind(now_ms)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| -> sqlx::Result<ParkRecord> {
            let outcome: String = r.try_get(2)?;
            Ok(ParkRecord {
                budget: r.try_get(0)?,
                park: Park {
                    until_ms: r.try_get(1)?,
                    outcome: Park::outcome_from(&outcome),
                    reason: r.try_get(3)?,
                },
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    let rows = sqlx::query(
        "SELECT r.ts_ms, a.lane, a.outcome, r.lane, r.tokens_in, r.tokens_out, r.cost_usd \
         FROM attempts a JOIN requests r ON r.id = a.request_id WHERE r.ts_ms >= $1 ORDER BY r.ts_ms, a.seq",
    )
    .bind(since_ms)
    .fetch_all(pool)
    .await?;
    let mut past = Vec::new();
    for r in rows {
        let lane: String = r.try_get(1)?;
        let outcome: String = r.try_get(2)?;
        if !quota::reached_provider(&outcome) {
            continue;
        }
        let answered = outcome == "ok" && r.try_get::<Option<String>, _>(3)?.as_deref() == Some(lane.as_str());
        let (tokens, cost) = if answered {
            (
                r.try_get::<Option<i64>, _>(4)?.unwrap_or(0) + r.try_get::<Option<i64>, _>(5)?.unwrap_or(0),
                r.try_get::<Option<f64>, _>(6)?.unwrap_or(0.0),
            )
        } else {
            (0, 0.0)
        };
        past.push(PastAttempt {
            ts_ms: r.try_get(0)?,
            lane,
            tokens: tokens.max(0) as u64,
            cost_usd: cost,
        });
    }
    Ok((parks, past))
}

/// The newest requests before `before`, newest first, with their attempts.
pub async fn recent_before(pool: &PgPool, limit: i64, before: Option<Before<'_>>) -> sqlx::Result<Vec<RequestRecord>> {
    let (before_ms, before_id) = match before {
        Some(b) => (Some(b.ts_ms), b.id.unwrap_or("").to_owned()),
        None => (None, String::new()),
    };
    let rows = sqlx::query(
        "SELECT id, ts_ms, caller, dialect, model, route, lane, status, error_class, http_status, stream, tokens_in, \
         tokens_out, ttft_ms, duration_ms, cost_usd, local FROM requests \
         WHERE $2::int8 IS NULL OR (ts_ms <= $2 AND (ts_ms < $2 OR id < $3)) ORDER BY ts_ms DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .bind(before_ms)
    .bind(before_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(RequestRecord {
            id: r.try_get(0)?,
            ts_ms: r.try_get(1)?,
            caller: r.try_get(2)?,
            dialect: r.try_get(3)?,
            model: r.try_get(4)?,
            route: r.try_get(5)?,
            lane: r.try_get(6)?,
            status: r.try_get(7)?,
            error_class: r.try_get(8)?,
            http_status: u16::try_from(r.try_get::<i32, _>(9)?).unwrap_or(0),
            stream: r.try_get(10)?,
            tokens_in: r.try_get::<Option<i64>, _>(11)?.map(|t| t.max(0) as u64),
            tokens_out: r.try_get::<Option<i64>, _>(12)?.map(|t| t.max(0) as u64),
            ttft_ms: r.try_get(13)?,
            duration_ms: r.try_get(14)?,
            cost_usd: r.try_get(15)?,
            local: r.try_get(16)?,
            attempts: Vec::new(),
        });
    }
    let ids: Vec<String> = out.iter().map(|r| r.id.clone()).collect();
    let attempts = sqlx::query(
        "SELECT request_id, lane, provider, outcome, http_status, ttft_ms, duration_ms, detail FROM attempts \
         WHERE request_id = ANY($1) ORDER BY request_id, seq",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for a in attempts {
        let id: String = a.try_get(0)?;
        if let Some(r) = out.iter_mut().find(|r| r.id == id) {
            r.attempts.push(AttemptRecord {
                lane: a.try_get(1)?,
                provider: a.try_get(2)?,
                outcome: a.try_get(3)?,
                http_status: a.try_get::<Option<i32>, _>(4)?.and_then(|s| u16::try_from(s).ok()),
                ttft_ms: a.try_get(5)?,
                duration_ms: a.try_get(6)?,
                detail: a.try_get(7)?,
            });
        }
    }
    Ok(out)
}

/// Every request in `[since, until]`, oldest first, with its attempts' lane, provider and
/// outcome: what the usage report aggregates.
pub async fn requests_between(pool: &PgPool, since_ms: i64, until_ms: i64) -> sqlx::Result<Vec<RequestRecord>> {
    let rows = sqlx::query(
        "SELECT r.id, r.ts_ms, r.route, r.lane, r.status, r.tokens_in, r.tokens_out, r.cost_usd, r.local, \
                a.lane, a.provider, a.outcome \
         FROM requests r LEFT JOIN attempts a ON a.request_id = r.id \
         WHERE r.ts_ms BETWEEN $1 AND $2 ORDER BY r.ts_ms, r.id, a.seq",
    )
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<RequestRecord> = Vec::new();
    for r in rows {
        let id: String = r.try_get(0)?;
        if out.last().is_none_or(|l| l.id != id) {
            out.push(RequestRecord {
                id,
                ts_ms: r.try_get(1)?,
                route: r.try_get(2)?,
                lane: r.try_get(3)?,
                status: r.try_get(4)?,
                tokens_in: r.try_get::<Option<i64>, _>(5)?.map(|t| t.max(0) as u64),
                tokens_out: r.try_get::<Option<i64>, _>(6)?.map(|t| t.max(0) as u64),
                cost_usd: r.try_get(7)?,
                local: r.try_get(8)?,
                ..RequestRecord::default()
            });
        }
        if let (Some(last), Some(lane)) = (out.last_mut(), r.try_get::<Option<String>, _>(9)?) {
            last.attempts.push(AttemptRecord {
                lane,
                provider: r.try_get(10)?,
                outcome: r.try_get(11)?,
                ..AttemptRecord::default()
            });
        }
    }
    Ok(out)
}

/// `(bucket start, lane, requests, tokens in, tokens out)` per non-empty bucket.
pub async fn series_points(
    pool: &PgPool,
    since_ms: i64,
    until_ms: i64,
    step_ms: i64,
    none: &str,
) -> sqlx::Result<Vec<(i64, String, i64, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT (ts_ms - ((ts_ms % $3) + $3) % $3) AS t, coalesce(lane, $4) AS l, count(*)::int8, \
                sum(greatest(coalesce(tokens_in, 0), 0))::int8, sum(greatest(coalesce(tokens_out, 0), 0))::int8 \
         FROM requests WHERE ts_ms BETWEEN $1 AND $2 GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(since_ms)
    .bind(until_ms)
    .bind(step_ms)
    .bind(none)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}
