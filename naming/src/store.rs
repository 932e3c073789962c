//! The names, in memory, and (with a storage file) in the log.
//!
//! Every change is applied to the map and appended to the log under one
//! lock, so the log replays in the order the changes happened; the change is
//! acknowledged only once its record is on disk. Readers see a change as
//! soon as it is applied; a crash can only lose changes nobody was told had
//! succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rmi_core::ObjectUri;
use rmi_proxy::{MetaMatch, NamingError, Registration};
use serde::{Deserialize, Serialize};

use crate::log::{Log, Ticket};

/// A change, as the log records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Record {
    Register(Registration),
    Remove(Vec<String>),
    SetMetadata { name: String, metadata: BTreeSet<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uri: ObjectUri,
    metadata: BTreeSet<String>,
}

type Names = BTreeMap<String, Entry>;

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
    fn select<'a>(&'a self, names: &'a Names) -> Box<dyn Iterator<Item = (&'a String, &'a Entry)> + 'a> {
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

fn registration(name: &str, entry: &Entry) -> Registration {
    Registration { name: name.to_owned(), uri: entry.uri.clone(), metadata: entry.metadata.clone() }
}

fn apply(names: &mut Names, record: Record) {
    match record {
        Record::Register(r) => {
            names.insert(r.name, Entry { uri: r.uri, metadata: r.metadata });
        }
        Record::Remove(gone) => {
            for name in gone {
                names.remove(&name);
            }
        }
        Record::SetMetadata { name, metadata } => {
            if let Some(entry) = names.get_mut(&name) {
                entry.metadata = metadata;
            }
        }
    }
}

/// The registered names.
#[derive(Debug)]
pub(crate) struct Store {
    names: Mutex<Names>,
    log: Option<Log>,
}

impl Store {
    /// A store in memory only.
    pub(crate) fn in_memory() -> Self {
        Store { names: Mutex::new(Names::new()), log: None }
    }

    /// A store kept in the log at `path`, with what it held before.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let (log, records) = Log::open::<Record, _>(path, |records| {
            // The live names, each as one registration.
            let mut names = Names::new();
            for r in records {
                apply(&mut names, r.clone());
            }
            names.iter().map(|(n, e)| Record::Register(registration(n, e))).collect()
        })?;
        let mut names = Names::new();
        for r in records {
            apply(&mut names, r);
        }
        tracing::info!("{}: {} names restored", path.display(), names.len());
        Ok(Store { names: Mutex::new(names), log: Some(log) })
    }

    fn lock(&self) -> MutexGuard<'_, Names> {
        // Each change is applied whole under the lock; a poisoned lock is usable.
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `record` (already checked) and logs it, under the lock.
    fn change(&self, names: &mut Names, record: Record) -> Result<Option<Ticket>, NamingError> {
        let ticket = match &self.log {
            Some(log) => Some(log.append(&record).map_err(NamingError::Storage)?),
            None => None,
        };
        apply(names, record);
        Ok(ticket)
    }

    async fn durable(ticket: Option<Ticket>) -> Result<(), NamingError> {
        match ticket {
            Some(t) => t.durable().await.map_err(NamingError::Storage),
            None => Ok(()),
        }
    }

    pub(crate) async fn register(&self, r: Registration, safe: bool) -> Result<(), NamingError> {
        let ticket = {
            let mut names = self.lock();
            if safe && let Some(existing) = names.get(&r.name) {
                return Err(NamingError::Taken { name: r.name, uri: existing.uri.clone() });
            }
            self.change(&mut names, Record::Register(r))?
        };
        Self::durable(ticket).await
    }

    pub(crate) fn lookup(&self, name: &str) -> Result<Registration, NamingError> {
        let names = self.lock();
        let entry = names.get(name).ok_or_else(|| NamingError::NotFound(name.to_owned()))?;
        Ok(registration(name, entry))
    }

    pub(crate) fn list(&self, matcher: &Matcher) -> Vec<Registration> {
        let names = self.lock();
        matcher.select(&names).map(|(n, e)| registration(n, e)).collect()
    }

    pub(crate) async fn remove(&self, matcher: &Matcher) -> Result<u64, NamingError> {
        let (count, ticket) = {
            let mut names = self.lock();
            let gone: Vec<String> = matcher.select(&names).map(|(n, _)| n.clone()).collect();
            if gone.is_empty() {
                return Ok(0);
            }
            let count = gone.len() as u64;
            (count, self.change(&mut names, Record::Remove(gone))?)
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
            let mut names = self.lock();
            if !names.contains_key(&name) {
                return Err(NamingError::NotFound(name));
            }
            self.change(&mut names, Record::SetMetadata { name, metadata })?
        };
        Self::durable(ticket).await
    }

    pub(crate) fn yplookup(&self, tags: &BTreeSet<String>, mode: MetaMatch) -> Vec<Registration> {
        let names = self.lock();
        names
            .iter()
            .filter(|(_, e)| match mode {
                MetaMatch::All => tags.is_subset(&e.metadata),
                MetaMatch::Any => !tags.is_disjoint(&e.metadata),
            })
            .map(|(n, e)| registration(n, e))
            .collect()
    }

    pub(crate) fn count(&self) -> u64 {
        self.lock().len() as u64
    }
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
            store.register(reg("a.one", 1, &["x"]), false).await.unwrap();
            store.register(reg("a.two", 2, &[]), false).await.unwrap();
            store.register(reg("b.one", 3, &[]), false).await.unwrap();
            store.register(reg("a.one", 4, &["y"]), false).await.unwrap();
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
        store.register(reg("n", 1, &[]), true).await.unwrap();
        let err = store.register(reg("n", 2, &[]), true).await.unwrap_err();
        assert!(matches!(err, NamingError::Taken { .. }), "{err}");
        assert_eq!(store.lookup("n").unwrap().uri.to_string(), "RMI:o@127.0.0.1:1");
    }

    #[tokio::test]
    async fn prefix_exact_and_yellow_pages() {
        let store = Store::in_memory();
        for (n, tags) in
            [("a", &["red", "big"][..]), ("ab", &["red"][..]), ("abc", &[][..]), ("b", &["big"][..])]
        {
            store.register(reg(n, 1, tags), false).await.unwrap();
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
}
