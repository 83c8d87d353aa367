//! The ledger: one row per request and one per attempt, in SQLite (WAL).
//!
//! Database writes never happen on the request path: records go into a channel and one writer
//! thread stores them in batches, one transaction per batch. An answered request's record is
//! first appended to the ledger's journal (`journal`), one `write()` on the request path, so
//! that its answer never waits for a commit and a `kill -9` still loses nothing; a start
//! commits what a killed process left there. [`Ledger::flush`] waits until every record sent
//! before it is in the database, which is how a clean shutdown keeps every answered request.
//! Prompts and keys are never stored: the caller is a short hash of its key.

use crate::config::StorageConfig;
use crate::journal::{Journal, ROTATE_BYTES, Segment};
use crate::quota::{self, Park, ParkRecord, PastAttempt};
use rusqlite::{Connection, params};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// What the answer cost, in US dollars (paid lanes with a price; free lanes cost 0).
    pub cost_usd: Option<f64>,
    /// The answering lane ran on this machine or the user's own (kept with the row, so
    /// reports stay right after the config changes).
    pub local: bool,
    pub attempts: Vec<AttemptRecord>,
}

/// Skip outcomes that follow the rules rather than a lane's trouble: a route that lists a
/// premium lane, a local-only request, a provider without a key. Passing over such a lane is
/// not a fallback.
pub const POLICY_SKIPS: &[&str] = &["disabled", "not_local", "premium_not_allowed", "context_too_small"];

/// The first lane that was wanted but failed or was unavailable (breaker open, quota spent,
/// cooling down, an error) before the request went on to another lane: the reason a request
/// fell back. `None` when the first lane allowed to answer did, and for a lone failure (a
/// caller's `bad_request`, a lane asked for alone), which had nowhere to fall back to.
pub fn fallback_from(attempts: &[AttemptRecord]) -> Option<&AttemptRecord> {
    let i = attempts
        .iter()
        .position(|a| a.outcome != "ok" && !POLICY_SKIPS.contains(&a.outcome.as_str()))?;
    (i + 1 < attempts.len()).then(|| &attempts[i])
}

pub(crate) enum Cmd {
    /// A record, and who waits until it is committed.
    Record(Box<RequestRecord>, Option<oneshot::Sender<()>>),
    Park(ParkRecord),
    Flush(oneshot::Sender<()>),
    /// A flush that also empties the journal (the process is about to end).
    Close(oneshot::Sender<()>),
    /// A journal segment whose records were all sent before this: delete it once they are
    /// committed.
    Retire(Segment, Option<oneshot::Sender<()>>),
}

/// Handle to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Cmd>,
    path: PathBuf,
    /// Set when the ledger is in PostgreSQL (`path` is then unused).
    pg: Option<sqlx::PgPool>,
    /// Where answered requests' records go first (SQLite ledgers; see `journal`).
    journal: Option<Arc<Journal>>,
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
";

/// Changes since the first schema, applied in order; `user_version` says how many are in.
const MIGRATIONS: &[&str] = &[
    "PRAGMA user_version = 1;",
    "CREATE TABLE IF NOT EXISTS quota_parks (
         budget TEXT PRIMARY KEY,
         until_ms INTEGER NOT NULL,
         outcome TEXT NOT NULL,
         reason TEXT NOT NULL
     );",
];

/// Where the ledger's history is read from: a SQLite file (read-only connections, off the async
/// threads) or PostgreSQL.
#[derive(Clone)]
pub enum Reader {
    Sqlite(PathBuf),
    Postgres(sqlx::PgPool),
}

/// Runs a SQLite read on the blocking pool (reads block; the async threads must not).
pub(crate) async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    read: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

impl Reader {
    /// For commands that read the ledger without running a gateway (`status`, `usage`).
    pub async fn for_storage(storage: &StorageConfig) -> Result<Reader, String> {
        match &storage.postgres {
            Some(url) => Ok(Reader::Postgres(crate::pg::connect(url.expose_secret()).await?)),
            None => Ok(Reader::Sqlite(storage.ledger.clone())),
        }
    }

    /// Parks still in force and attempts that reached a provider since `since_ms`.
    pub async fn quota_history(
        &self,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<(Vec<ParkRecord>, Vec<PastAttempt>), String> {
        match self {
            Reader::Sqlite(path) => {
                let path = path.clone();
                blocking(move || quota_history(&path, since_ms, now_ms)).await
            }
            Reader::Postgres(pool) => crate::pg::quota_history(pool, since_ms, now_ms)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// A page of history, newest first (see [`recent_before`]).
    pub async fn recent_before(
        &self,
        limit: i64,
        before: Option<(i64, Option<String>)>,
    ) -> Result<Vec<RequestRecord>, String> {
        match self {
            Reader::Sqlite(path) => {
                let path = path.clone();
                blocking(move || {
                    let b = before.as_ref().map(|(t, id)| Before {
                        ts_ms: *t,
                        id: id.as_deref(),
                    });
                    recent_before(&path, limit, b)
                })
                .await
            }
            Reader::Postgres(pool) => {
                let b = before.as_ref().map(|(t, id)| Before {
                    ts_ms: *t,
                    id: id.as_deref(),
                });
                crate::pg::recent_before(pool, limit, b)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The longest an answer's last bytes wait for its record's commit. A healthy writer commits
/// in well under a millisecond; past this the ledger is in trouble (a stuck disk, an
/// unreachable PostgreSQL) and answers go on without the guarantee rather than hang.
pub const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Records taken from the channel per transaction, at most.
const BATCH: usize = 512;

/// The SQLite ledgers' writer threads in this process.
static WRITERS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// For the end of `main`, once the runtime (and with it every `Ledger` handle) is gone: waits,
/// at most `within`, for the writer threads to end. A writer ends after its last commit by
/// closing its database, and SQLite then folds the WAL into the file and deletes it; a process
/// that exits first leaves `ledger.db-wal` behind (harmless: the next open folds it in).
pub fn join_writers(within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
    while writers.iter().any(|h| !h.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    for h in writers.extract_if(.., |h| h.is_finished()) {
        let _ = h.join();
    }
}

impl Ledger {
    /// Opens (creating if needed) the database, commits what a stopped process left in its
    /// journal, and starts the writer thread.
    pub async fn open(path: &Path) -> Result<Ledger, String> {
        let mut conn = open_db(path)?;
        let journal = match Journal::open(path) {
            Ok((journal, left)) => {
                replay(&mut conn, left);
                Some(Arc::new(journal))
            }
            Err(e) => {
                tracing::warn!(
                    "ledger: cannot keep a journal next to {} ({e}); answers wait for their record's commit",
                    path.display()
                );
                None
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (me, j) = (tx.downgrade(), journal.clone());
        // A plain thread, not a tokio task: SQLite calls block, and one owner of the
        // connection needs no locking and keeps its prepared statements warm.
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer(conn, rx, j, me))
            .map_err(|e| format!("ledger: cannot start its writer: {e}"))?;
        let mut writers = WRITERS.lock().unwrap_or_else(|p| p.into_inner());
        // Ended writers (ledgers opened and dropped before) are joined, not kept.
        for h in writers.extract_if(.., |h| h.is_finished()) {
            let _ = h.join();
        }
        writers.push(handle);
        drop(writers);
        Ok(Ledger {
            tx,
            path: path.to_owned(),
            pg: None,
            journal,
        })
    }

    /// The ledger `storage` names: its SQLite file, or PostgreSQL.
    pub async fn open_storage(storage: &StorageConfig) -> Result<Ledger, String> {
        let Some(url) = &storage.postgres else {
            return Ledger::open(&storage.ledger).await;
        };
        let pool = crate::pg::connect(url.expose_secret()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::pg::writer(crate::pg::writer_pool(url.expose_secret())?, rx));
        Ok(Ledger {
            tx,
            path: storage.ledger.clone(),
            pg: Some(pool),
            journal: None,
        })
    }

    /// Where reports read from.
    pub fn reader(&self) -> Reader {
        match &self.pg {
            Some(pool) => Reader::Postgres(pool.clone()),
            None => Reader::Sqlite(self.path.clone()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record. Never blocks, never fails the request.
    pub fn record(&self, r: RequestRecord) {
        if self.tx.send(Cmd::Record(Box::new(r), None)).is_err() {
            tracing::error!("ledger writer has stopped; a request record was not stored");
        }
    }

    /// Stores a record so that it survives the process being killed once this returns, and
    /// queues it for the database. An answer's last byte waits for this, so a request whose
    /// client got a complete answer is in the ledger even if the process is killed the next
    /// moment. With a journal (SQLite) the record is appended to it here and `None` comes back;
    /// otherwise (PostgreSQL, or a journal that cannot be written) the receiver resolves once the
    /// record is committed or its first write failed, and the answer waits for it (at most
    /// [`DURABLE_WAIT`]).
    pub fn record_durable(&self, r: RequestRecord) -> Option<oneshot::Receiver<()>> {
        let mut r = Box::new(r);
        if let Some(j) = &self.journal {
            let tx = &self.tx;
            match j.append(r, |r| {
                if tx.send(Cmd::Record(r, None)).is_err() {
                    tracing::error!("ledger writer has stopped; a request record is only in the journal");
                }
            }) {
                Ok(()) => return None,
                Err((back, e)) => {
                    // `None`: closed (the process is ending); the answer waits for the commit.
                    if let Some(e) = e {
                        tracing::error!(
                            "ledger journal: cannot append a record ({e}); its answer waits for the commit"
                        );
                    }
                    r = back;
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Record(r, Some(tx))).is_err() {
            tracing::error!("ledger writer has stopped; a request record was not stored");
        }
        Some(rx)
    }

    /// Queues a quota park to persist, so a restart still knows the budget is spent.
    pub fn park(&self, p: ParkRecord) {
        if self.tx.send(Cmd::Park(p)).is_err() {
            tracing::error!("ledger writer has stopped; a quota park was not stored");
        }
    }

    /// Waits until everything recorded before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Before the process ends: waits until everything recorded before this call is stored,
    /// and closes the journal, deleting its last segment (a record after this is still kept:
    /// its answer waits for the commit).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer's page cache, in KiB (SQLite's negative `cache_size`).
const WRITER_CACHE_KIB: i64 = -256;

fn open_db(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("ledger: cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path).map_err(|e| format!("ledger: cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        // The writer only appends, at the right edge of each b-tree: a few dozen pages are its
        // working set, and SQLite's default 2 MB page cache would otherwise fill up and stay.
        .and_then(|()| conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB))
        .and_then(|()| conn.execute_batch(SCHEMA))
        .and_then(|()| migrate(&conn))
        .map_err(|e| format!("ledger: cannot prepare {}: {e}", path.display()))?;
    Ok(conn)
}

pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Columns are added here rather than in `MIGRATIONS`, only when missing: an older binary
    // that opened the file again set `user_version` back without removing them.
    if !has_column(conn, "requests", "cost_usd")? {
        conn.execute_batch("ALTER TABLE requests ADD COLUMN cost_usd REAL;")?;
    }
    if !has_column(conn, "requests", "local")? {
        conn.execute_batch("ALTER TABLE requests ADD COLUMN local INTEGER NOT NULL DEFAULT 0;")?;
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Commits the records of journal segments that a process left behind (it was killed, or it
/// stopped before it deleted them), then deletes the segments. One that cannot be committed is
/// kept for the next start.
fn replay(conn: &mut Connection, left: Vec<Segment>) {
    for seg in left {
        let (records, bad) = match seg.records() {
            Ok(read) => read,
            Err(e) => {
                tracing::error!("ledger journal: cannot read {}: {e}", seg.path().display());
                continue;
            }
        };
        if bad > 0 {
            tracing::warn!("ledger journal: {bad} unreadable lines in {}", seg.path().display());
        }
        match records.chunks(BATCH).try_for_each(|c| write_batch(conn, c)) {
            Ok(()) => {
                if !records.is_empty() {
                    tracing::info!(
                        "ledger: {} request records from {} committed",
                        records.len(),
                        seg.path().display()
                    );
                }
                seg.retire();
            }
            Err(e) => tracing::error!(
                "ledger: cannot commit the records in {} ({e}); it is kept for the next start",
                seg.path().display()
            ),
        }
    }
}

/// A journal segment to delete once its records are committed, and who waits for that.
type Retiring = (Segment, Option<oneshot::Sender<()>>);

fn writer(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    journal: Option<Arc<Journal>>,
    me: mpsc::WeakUnboundedSender<Cmd>,
) {
    let mut batch: Vec<Box<RequestRecord>> = Vec::with_capacity(BATCH);
    let mut parks: Vec<ParkRecord> = Vec::new();
    let mut waiters = Vec::new();
    let mut committed: Vec<oneshot::Sender<()>> = Vec::new();
    // Journal segments whose records have all been received, and who waits on each (a close).
    let mut retiring: Vec<Retiring> = Vec::new();
    // Set once a batch could not be stored: from then on segments are kept for the next start
    // to replay, whichever records they hold.
    let mut lost = false;
    // Segments to delete when the writer ends, once the channel is drained.
    let mut at_exit: Vec<Segment> = Vec::new();
    // Queues a journal segment's retirement behind every record appended to it. Without a
    // sender left (every `Ledger` is gone, nothing more is appended) it waits for the end,
    // when every record sent is committed.
    let retire = |old: Segment, w: Option<oneshot::Sender<()>>, at_exit: &mut Vec<Segment>| {
        let unsent = match me.upgrade() {
            Some(tx) => match tx.send(Cmd::Retire(old, w)) {
                Err(mpsc::error::SendError(Cmd::Retire(old, w))) => Some((old, w)),
                _ => None,
            },
            None => Some((old, w)),
        };
        if let Some((old, w)) = unsent {
            at_exit.push(old);
            if let Some(w) = w {
                let _ = w.send(());
            }
        }
    };
    // Records in the last batch: more than one means requests are arriving together.
    let mut last_batch = 0;
    while let Some(cmd) = rx.blocking_recv() {
        if last_batch > 1 {
            // Group commit: under concurrent load, linger a moment so this commit carries the
            // records that are about to arrive rather than one each. A lone request (the last
            // batch was one record) is written at once.
            std::thread::sleep(LINGER);
        }
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Record(r, w) => {
                    batch.push(r);
                    committed.extend(w);
                }
                Cmd::Park(p) => parks.push(p),
                Cmd::Flush(w) => waiters.push(w),
                // The journal's current segment is retired behind everything appended to it,
                // and the close answered then.
                Cmd::Close(w) => match journal.as_deref().and_then(Journal::close) {
                    Some(last) => retire(last, Some(w), &mut at_exit),
                    None => waiters.push(w),
                },
                Cmd::Retire(seg, w) => retiring.push((seg, w)),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        last_batch = batch.len();
        if !batch.is_empty() {
            // A failed batch is retried a few times (the file may be briefly locked by a
            // reader); records are only dropped, loudly, if the disk keeps refusing them (they
            // are still in the journal, which the next start replays).
            let mut tries = 0;
            loop {
                match write_batch(&mut conn, &batch) {
                    Ok(()) => break,
                    Err(e) if tries < 3 => {
                        tries += 1;
                        tracing::warn!("ledger write failed (try {tries}): {e}");
                        // The answers waiting on this batch go now: a disk in trouble must not
                        // hold every client while it is retried.
                        for w in committed.drain(..) {
                            let _ = w.send(());
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100 * tries));
                    }
                    Err(e) => {
                        tracing::error!("ledger: {} request records could not be stored: {e}", batch.len());
                        lost = true;
                        break;
                    }
                }
            }
            batch.clear();
        }
        for p in parks.drain(..) {
            if let Err(e) = conn.execute(
                "INSERT OR REPLACE INTO quota_parks (budget, until_ms, outcome, reason) VALUES (?1, ?2, ?3, ?4)",
                params![p.budget, p.park.until_ms, p.park.outcome, p.park.reason],
            ) {
                tracing::error!(budget = %p.budget, "ledger: a quota park could not be stored: {e}");
            }
        }
        // Every record of a segment in `retiring` came before its marker, so it is committed now.
        for (seg, w) in retiring.drain(..) {
            if !lost {
                seg.retire();
            }
            waiters.extend(w);
        }
        if let Some(j) = &journal
            && j.len() >= ROTATE_BYTES
        {
            match j.rotate() {
                Ok(Some(old)) => retire(old, None, &mut at_exit),
                Ok(None) => {}
                Err(e) => tracing::warn!("ledger journal: cannot start a new segment: {e}"),
            }
        }
        // Someone waits on this batch (an answer's last byte): go straight back for the next
        // one. Under load, records pile up while a batch is written, so batches grow by
        // themselves.
        let durable = !committed.is_empty();
        for w in waiters.drain(..).chain(committed.drain(..)) {
            let _ = w.send(());
        }
        if !durable {
            // Let records gather for a moment: waking once per record under load costs more
            // CPU (in context switches) than the writes themselves.
            std::thread::sleep(COLLECT);
        }
    }
    // Every `Ledger` is gone and every record it sent is committed.
    if !lost {
        for seg in retiring.into_iter().map(|(seg, _)| seg).chain(at_exit) {
            seg.retire();
        }
        if let Some(last) = journal.and_then(Arc::into_inner).and_then(Journal::into_current) {
            last.retire();
        }
    }
}

/// How long a commit waits for more records when requests arrive together.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);

/// How long the writer waits between batches.
const COLLECT: std::time::Duration = std::time::Duration::from_millis(5);

fn write_batch(conn: &mut Connection, batch: &[impl Borrow<RequestRecord>]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut req = tx.prepare_cached(
            "INSERT OR REPLACE INTO requests (id, ts_ms, caller, dialect, model, route, lane, status, error_class, \
             http_status, stream, tokens_in, tokens_out, ttft_ms, duration_ms, attempt_count, cost_usd, local) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?;
        let mut att = tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts (request_id, seq, lane, provider, outcome, http_status, ttft_ms, duration_ms, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in batch {
            let r = r.borrow();
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
                r.cost_usd,
                r.local,
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

/// Reads the newest requests back, with their attempts.
pub fn recent(path: &Path, limit: i64) -> rusqlite::Result<Vec<RequestRecord>> {
    recent_before(path, limit, None)
}

/// Where a page of history starts: just after the request (`ts_ms`, `id`) that ended the page
/// before, in the order pages are read (`ts_ms` descending, then `id` descending). Without an
/// `id`, every request of that millisecond is skipped.
///
/// `ts_ms` alone is not a cursor: requests that started in the same millisecond as the last
/// row of a page would never be shown on the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before<'a> {
    pub ts_ms: i64,
    pub id: Option<&'a str>,
}

/// The newest `limit` requests before `before` (all when `None`), newest first (ties in `ts_ms`
/// by `id`, descending), with their attempts: a page of history (`/api/requests`). A missing
/// database is empty; a ledger older than the `cost_usd` and `local` columns, read without
/// migrating it, reads them as unknown and not local.
pub fn recent_before(path: &Path, limit: i64, before: Option<Before<'_>>) -> rusqlite::Result<Vec<RequestRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let cost = if has_column(&conn, "requests", "cost_usd")? {
        "cost_usd"
    } else {
        "NULL"
    };
    let local = if has_column(&conn, "requests", "local")? {
        "local"
    } else {
        "0"
    };
    let mut attempts = conn.prepare("SELECT lane, provider, outcome, http_status, ttft_ms, duration_ms, detail FROM attempts WHERE request_id = ?1 ORDER BY seq")?;
    // A cursor without an id binds `id < ''`, which no string is: the cursor is `ts_ms < ?2`.
    // No cursor binds NULL and matches every row. `ts_ms <= ?2` lets the `requests_ts` index
    // narrow the scan.
    let mut stmt = conn.prepare(&format!(
        "SELECT id, ts_ms, caller, dialect, model, route, lane, status, error_class, http_status, stream, tokens_in, tokens_out, ttft_ms, duration_ms, {cost}, {local} \
         FROM requests WHERE ?2 IS NULL OR (ts_ms <= ?2 AND (ts_ms < ?2 OR id < ?3)) \
         ORDER BY ts_ms DESC, id DESC LIMIT ?1"
    ))?;
    let (before_ms, before_id) = match before {
        Some(b) => (Some(b.ts_ms), b.id.unwrap_or("")),
        None => (None, ""),
    };
    let rows = stmt.query_map(params![limit, before_ms, before_id], |row| {
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
            cost_usd: row.get(15)?,
            local: row.get(16)?,
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

/// What quota accounting needs back after a restart: the parks still in force and every
/// attempt since `since_ms` that reached its provider, oldest first, with the tokens and cost
/// of the answering one. A missing database is an empty history.
pub fn quota_history(path: &Path, since_ms: i64, now_ms: i64) -> rusqlite::Result<(Vec<ParkRecord>, Vec<PastAttempt>)> {
    if !path.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let has_parks: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'quota_parks'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let mut parks = Vec::new();
    if has_parks {
        let mut stmt = conn.prepare("SELECT budget, until_ms, outcome, reason FROM quota_parks WHERE until_ms > ?1")?;
        let rows = stmt.query_map([now_ms], |r| {
            let outcome: String = r.get(2)?;
            Ok(ParkRecord {
                budget: r.get(0)?,
                park: Park {
                    until_ms: r.get(1)?,
                    outcome: Park::outcome_from(&outcome),
                    reason: r.get(3)?,
                },
            })
        })?;
        parks = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    }
    // A ledger written before costs were recorded (read here without migrating it) has no
    // `cost_usd` column.
    let has_cost = has_column(&conn, "requests", "cost_usd")?;
    let mut stmt = conn.prepare(&format!(
        "SELECT r.ts_ms, a.lane, a.outcome, r.lane, r.tokens_in, r.tokens_out, {} \
         FROM attempts a JOIN requests r ON r.id = a.request_id WHERE r.ts_ms >= ?1 ORDER BY r.ts_ms, a.seq",
        if has_cost { "r.cost_usd" } else { "NULL" }
    ))?;
    let rows = stmt.query_map([since_ms], |r| {
        let lane: String = r.get(1)?;
        let outcome: String = r.get(2)?;
        let answered = outcome == "ok" && r.get::<_, Option<String>>(3)?.as_deref() == Some(lane.as_str());
        let tokens = if answered {
            r.get::<_, Option<i64>>(4)?.unwrap_or(0) + r.get::<_, Option<i64>>(5)?.unwrap_or(0)
        } else {
            0
        };
        let cost: Option<f64> = if answered { r.get(6)? } else { None };
        Ok((
            quota::reached_provider(&outcome),
            PastAttempt {
                ts_ms: r.get(0)?,
                lane,
                tokens: tokens.max(0) as u64,
                cost_usd: cost.unwrap_or(0.0),
            },
        ))
    })?;
    let mut past = Vec::new();
    for row in rows {
        let (reached, a) = row?;
        if reached {
            past.push(a);
        }
    }
    Ok((parks, past))
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

    fn answered(id: &str) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            ts_ms: 7,
            dialect: "anthropic".into(),
            model: "default".into(),
            lane: Some("a".into()),
            status: "ok".into(),
            http_status: 200,
            tokens_out: Some(9),
            duration_ms: 2.5,
            attempts: vec![AttemptRecord {
                lane: "a".into(),
                provider: "p".into(),
                outcome: "ok".into(),
                http_status: Some(200),
                duration_ms: 2.0,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The journal segments next to `path`.
    fn segments(path: &Path) -> Vec<PathBuf> {
        let name = format!("{}-pending.", path.file_name().unwrap().to_str().unwrap());
        let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&name))
            .collect();
        found.sort();
        found
    }

    /// What a process killed before its writer committed leaves: records only in its journal.
    /// The next open commits them, and deletes the segment.
    #[tokio::test]
    async fn records_only_in_a_dead_process_journal_are_committed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        drop(open_db(&path).unwrap());
        {
            let (journal, _) = Journal::open(&path).unwrap();
            for id in ["j1", "j2", "j3"] {
                journal.append(Box::new(answered(id)), drop).unwrap();
            }
        }
        assert_eq!(segments(&path).len(), 1);
        assert!(recent(&path, 10).unwrap().is_empty());

        let ledger = Ledger::open(&path).await.unwrap();
        let rows = recent(&path, 10).unwrap();
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["j1", "j2", "j3"]);
        assert_eq!(rows[0].attempts, answered("x").attempts);
        assert_eq!(rows[0].tokens_out, Some(9));
        // The old segment is gone; the one left is this ledger's own, still empty.
        let left = segments(&path);
        assert_eq!(left.len(), 1);
        assert_eq!(std::fs::metadata(&left[0]).unwrap().len(), 0);
        drop(ledger);
    }

    /// Durable records go to the journal and reach the database; a flush keeps the segment, a
    /// close deletes it, and after the close a record's answer waits for its commit instead.
    #[tokio::test]
    async fn a_close_leaves_no_journal_and_later_records_wait_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        for i in 0..50 {
            assert!(
                ledger.record_durable(answered(&format!("d{i:02}"))).is_none(),
                "the answer would wait for the commit"
            );
        }
        let before = segments(&path);
        assert_eq!(before.len(), 1);
        assert!(std::fs::metadata(&before[0]).unwrap().len() > 50 * 100);
        ledger.flush().await;
        assert_eq!(recent(&path, 100).unwrap().len(), 50);
        assert_eq!(segments(&path), before);
        ledger.close().await;
        assert_eq!(segments(&path), Vec::<PathBuf>::new());

        let committed = ledger.record_durable(answered("late"));
        assert!(committed.is_some(), "closed: the answer waits for the commit");
        committed.unwrap().await.unwrap();
        assert_eq!(recent(&path, 100).unwrap().len(), 51);
        assert_eq!(segments(&path), Vec::<PathBuf>::new());
    }

    /// When the last handle goes (a reload onto another ledger), its writer commits what is left
    /// and deletes the segment.
    #[tokio::test]
    async fn the_last_handle_removes_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        assert!(ledger.record_durable(answered("only")).is_none());
        assert_eq!(segments(&path).len(), 1);
        drop(ledger);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !segments(&path).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(segments(&path), Vec::<PathBuf>::new());
        assert_eq!(recent(&path, 10).unwrap().len(), 1);
    }

    /// Past `ROTATE_BYTES` the writer starts a new segment and deletes the old one once its
    /// records are committed: a long run keeps about one segment, not all of its history.
    #[tokio::test]
    async fn the_journal_rotates_under_volume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&path).await.unwrap();
        let line = serde_json::to_vec(&answered("r00000")).unwrap().len() as u64 + 2;
        let n = (3 * ROTATE_BYTES / line) as usize;
        for i in 0..n {
            ledger.record_durable(answered(&format!("r{i:05}")));
        }
        // No flush: the writer alone rotates and deletes.
        let settled = || {
            let left = segments(&path);
            recent(&path, 100_000).unwrap().len() == n
                && left.len() == 1
                && std::fs::metadata(&left[0]).unwrap().len() < ROTATE_BYTES
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !settled() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(settled(), "{:?}", segments(&path));
        // Segments are numbered in order: the survivor is not the first.
        assert!(!segments(&path)[0].to_str().unwrap().ends_with(".0"));
        drop(ledger);
    }

    #[tokio::test]
    async fn a_ledger_of_the_first_schema_is_read_and_then_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "INSERT INTO requests VALUES ('r1', 1000, NULL, 'openai', 'default', 'default', 'a', 'ok', NULL, 200, 0, 5, 7, 1.0, 2.0, 1);
                 INSERT INTO attempts VALUES ('r1', 0, 'a', 'p', 'ok', 200, 1.0, 2.0, NULL);",
            )
            .unwrap();
        }
        // Read as it is (`switchyard status` with no gateway running).
        let (parks, past) = quota_history(&path, 0, 2000).unwrap();
        assert!(parks.is_empty());
        assert_eq!((past.len(), past[0].tokens, past[0].cost_usd), (1, 12, 0.0));
        // Opened by a gateway: migrated, and the old rows are still there.
        let ledger = Ledger::open(&path).await.unwrap();
        ledger.park(ParkRecord {
            budget: "p".into(),
            park: Park {
                until_ms: 5000,
                outcome: "quota",
                reason: "spent".into(),
            },
        });
        ledger.flush().await;
        let (parks, past) = quota_history(&path, 0, 2000).unwrap();
        assert_eq!((parks.len(), past.len()), (1, 1));
        assert_eq!(recent(&path, 10).unwrap()[0].cost_usd, None);
    }
}
