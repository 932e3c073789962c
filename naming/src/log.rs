//! A crash-safe append-only log with group commit.
//!
//! ```text
//! file    = magic:"RMINSLOG" version:u32le record*
//! record  = length:u32le crc32:u32le payload      (crc32 of the payload)
//! ```
//!
//! Appends are encoded by the caller (in the order the caller decides) into
//! a shared buffer; one syncer thread writes whatever has gathered since its
//! last pass, calls `fdatasync` once, and then reports every record it
//! covered as durable. While one sync runs, new records gather for the next:
//! concurrent registrations share a sync instead of queueing one sync each.
//!
//! On open, the log is replayed up to the first record that is short, fails
//! its checksum or does not decode (the tail of a write cut short by a
//! crash); the file is cut there, so appends continue after the last good
//! record.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

const MAGIC: &[u8; 8] = b"RMINSLOG";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 12;
/// Largest record replayed: a record claiming more is corrupt.
const MAX_RECORD: usize = 16 << 20;

/// The durable position: every record up to `seq` is on disk, unless the
/// log failed.
#[derive(Debug, Clone, Default)]
struct Synced {
    seq: u64,
    failed: Option<String>,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record in `buf` (or written).
    last_seq: u64,
    failed: Option<String>,
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The open log: appends records, reports when they are durable.
#[derive(Debug)]
pub(crate) struct Log {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

/// A record's place in the log; [`Ticket::durable`] waits until it is on
/// disk.
#[derive(Debug)]
pub(crate) struct Ticket {
    seq: u64,
    synced: watch::Receiver<Synced>,
}

impl Ticket {
    /// Waits until the record is on disk.
    pub(crate) async fn durable(mut self) -> Result<(), String> {
        let seq = self.seq;
        let state = self
            .synced
            .wait_for(|s| s.seq >= seq || s.failed.is_some())
            .await
            .map_err(|_| "the log was closed before the record was written".to_owned())?;
        match (&state.failed, state.seq >= seq) {
            (_, true) => Ok(()),
            (Some(e), false) => Err(e.clone()),
            (None, false) => Err("the log stopped".to_owned()),
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&VERSION.to_le_bytes());
    h
}

/// The little-endian `u32` at `at`, if the bytes are there.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

/// Reads the records of `file`; returns them and the length of the good
/// part of the file.
fn replay<R: DeserializeOwned>(file: &mut File, path: &Path) -> io::Result<(Vec<R>, u64)> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    if bytes.is_empty() {
        return Ok((Vec::new(), 0));
    }
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not an rmi name server log (it does not start with {MAGIC:?})", path.display()),
        ));
    }
    let version = le_u32(&bytes, 8);
    if version != Some(VERSION) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has log version {version:?}; this build reads version {VERSION}", path.display()),
        ));
    }
    let mut records = Vec::new();
    let mut at = HEADER_LEN as usize;
    while let (Some(len), Some(crc)) = (le_u32(&bytes, at), le_u32(&bytes, at + 4)) {
        let len = len as usize;
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = postcard::from_bytes::<R>(payload) else { break };
        records.push(record);
        at += 8 + len;
    }
    if at < bytes.len() {
        tracing::warn!(
            "{}: ignoring {} bytes after the last complete record (a write cut short by a crash)",
            path.display(),
            bytes.len() - at
        );
    }
    Ok((records, at as u64))
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Log {
    /// Opens (or creates) the log at `path`, replays it, and rewrites it
    /// compactly as `compact(records)` when that is shorter. Returns the log
    /// and the records to apply.
    pub(crate) fn open<R, F>(path: &Path, compact: F) -> io::Result<(Log, Vec<R>)>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce(&[R]) -> Vec<R>,
    {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let (records, good) = replay::<R>(&mut file, path)?;
        let live = compact(&records);
        let file = if good == 0 || live.len() < records.len() {
            // Write the live records to a new file and swap it in, so that a
            // crash at any point leaves either the old log or the new one.
            drop(file);
            let tmp = temp_path(path);
            let mut out = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            let mut bytes = header();
            for r in &live {
                let payload = postcard::to_allocvec(r).map_err(io::Error::other)?;
                bytes.extend_from_slice(&frame(&payload));
            }
            out.write_all(&bytes)?;
            out.sync_all()?;
            drop(out);
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
            let mut file = OpenOptions::new().read(true).write(true).open(path)?;
            file.seek(SeekFrom::End(0))?;
            file
        } else {
            file.set_len(good)?;
            file.seek(SeekFrom::Start(good))?;
            file.sync_all()?;
            file
        };
        let (synced, _) = watch::channel(Synced::default());
        let shared =
            Arc::new(Shared { pending: Mutex::new(Pending::default()), wake: Condvar::new(), synced });
        let syncer = std::thread::Builder::new().name("rmi-ns-log".into()).spawn({
            let shared = shared.clone();
            move || sync_loop(file, &shared)
        })?;
        Ok((Log { shared, syncer: Some(syncer) }, live))
    }

    /// Appends `record`. Call it in the order the records must be replayed
    /// (under the lock that orders the changes they describe).
    pub(crate) fn append<R: Serialize>(&self, record: &R) -> Result<Ticket, String> {
        let payload =
            postcard::to_allocvec(record).map_err(|e| format!("cannot encode a log record: {e}"))?;
        let mut pending = self.shared.lock();
        if let Some(e) = &pending.failed {
            return Err(e.clone());
        }
        pending.buf.extend_from_slice(&frame(&payload));
        pending.last_seq += 1;
        let seq = pending.last_seq;
        drop(pending);
        self.shared.wake.notify_one();
        Ok(Ticket { seq, synced: self.shared.synced.subscribe() })
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".compacting");
    path.with_file_name(name)
}

/// Writes and syncs what gathered, until the log closes.
fn sync_loop(mut file: File, shared: &Shared) {
    loop {
        let (bytes, seq) = {
            let mut pending = shared.lock();
            while pending.buf.is_empty() && !pending.closing {
                pending = shared.wake.wait(pending).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if pending.buf.is_empty() {
                return;
            }
            (std::mem::take(&mut pending.buf), pending.last_seq)
        };
        match file.write_all(&bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {
                shared.synced.send_modify(|s| s.seq = seq);
            }
            Err(e) => {
                let message = format!("writing the log failed: {e}");
                tracing::error!("{message}; later changes are refused");
                shared.lock().failed = Some(message.clone());
                shared.synced.send_modify(|s| s.failed = Some(message));
                return;
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_all(r: &[String]) -> Vec<String> {
        r.to_vec()
    }

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        {
            let (log, old) = Log::open::<String, _>(&path, keep_all).unwrap();
            assert!(old.is_empty());
            let tickets: Vec<_> = (0..100).map(|i| log.append(&format!("r{i}")).unwrap()).collect();
            for t in tickets {
                t.durable().await.unwrap();
            }
        }
        let (_log, records) = Log::open::<String, _>(&path, keep_all).unwrap();
        assert_eq!(records, (0..100).map(|i| format!("r{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        let mut bytes = header().to_vec();
        for r in ["a", "b"] {
            bytes.extend_from_slice(&frame(&postcard::to_allocvec(&r.to_owned()).unwrap()));
        }
        let good = bytes.len();
        // A third record cut short, then zeroes as a crashed filesystem may leave.
        let third = frame(&postcard::to_allocvec(&"c".to_owned()).unwrap());
        bytes.extend_from_slice(&third[..third.len() - 1]);
        bytes.extend_from_slice(&[0; 64]);
        std::fs::write(&path, &bytes).unwrap();
        {
            let (log, records) = Log::open::<String, _>(&path, keep_all).unwrap();
            assert_eq!(records, ["a", "b"]);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good as u64);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(log.append(&"d".to_owned()).unwrap().durable()).unwrap();
        }
        let (_log, records) = Log::open::<String, _>(&path, keep_all).unwrap();
        assert_eq!(records, ["a", "b", "d"]);
    }

    #[test]
    fn a_flipped_bit_stops_the_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        let mut bytes = header().to_vec();
        for r in ["a", "b", "c"] {
            bytes.extend_from_slice(&frame(&postcard::to_allocvec(&r.to_owned()).unwrap()));
        }
        let second_payload = HEADER_LEN as usize + 8 + 2 + 8;
        bytes[second_payload] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_log, records) = Log::open::<String, _>(&path, keep_all).unwrap();
        assert_eq!(records, ["a"]);
    }

    #[test]
    fn compaction_rewrites_only_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        let mut bytes = header().to_vec();
        for r in ["a", "b", "a", "c"] {
            bytes.extend_from_slice(&frame(&postcard::to_allocvec(&r.to_owned()).unwrap()));
        }
        std::fs::write(&path, &bytes).unwrap();
        let dedup = |r: &[String]| {
            let mut v = r.to_vec();
            v.sort();
            v.dedup();
            v
        };
        drop(Log::open::<String, _>(&path, dedup).unwrap());
        let (_log, records) = Log::open::<String, _>(&path, keep_all).unwrap();
        assert_eq!(records, ["a", "b", "c"]);
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn another_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, b"my precious notes").unwrap();
        let err = Log::open::<String, _>(&path, keep_all).unwrap_err();
        assert!(err.to_string().contains("not an rmi name server log"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"my precious notes");
    }
}
