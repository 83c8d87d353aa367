//! The ledger: one row per request and one per attempt, in SQLite (WAL).
//!
//! Writes never happen on the request path: records go into a channel and one writer task
//! stores them in batches, one transaction per batch. [`Ledger::close`] waits until every
//! record sent before it is on disk, which is how a clean shutdown keeps every answered
//! request. Prompts and keys are never stored: the caller is a short hash of its key.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Row};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptRecord {
    pub lane: String,
    pub provider: String,
    /// `ok`, an error class (`connect`, `rate_limited` …) or a skip reason (`breaker_open` …).
    pub outcome: String,
    pub http_status: Option<u16>,
    pub ttft_ms: Option<f64>,
    pub duration_ms: f64,
    /// The upstream's message, shortened. Never a prompt, never a key.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    pub ts_ms: i64,
    /// Short hash of the caller's key, when keys are configured.
    pub caller: Option<String>,
    pub dialect: String,
    pub model: String,
    pub route: Option<String>,
    pub lane: Option<String>,
    /// `ok`, `error` or `client_disconnected`.
    pub status: String,
    pub error_class: Option<String>,
    pub http_status: u16,
    pub stream: bool,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub ttft_ms: Option<f64>,
    pub duration_ms: f64,
    pub attempts: Vec<AttemptRecord>,
}

enum Cmd {
    Record(Box<RequestRecord>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Cmd>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    caller TEXT,
    dialect TEXT NOT NULL,
    model TEXT NOT NULL,
    route TEXT,
    lane TEXT,
    status TEXT NOT NULL,
    error_class TEXT,
    http_status INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    ttft_ms REAL,
    duration_ms REAL NOT NULL,
    attempt_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ms);
CREATE TABLE IF NOT EXISTS attempts (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq INTEGER NOT NULL,
    lane TEXT NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    ttft_ms REAL,
    duration_ms REAL NOT NULL,
    detail TEXT,
    PRIMARY KEY (request_id, seq)
);
PRAGMA user_version = 1;
";

/// Records taken from the channel per transaction, at most.
const BATCH: usize = 512;

impl Ledger {
    /// Opens (creating if needed) the database and starts the writer task.
    pub async fn open(path: &Path) -> Result<Ledger, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("ledger: cannot create {}: {e}", dir.display()))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| format!("ledger: cannot open {}: {e}", path.display()))?;
        pool.execute(SCHEMA)
            .await
            .map_err(|e| format!("ledger: cannot create tables in {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(pool, rx));
        Ok(Ledger {
            tx,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record. Never blocks, never fails the request.
    pub fn record(&self, r: RequestRecord) {
        if self.tx.send(Cmd::Record(Box::new(r))).is_err() {
            tracing::error!("ledger writer has stopped; a request record was not stored");
        }
    }

    /// Waits until everything recorded before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer(pool: SqlitePool, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut batch: Vec<Box<RequestRecord>> = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(cmd) = rx.recv().await {
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Record(r) => batch.push(r),
                Cmd::Flush(w) => waiters.push(w),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            // A failed batch is retried a few times (the file may be briefly locked by a
            // reader); records are only dropped, loudly, if the disk keeps refusing them.
            let mut tries = 0;
            loop {
                match write_batch(&pool, &batch).await {
                    Ok(()) => break,
                    Err(e) if tries < 3 => {
                        tries += 1;
                        tracing::warn!("ledger write failed (try {tries}): {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                    }
                    Err(e) => {
                        tracing::error!("ledger: {} request records could not be stored: {e}", batch.len());
                        break;
                    }
                }
            }
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    pool.close().await;
}

async fn write_batch(pool: &SqlitePool, batch: &[Box<RequestRecord>]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for r in batch {
        sqlx::query(
            "INSERT OR REPLACE INTO requests (id, ts_ms, caller, dialect, model, route, lane, status, error_class, \
             http_status, stream, tokens_in, tokens_out, ttft_ms, duration_ms, attempt_count) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(r.ts_ms)
        .bind(&r.caller)
        .bind(&r.dialect)
        .bind(&r.model)
        .bind(&r.route)
        .bind(&r.lane)
        .bind(&r.status)
        .bind(&r.error_class)
        .bind(i64::from(r.http_status))
        .bind(r.stream)
        .bind(r.tokens_in.map(|t| t as i64))
        .bind(r.tokens_out.map(|t| t as i64))
        .bind(r.ttft_ms)
        .bind(r.duration_ms)
        .bind(r.attempts.len() as i64)
        .execute(&mut *tx)
        .await?;
        for (seq, a) in r.attempts.iter().enumerate() {
            sqlx::query(
                "INSERT OR REPLACE INTO attempts (request_id, seq, lane, provider, outcome, http_status, ttft_ms, duration_ms, detail) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&r.id)
            .bind(seq as i64)
            .bind(&a.lane)
            .bind(&a.provider)
            .bind(&a.outcome)
            .bind(a.http_status.map(i64::from))
            .bind(a.ttft_ms)
            .bind(a.duration_ms)
            .bind(&a.detail)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// Reads the newest requests back (for tests and, later, reports).
pub async fn recent(path: &Path, limit: i64) -> Result<Vec<RequestRecord>, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await?;
    let rows = sqlx::query("SELECT * FROM requests ORDER BY ts_ms DESC, id DESC LIMIT ?")
        .bind(limit)
        .fetch_all(&pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let attempts = sqlx::query("SELECT * FROM attempts WHERE request_id = ? ORDER BY seq")
            .bind(&id)
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|a| {
                Ok(AttemptRecord {
                    lane: a.try_get("lane")?,
                    provider: a.try_get("provider")?,
                    outcome: a.try_get("outcome")?,
                    http_status: a.try_get::<Option<i64>, _>("http_status")?.map(|s| s as u16),
                    ttft_ms: a.try_get("ttft_ms")?,
                    duration_ms: a.try_get("duration_ms")?,
                    detail: a.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.push(RequestRecord {
            id,
            ts_ms: row.try_get("ts_ms")?,
            caller: row.try_get("caller")?,
            dialect: row.try_get("dialect")?,
            model: row.try_get("model")?,
            route: row.try_get("route")?,
            lane: row.try_get("lane")?,
            status: row.try_get("status")?,
            error_class: row.try_get("error_class")?,
            http_status: row.try_get::<i64, _>("http_status")? as u16,
            stream: row.try_get("stream")?,
            tokens_in: row.try_get::<Option<i64>, _>("tokens_in")?.map(|t| t as u64),
            tokens_out: row.try_get::<Option<i64>, _>("tokens_out")?.map(|t| t as u64),
            ttft_ms: row.try_get("ttft_ms")?,
            duration_ms: row.try_get("duration_ms")?,
            attempts,
        });
    }
    pool.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn batched_records_survive_flush_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        for i in 0..1200 {
            ledger.record(RequestRecord {
                id: format!("r{i:05}"),
                ts_ms: i,
                dialect: "openai".into(),
                model: "default".into(),
                route: Some("default".into()),
                lane: Some("a".into()),
                status: "ok".into(),
                http_status: 200,
                tokens_in: Some(3),
                duration_ms: 1.5,
                attempts: vec![
                    AttemptRecord {
                        lane: "b".into(),
                        provider: "p".into(),
                        outcome: "connect".into(),
                        duration_ms: 0.2,
                        ..Default::default()
                    },
                    AttemptRecord {
                        lane: "a".into(),
                        provider: "p".into(),
                        outcome: "ok".into(),
                        http_status: Some(200),
                        duration_ms: 1.0,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            });
        }
        ledger.flush().await;
        let rows = recent(&path, 5000).await.unwrap();
        assert_eq!(rows.len(), 1200);
        assert_eq!(rows[0].id, "r01199");
        assert_eq!(rows[0].attempts.len(), 2);
        assert_eq!(rows[0].attempts[0].outcome, "connect");
        assert_eq!(rows[0].tokens_in, Some(3));
    }
}
