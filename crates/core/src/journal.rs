//! The ledger's journal: an answered request's record, appended to a plain file before the
//! answer's last byte goes out, so that a `kill -9` the next moment loses nothing — without the
//! answer waiting for the SQLite commit (a hand-off to the writer thread, a transaction over
//! the ledger's tables and indexes, and a wake-up back), which was the largest part of the
//! gateway's own latency at low load.
//!
//! Records go to a segment file next to the database, `<ledger>-pending.<n>`, one JSON line
//! each, with one `write()` on a file opened for appending: appends from several threads do not
//! interleave, and data a `write()` handed to the kernel survives the process (not a power
//! loss, like the ledger's WAL with `synchronous=NORMAL`). The writer thread still commits every
//! record to SQLite in batches; once all the records of a segment are committed, the segment is
//! deleted. At start, segments that no live process holds (each holder keeps an exclusive
//! `flock` on its own, so a second process on the same ledger leaves them alone) are replayed
//! into the database and deleted. The replay is `INSERT OR REPLACE`: a record that was already
//! committed is written again, unchanged.

use crate::ledger::RequestRecord;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A segment grows to about this many bytes before the writer starts the next one.
pub(crate) const ROTATE_BYTES: u64 = 1 << 20;

/// An empty, unlocked segment younger than this may be one another process is about to lock.
const FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// One journal file, locked by the process that appends to it or replays it.
pub(crate) struct Segment {
    path: PathBuf,
    file: File,
    bytes: AtomicU64,
}

impl Segment {
    /// Deletes the file: every record in it is in the database.
    pub(crate) fn retire(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("ledger journal: cannot delete {}: {e}", self.path.display());
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The records in the file, in the order they were appended. A line that does not parse (a
    /// write cut short by a full disk) is skipped, and counted in the second value.
    pub(crate) fn records(&self) -> io::Result<(Vec<RequestRecord>, usize)> {
        let mut out = Vec::new();
        let mut bad = 0;
        // A fresh handle: appending moved this one's offset to the end.
        for line in BufReader::new(File::open(&self.path)?).split(b'\n') {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(&line) {
                Ok(r) => out.push(r),
                Err(_) => bad += 1,
            }
        }
        Ok((out, bad))
    }
}

pub(crate) struct Journal {
    /// `<ledger>-pending.`; a segment's number follows.
    prefix: PathBuf,
    next: AtomicU64,
    /// `None` once closed.
    current: RwLock<Option<Segment>>,
}

impl Journal {
    /// Starts a fresh segment next to `ledger`, and returns with it the segments left by
    /// processes that are gone (locked now by this one), oldest first, for the caller to replay.
    pub(crate) fn open(ledger: &Path) -> io::Result<(Journal, Vec<Segment>)> {
        let mut prefix = ledger.as_os_str().to_owned();
        prefix.push("-pending.");
        let prefix = PathBuf::from(prefix);
        let dir = match ledger.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let stem = prefix.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&stem))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((n, entry.path()));
        }
        found.sort();
        let next = found.last().map_or(0, |(n, _)| n + 1);
        let mut left = Vec::new();
        for (_, path) in found {
            let file = match OpenOptions::new().read(true).append(true).open(&path) {
                Ok(f) => f,
                // Replayed and deleted by a process that started at the same time.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!("ledger journal: cannot open {}: {e}", path.display());
                    continue;
                }
            };
            // Held by a running process (another gateway, or `brain`, on the same ledger): its
            // owner commits and deletes it.
            if file.try_lock().is_err() {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            // An empty one just created by a process that has not locked it yet: not ours to
            // delete. (Nothing is appended before the lock, so there is nothing to replay.)
            let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
            if meta.len() == 0 && age.is_none_or(|a| a < FRESH) {
                continue;
            }
            let bytes = AtomicU64::new(meta.len());
            left.push(Segment { path, file, bytes });
        }
        let next = AtomicU64::new(next);
        let current = RwLock::new(Some(create(&prefix, &next)?));
        let journal = Journal { prefix, next, current };
        Ok((journal, left))
    }

    /// Appends `r` with one `write()`, then calls `then` with it while the segment cannot be
    /// switched: whoever retires a segment has had every record appended to it handed over.
    /// On failure the record comes back, not handed over, with the error (`None`: the journal
    /// is closed).
    pub(crate) fn append(
        &self,
        r: Box<RequestRecord>,
        then: impl FnOnce(Box<RequestRecord>),
    ) -> Result<(), (Box<RequestRecord>, Option<io::Error>)> {
        // A leading newline: after a write cut short, the next record still starts a line.
        let mut line = Vec::with_capacity(512);
        line.push(b'\n');
        if let Err(e) = serde_json::to_writer(&mut line, &*r) {
            return Err((r, Some(e.into())));
        }
        line.push(b'\n');
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        let Some(seg) = cur.as_ref() else {
            return Err((r, None));
        };
        if let Err(e) = (&seg.file).write_all(&line) {
            return Err((r, Some(e)));
        }
        seg.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        then(r);
        Ok(())
    }

    /// Bytes appended to the current segment.
    pub(crate) fn len(&self) -> u64 {
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        cur.as_ref().map_or(0, |s| s.bytes.load(Ordering::Relaxed))
    }

    /// Starts the next segment and returns the one it replaces: once this returns, every append
    /// to the old one has run its `then`. `None` if the journal is closed.
    pub(crate) fn rotate(&self) -> io::Result<Option<Segment>> {
        let fresh = create(&self.prefix, &self.next)?;
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        if cur.is_none() {
            fresh.retire();
            return Ok(None);
        }
        Ok(cur.replace(fresh))
    }

    /// Takes the current segment and appends no more: records from now on are refused (their
    /// answers wait for the database commit instead). As with `rotate`, every append to the
    /// segment has run its `then` once this returns.
    pub(crate) fn close(&self) -> Option<Segment> {
        self.current.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The current segment, once no one else can append to it.
    pub(crate) fn into_current(self) -> Option<Segment> {
        self.current.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new segment file, numbered after every one this process has seen.
fn create(prefix: &Path, next: &AtomicU64) -> io::Result<Segment> {
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let mut path = prefix.as_os_str().to_owned();
        path.push(n.to_string());
        let path = PathBuf::from(path);
        match OpenOptions::new().read(true).append(true).create_new(true).open(&path) {
            Ok(file) => {
                file.try_lock().map_err(io::Error::other)?;
                return Ok(Segment {
                    path,
                    file,
                    bytes: AtomicU64::new(0),
                });
            }
            // Another process on the same ledger took that number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn rec(id: &str) -> Box<RequestRecord> {
        Box::new(RequestRecord {
            id: id.into(),
            ts_ms: 1,
            dialect: "openai".into(),
            model: "m".into(),
            status: "ok".into(),
            http_status: 200,
            ..RequestRecord::default()
        })
    }

    #[test]
    fn a_segment_left_behind_is_found_and_read_back_without_its_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let (j, left) = Journal::open(&ledger).unwrap();
        assert!(left.is_empty());
        let mut handed = Vec::new();
        for id in ["a", "b"] {
            j.append(rec(id), |r| handed.push(r.id)).unwrap();
        }
        assert_eq!(handed, ["a", "b"]);
        // A write cut short, then one more record.
        let path = j.into_current().unwrap().path.clone();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\n{\"id\":\"torn\",\"ts")
            .unwrap();
        // `into_current` dropped the file and its lock: a new process finds the segment.
        let (j2, left) = Journal::open(&ledger).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path(), path);
        let (records, bad) = left[0].records().unwrap();
        assert_eq!(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(records[0], *rec("a"));
        assert_eq!(bad, 1);
        // The new segment comes after it.
        assert_ne!(j2.current.read().unwrap().as_ref().unwrap().path, path);
        for s in left {
            s.retire();
        }
        assert!(!path.exists());
    }

    #[test]
    fn a_segment_held_by_a_live_journal_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let (live, _) = Journal::open(&ledger).unwrap();
        live.append(rec("x"), |_| {}).unwrap();
        let (other, left) = Journal::open(&ledger).unwrap();
        assert!(left.is_empty(), "a live segment was taken for replay");
        // Both append, each to its own file.
        other.append(rec("y"), |_| {}).unwrap();
        let path = |j: &Journal| j.current.read().unwrap().as_ref().unwrap().path.clone();
        assert_ne!(path(&live), path(&other));
    }

    #[test]
    fn a_fresh_empty_segment_is_left_to_the_process_about_to_lock_it() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let empty = Journal::open(&ledger).unwrap().0.into_current().unwrap().path.clone();
        let (_j, left) = Journal::open(&ledger).unwrap();
        assert!(left.is_empty());
        assert!(empty.exists());
    }

    #[test]
    fn rotation_hands_back_the_old_segment_with_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(&dir.path().join("l.db")).unwrap();
        j.append(rec("a"), |_| {}).unwrap();
        assert!(j.len() > 0);
        let old = j.rotate().unwrap().unwrap();
        assert_eq!(j.len(), 0);
        j.append(rec("b"), |_| {}).unwrap();
        assert_eq!(old.records().unwrap().0[0].id, "a");
        let last = j.close().unwrap();
        assert_eq!(last.records().unwrap().0[0].id, "b");
        // Closed: a record is refused, handed back, without an error.
        let mut handed = false;
        let (back, err) = j.append(rec("c"), |_| handed = true).unwrap_err();
        assert_eq!((back.id.as_str(), err.is_none(), handed), ("c", true, false));
        assert!(j.rotate().unwrap().is_none());
        assert_eq!(j.len(), 0);
    }
}
