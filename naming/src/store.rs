//! The names, in memory, and (with a storage file) in the log.
//!
//! Every change is applied to the map and appended to the log under one
//! lock, so the log replays in the order the changes happened; the change is
//! acknowledged only once its record is on disk. Readers see a change as
//! soon as it is applied; a crash can only lose changes nobody was told had
//! succeeded.
//!
//! Leases: a name registered with a lease lives while its lease is kept
//! alive; a lease not kept alive for its TTL ends, and its names with it.
//! Grants, leased registrations and ends are logged; keep-alives are not
//! (they come every few seconds), so a restored lease starts a fresh TTL:
//! its daemon, if alive, keeps it; if not, it ends one TTL after the restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmi_core::ObjectUri;
use rmi_proxy::{MetaMatch, NamingError, Registration};
use serde::{Deserialize, Serialize};

use crate::log::{Log, Ticket};

/// A change, as the log records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Record {
    Register(Registration),
    Remove(Vec<String>),
    SetMetadata {
        name: String,
        metadata: BTreeSet<String>,
    },
    Grant {
        lease: u64,
        ttl_ms: u64,
    },
    RegisterLeased {
        registration: Registration,
        lease: u64,
    },
    /// A lease ended (revoked or expired), and its names with it.
    End(u64),
}

/// A name's registration, as the stores hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) uri: ObjectUri,
    pub(crate) metadata: BTreeSet<String>,
    pub(crate) lease: Option<u64>,
}

pub(crate) type Names = BTreeMap<String, Entry>;

#[derive(Debug)]
struct LeaseState {
    ttl: Duration,
    deadline: Instant,
    names: BTreeSet<String>,
}

/// The names and the leases, changed together under one lock.
#[derive(Debug, Default)]
struct State {
    names: Names,
    leases: HashMap<u64, LeaseState>,
}

impl State {
    /// Removes `name`, and its place in its lease.
    fn unlink(&mut self, name: &str) {
        if let Some(Entry { lease: Some(lease), .. }) = self.names.remove(name)
            && let Some(l) = self.leases.get_mut(&lease)
        {
            l.names.remove(name);
        }
    }

    fn insert(&mut self, r: Registration, lease: Option<u64>) {
        self.unlink(&r.name);
        if let Some(id) = lease
            && let Some(l) = self.leases.get_mut(&id)
        {
            l.names.insert(r.name.clone());
        }
        self.names.insert(r.name, Entry { uri: r.uri, metadata: r.metadata, lease });
    }
}

/// Which names a listing or removal covers; compiled from a filter.
pub(crate) enum Matcher {
    All,
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Exact(n) => n == name,
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
            Matcher::Regex(r) => r.is_match(name),
        }
    }

    /// The names of `names` that match, without scanning more than needed.
    pub(crate) fn select<'a>(
        &'a self,
        names: &'a Names,
    ) -> Box<dyn Iterator<Item = (&'a String, &'a Entry)> + 'a> {
        match self {
            Matcher::Exact(n) => Box::new(names.get_key_value(n).into_iter()),
            Matcher::Prefix(p) => Box::new(
                names
                    .range::<str, _>((std::ops::Bound::Included(p.as_str()), std::ops::Bound::Unbounded))
                    .take_while(move |(k, _)| k.starts_with(p.as_str())),
            ),
            _ => Box::new(names.iter().filter(move |(k, _)| self.matches(k))),
        }
    }
}

pub(crate) fn registration(name: &str, entry: &Entry) -> Registration {
    Registration { name: name.to_owned(), uri: entry.uri.clone(), metadata: entry.metadata.clone() }
}

/// Applies a change; `now` starts the TTL of a granted lease.
fn apply(state: &mut State, record: Record, now: Instant) {
    match record {
        Record::Register(r) => state.insert(r, None),
        Record::RegisterLeased { registration, lease } => state.insert(registration, Some(lease)),
        Record::Remove(gone) => {
            for name in gone {
                state.unlink(&name);
            }
        }
        Record::SetMetadata { name, metadata } => {
            if let Some(entry) = state.names.get_mut(&name) {
                entry.metadata = metadata;
            }
        }
        Record::Grant { lease, ttl_ms } => {
            let ttl = Duration::from_millis(ttl_ms);
            state.leases.insert(lease, LeaseState { ttl, deadline: now + ttl, names: BTreeSet::new() });
        }
        Record::End(lease) => {
            if let Some(l) = state.leases.remove(&lease) {
                for name in l.names {
                    state.names.remove(&name);
                }
            }
        }
    }
}

/// The shortest and longest lease accepted, and how many may be live.
pub(crate) const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
pub(crate) const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);
pub(crate) const MAX_LEASES: usize = 65_536;

/// Checks a lease TTL asked for, in milliseconds.
pub(crate) fn check_ttl(ttl_ms: u64) -> Result<Duration, NamingError> {
    let ttl = Duration::from_millis(ttl_ms);
    if ttl < MIN_LEASE_TTL || ttl > MAX_LEASE_TTL {
        return Err(NamingError::BadLease(format!(
            "a lease's TTL is 1 s to 1 h, not {ttl_ms} ms (the default is {} s)",
            rmi_proxy::DEFAULT_LEASE_TTL.as_secs()
        )));
    }
    Ok(ttl)
}

/// The registered names.
#[derive(Debug)]
pub(crate) struct Store {
    state: Mutex<State>,
    log: Option<Log>,
}

impl Store {
    /// A store in memory only.
    pub(crate) fn in_memory() -> Self {
        Store { state: Mutex::new(State::default()), log: None }
    }

    /// A store kept in the log at `path`, with what it held before.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let now = Instant::now();
        let (log, records) = Log::open::<Record, _>(path, |records| {
            // The live leases, then the live names, each as one record.
            let mut state = State::default();
            for r in records {
                apply(&mut state, r.clone(), now);
            }
            let grants = state.leases.iter().map(|(id, l)| Record::Grant {
                lease: *id,
                ttl_ms: u64::try_from(l.ttl.as_millis()).unwrap_or(u64::MAX),
            });
            let names = state.names.iter().map(|(n, e)| match e.lease {
                None => Record::Register(registration(n, e)),
                Some(lease) => Record::RegisterLeased { registration: registration(n, e), lease },
            });
            grants.chain(names).collect()
        })?;
        let mut state = State::default();
        for r in records {
            apply(&mut state, r, now);
        }
        tracing::info!(
            "{}: {} names restored ({} leases, each with a fresh TTL)",
            path.display(),
            state.names.len(),
            state.leases.len()
        );
        Ok(Store { state: Mutex::new(state), log: Some(log) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each change is applied whole under the lock; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `record` (already checked) and logs it, under the lock.
    fn change(&self, state: &mut State, record: Record) -> Result<Option<Ticket>, NamingError> {
        let ticket = match &self.log {
            Some(log) => Some(log.append(&record).map_err(NamingError::Storage)?),
            None => None,
        };
        apply(state, record, Instant::now());
        Ok(ticket)
    }

    async fn durable(ticket: Option<Ticket>) -> Result<(), NamingError> {
        match ticket {
            Some(t) => t.durable().await.map_err(NamingError::Storage),
            None => Ok(()),
        }
    }

    /// Registers `r`, with `lease` if given (which must be live).
    pub(crate) async fn register(
        &self,
        r: Registration,
        safe: bool,
        lease: Option<u64>,
    ) -> Result<(), NamingError> {
        let ticket = {
            let mut state = self.lock();
            if safe && let Some(existing) = state.names.get(&r.name) {
                return Err(NamingError::Taken { name: r.name, uri: existing.uri.clone() });
            }
            let record = match lease {
                None => Record::Register(r),
                Some(lease) => {
                    if !Self::is_live(&state, lease, Instant::now()) {
                        return Err(NamingError::LeaseNotFound(lease));
                    }
                    Record::RegisterLeased { registration: r, lease }
                }
            };
            self.change(&mut state, record)?
        };
        Self::durable(ticket).await
    }

    fn is_live(state: &State, lease: u64, now: Instant) -> bool {
        state.leases.get(&lease).is_some_and(|l| l.deadline > now)
    }

    /// Grants a lease of `ttl`; returns its id.
    pub(crate) async fn grant(&self, ttl: Duration) -> Result<u64, NamingError> {
        let (lease, ticket) = {
            let mut state = self.lock();
            if state.leases.len() >= MAX_LEASES {
                return Err(NamingError::BadLease(format!(
                    "the name server holds {MAX_LEASES} leases, its most; revoke some first"
                )));
            }
            let lease = loop {
                // Ids as etcd's are: positive, never 0.
                let id = random_u64() & (i64::MAX as u64);
                if id != 0 && !state.leases.contains_key(&id) {
                    break id;
                }
            };
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            (lease, self.change(&mut state, Record::Grant { lease, ttl_ms })?)
        };
        Self::durable(ticket).await?;
        Ok(lease)
    }

    /// Restarts a live lease's TTL.
    pub(crate) fn keep_alive(&self, lease: u64) -> Result<(), NamingError> {
        let now = Instant::now();
        let mut state = self.lock();
        match state.leases.get_mut(&lease) {
            Some(l) if l.deadline > now => {
                l.deadline = now + l.ttl;
                Ok(())
            }
            _ => Err(NamingError::LeaseNotFound(lease)),
        }
    }

    /// Ends a lease and removes its names; returns how many.
    pub(crate) async fn revoke(&self, lease: u64) -> Result<u64, NamingError> {
        let (count, ticket) = {
            let mut state = self.lock();
            let Some(l) = state.leases.get(&lease) else {
                return Err(NamingError::LeaseNotFound(lease));
            };
            let count = l.names.len() as u64;
            (count, self.change(&mut state, Record::End(lease))?)
        };
        Self::durable(ticket).await?;
        Ok(count)
    }

    /// Ends the leases whose TTL has passed, and their names; returns how
    /// many names went. Not waited on to be durable: a lost end is redone
    /// one TTL after a restart.
    pub(crate) fn expire(&self, now: Instant) -> usize {
        let mut state = self.lock();
        let ended: Vec<u64> =
            state.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(id, _)| *id).collect();
        let mut gone = 0;
        for lease in ended {
            gone += state.leases.get(&lease).map_or(0, |l| l.names.len());
            if let Err(e) = self.change(&mut state, Record::End(lease)) {
                tracing::warn!("cannot log the end of lease {lease:x}: {e}");
            }
        }
        gone
    }

    pub(crate) fn lookup(&self, name: &str) -> Result<Registration, NamingError> {
        let state = self.lock();
        let entry = state.names.get(name).ok_or_else(|| NamingError::NotFound(name.to_owned()))?;
        Ok(registration(name, entry))
    }

    pub(crate) fn list(&self, matcher: &Matcher) -> Vec<Registration> {
        let state = self.lock();
        matcher.select(&state.names).map(|(n, e)| registration(n, e)).collect()
    }

    pub(crate) async fn remove(&self, matcher: &Matcher) -> Result<u64, NamingError> {
        let (count, ticket) = {
            let mut state = self.lock();
            let gone: Vec<String> = matcher.select(&state.names).map(|(n, _)| n.clone()).collect();
            if gone.is_empty() {
                return Ok(0);
            }
            let count = gone.len() as u64;
            (count, self.change(&mut state, Record::Remove(gone))?)
        };
        Self::durable(ticket).await?;
        Ok(count)
    }

    pub(crate) async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        let ticket = {
            let mut state = self.lock();
            if !state.names.contains_key(&name) {
                return Err(NamingError::NotFound(name));
            }
            self.change(&mut state, Record::SetMetadata { name, metadata })?
        };
        Self::durable(ticket).await
    }

    pub(crate) fn yplookup(&self, tags: &BTreeSet<String>, mode: MetaMatch) -> Vec<Registration> {
        yellow_pages(&self.lock().names, tags, mode)
    }

    pub(crate) fn count(&self) -> u64 {
        self.lock().names.len() as u64
    }
}

/// The registrations of `names` with all (or any) of `tags`.
pub(crate) fn yellow_pages(names: &Names, tags: &BTreeSet<String>, mode: MetaMatch) -> Vec<Registration> {
    names
        .iter()
        .filter(|(_, e)| match mode {
            MetaMatch::All => tags.is_subset(&e.metadata),
            MetaMatch::Any => !tags.is_disjoint(&e.metadata),
        })
        .map(|(n, e)| registration(n, e))
        .collect()
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: time still tells leases apart within one process.
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, port: u16, tags: &[&str]) -> Registration {
        Registration {
            name: name.to_owned(),
            uri: format!("RMI:o@127.0.0.1:{port}").parse().unwrap(),
            metadata: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn every_change_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        {
            let store = Store::open(&path).unwrap();
            store.register(reg("a.one", 1, &["x"]), false, None).await.unwrap();
            store.register(reg("a.two", 2, &[]), false, None).await.unwrap();
            store.register(reg("b.one", 3, &[]), false, None).await.unwrap();
            store.register(reg("a.one", 4, &["y"]), false, None).await.unwrap();
            store.set_metadata("a.two".into(), ["z".to_owned()].into()).await.unwrap();
            assert_eq!(store.remove(&Matcher::Prefix("b.".into())).await.unwrap(), 1);
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count(), 2);
        assert_eq!(store.lookup("a.one").unwrap(), reg("a.one", 4, &["y"]));
        assert_eq!(store.lookup("a.two").unwrap(), reg("a.two", 2, &["z"]));
        assert!(matches!(store.lookup("b.one"), Err(NamingError::NotFound(_))));
    }

    #[tokio::test]
    async fn safe_mode_refuses_to_overwrite() {
        let store = Store::in_memory();
        store.register(reg("n", 1, &[]), true, None).await.unwrap();
        let err = store.register(reg("n", 2, &[]), true, None).await.unwrap_err();
        assert!(matches!(err, NamingError::Taken { .. }), "{err}");
        assert_eq!(store.lookup("n").unwrap().uri.to_string(), "RMI:o@127.0.0.1:1");
    }

    #[tokio::test]
    async fn prefix_exact_and_yellow_pages() {
        let store = Store::in_memory();
        for (n, tags) in
            [("a", &["red", "big"][..]), ("ab", &["red"][..]), ("abc", &[][..]), ("b", &["big"][..])]
        {
            store.register(reg(n, 1, tags), false, None).await.unwrap();
        }
        let names = |v: Vec<Registration>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(store.list(&Matcher::Prefix("ab".into()))), ["ab", "abc"]);
        assert_eq!(names(store.list(&Matcher::Exact("ab".into()))), ["ab"]);
        assert_eq!(names(store.list(&Matcher::All)), ["a", "ab", "abc", "b"]);
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(names(store.yplookup(&tags(&["red", "big"]), MetaMatch::All)), ["a"]);
        assert_eq!(names(store.yplookup(&tags(&["red", "big"]), MetaMatch::Any)), ["a", "ab", "b"]);
        assert_eq!(names(store.yplookup(&tags(&["none"]), MetaMatch::Any)), Vec::<String>::new());
    }

    #[tokio::test]
    async fn leased_names_end_with_their_lease() {
        let store = Store::in_memory();
        let lease = store.grant(Duration::from_secs(2)).await.unwrap();
        store.register(reg("leased.a", 1, &[]), false, Some(lease)).await.unwrap();
        store.register(reg("leased.b", 2, &[]), false, Some(lease)).await.unwrap();
        store.register(reg("plain", 3, &[]), false, None).await.unwrap();
        // Re-registered without the lease, a name leaves it.
        store.register(reg("leased.b", 4, &[]), false, None).await.unwrap();
        let later = Instant::now() + Duration::from_secs(1);
        assert_eq!(store.expire(later), 0, "not yet");
        store.keep_alive(lease).unwrap();
        assert_eq!(store.expire(Instant::now() + Duration::from_millis(1500)), 0, "kept alive");
        assert_eq!(store.expire(Instant::now() + Duration::from_secs(3)), 1);
        assert!(matches!(store.lookup("leased.a"), Err(NamingError::NotFound(_))));
        assert_eq!(store.lookup("leased.b").unwrap().uri.to_string(), "RMI:o@127.0.0.1:4");
        assert_eq!(store.count(), 2);
        assert!(matches!(store.keep_alive(lease), Err(NamingError::LeaseNotFound(_))));
        let err = store.register(reg("late", 5, &[]), false, Some(lease)).await.unwrap_err();
        assert!(matches!(err, NamingError::LeaseNotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn revoking_removes_the_names_at_once() {
        let store = Store::in_memory();
        let lease = store.grant(Duration::from_secs(60)).await.unwrap();
        for i in 0..10 {
            store.register(reg(&format!("n{i}"), 1, &[]), false, Some(lease)).await.unwrap();
        }
        store.register(reg("other", 1, &[]), false, None).await.unwrap();
        assert_eq!(store.revoke(lease).await.unwrap(), 10);
        assert_eq!(store.count(), 1);
        assert!(matches!(store.revoke(lease).await, Err(NamingError::LeaseNotFound(_))));
    }

    #[tokio::test]
    async fn a_restart_keeps_leased_names_while_their_lease_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.log");
        let (kept, ended) = {
            let store = Store::open(&path).unwrap();
            let kept = store.grant(Duration::from_secs(30)).await.unwrap();
            let ended = store.grant(Duration::from_secs(30)).await.unwrap();
            store.register(reg("kept", 1, &["t"]), false, Some(kept)).await.unwrap();
            store.register(reg("ended", 2, &[]), false, Some(ended)).await.unwrap();
            store.register(reg("plain", 3, &[]), false, None).await.unwrap();
            store.revoke(ended).await.unwrap();
            (kept, ended)
        };
        // Twice: the second open reads the compacted log.
        for _ in 0..2 {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.count(), 2);
            assert_eq!(store.lookup("kept").unwrap(), reg("kept", 1, &["t"]));
            store.keep_alive(kept).unwrap();
            assert!(matches!(store.keep_alive(ended), Err(NamingError::LeaseNotFound(_))));
        }
        // Not kept alive after the restart, the lease ends one TTL later.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.expire(Instant::now() + Duration::from_secs(31)), 1);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count(), 1, "the end was logged");
    }

    #[test]
    fn lease_ttls_are_bounded() {
        assert!(check_ttl(999).is_err());
        assert!(check_ttl(3_600_001).is_err());
        assert_eq!(check_ttl(5_000).unwrap(), Duration::from_secs(5));
    }
}
