//! The ledger: one row per request and one per attempt, in SQLite (WAL).
//!
//! Writes never happen on the request path: records go into a channel and one writer thread
//! stores them in batches, one transaction per batch. [`Ledger::close`] waits until every
//! record sent before it is on disk, which is how a clean shutdown keeps every answered
//! request. Prompts and keys are never stored: the caller is a short hash of its key.

use rusqlite::{Connection, params};
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
    /// Opens (creating if needed) the database and starts the writer thread.
    pub async fn open(path: &Path) -> Result<Ledger, String> {
        let conn = open_db(path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        // A plain thread, not a tokio task: SQLite calls block, and one owner of the
        // connection needs no locking and keeps its prepared statements warm.
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| format!("ledger: cannot start its writer: {e}"))?;
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

fn open_db(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("ledger: cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path).map_err(|e| format!("ledger: cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| conn.execute_batch(SCHEMA))
        .map_err(|e| format!("ledger: cannot prepare {}: {e}", path.display()))?;
    Ok(conn)
}

fn writer(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut batch: Vec<Box<RequestRecord>> = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(cmd) = rx.blocking_recv() {
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
                match write_batch(&mut conn, &batch) {
                    Ok(()) => break,
                    Err(e) if tries < 3 => {
                        tries += 1;
                        tracing::warn!("ledger write failed (try {tries}): {e}");
                        std::thread::sleep(std::time::Duration::from_millis(100 * tries));
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
        // Let records gather for a moment: waking once per record under load costs more CPU
        // (in context switches) than the writes themselves. `flush` still returns promptly.
        std::thread::sleep(COLLECT);
    }
}

/// How long the writer waits between batches.
const COLLECT: std::time::Duration = std::time::Duration::from_millis(5);

fn write_batch(conn: &mut Connection, batch: &[Box<RequestRecord>]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut req = tx.prepare_cached(
            "INSERT OR REPLACE INTO requests (id, ts_ms, caller, dialect, model, route, lane, status, error_class, \
             http_status, stream, tokens_in, tokens_out, ttft_ms, duration_ms, attempt_count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        let mut att = tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts (request_id, seq, lane, provider, outcome, http_status, ttft_ms, duration_ms, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in batch {
            req.execute(params![
                r.id,
                r.ts_ms,
                r.caller,
                r.dialect,
                r.model,
                r.route,
                r.lane,
                r.status,
                r.error_class,
                r.http_status,
                r.stream,
                r.tokens_in.map(|t| t as i64),
                r.tokens_out.map(|t| t as i64),
                r.ttft_ms,
                r.duration_ms,
                r.attempts.len() as i64,
            ])?;
            for (seq, a) in r.attempts.iter().enumerate() {
                att.execute(params![
                    r.id,
                    seq as i64,
                    a.lane,
                    a.provider,
                    a.outcome,
                    a.http_status,
                    a.ttft_ms,
                    a.duration_ms,
                    a.detail
                ])?;
            }
        }
    }
    tx.commit()
}

/// Reads the newest requests back (for tests and, later, reports).
pub fn recent(path: &Path, limit: i64) -> rusqlite::Result<Vec<RequestRecord>> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut attempts = conn.prepare("SELECT lane, provider, outcome, http_status, ttft_ms, duration_ms, detail FROM attempts WHERE request_id = ?1 ORDER BY seq")?;
    let mut stmt = conn.prepare(
        "SELECT id, ts_ms, caller, dialect, model, route, lane, status, error_class, http_status, stream, tokens_in, tokens_out, ttft_ms, duration_ms \
         FROM requests ORDER BY ts_ms DESC, id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |row| {
        Ok(RequestRecord {
            id: row.get(0)?,
            ts_ms: row.get(1)?,
            caller: row.get(2)?,
            dialect: row.get(3)?,
            model: row.get(4)?,
            route: row.get(5)?,
            lane: row.get(6)?,
            status: row.get(7)?,
            error_class: row.get(8)?,
            http_status: row.get(9)?,
            stream: row.get(10)?,
            tokens_in: row.get::<_, Option<i64>>(11)?.map(|t| t as u64),
            tokens_out: row.get::<_, Option<i64>>(12)?.map(|t| t as u64),
            ttft_ms: row.get(13)?,
            duration_ms: row.get(14)?,
            attempts: Vec::new(),
        })
    })?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    for r in &mut out {
        r.attempts = attempts
            .query_map([&r.id], |a| {
                Ok(AttemptRecord {
                    lane: a.get(0)?,
                    provider: a.get(1)?,
                    outcome: a.get(2)?,
                    http_status: a.get(3)?,
                    ttft_ms: a.get(4)?,
                    duration_ms: a.get(5)?,
                    detail: a.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
    }
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
        let rows = recent(&path, 5000).unwrap();
        assert_eq!(rows.len(), 1200);
        assert_eq!(rows[0].id, "r01199");
        assert_eq!(rows[0].attempts.len(), 2);
        assert_eq!(rows[0].attempts[0].outcome, "connect");
        assert_eq!(rows[0].tokens_in, Some(3));
    }
}
