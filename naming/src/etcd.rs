//! The names kept in etcd (the `etcd` feature): several `rmi-naming`
//! replicas on one etcd cluster serve the same names.
//!
//! Every registration is one key, `<prefix>names/<name>`, whose value is
//! JSON (`{"uri": "RMI:…", "metadata": ["tag", …]}`, readable with
//! `etcdctl get --prefix /rmi/naming/`); a leased registration's key is
//! attached to an etcd lease of the same id, so etcd removes it when the
//! lease ends, whichever replica granted it. Writes go to etcd and are
//! acknowledged once etcd has committed them and this replica's cache has
//! seen them (so a client reads its own writes on the replica it wrote
//! through). Reads are served from the cache, which a watch on the prefix
//! keeps current; when the watch breaks (a member died, the connection
//! dropped, the history was compacted) the cache is loaded anew.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use rmi_core::ObjectUri;
use rmi_proxy::{MetaMatch, NamingError, Registration};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::EtcdOptions;
use crate::store::{Entry, Matcher, Names, registration, yellow_pages};

/// How long one etcd request may take before it fails (and a client of the
/// replica is told the storage failed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for the watch to bring it into the cache.
const SEEN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most operations etcd takes in one transaction (its default
/// `--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;

/// A registration as its etcd value holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Value {
    uri: String,
    #[serde(default)]
    metadata: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Cache {
    names: Names,
}

/// The names in etcd, and this replica's cache of them.
pub(crate) struct EtcdStore {
    client: Client,
    names_prefix: String,
    cache: Mutex<Cache>,
    /// The etcd revision the cache holds.
    seen: watch::Sender<i64>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("prefix", &self.names_prefix).finish_non_exhaustive()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(task) = self.watcher.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// Why a request to etcd failed.
#[derive(Debug)]
enum Failed {
    Etcd(etcd_client::Error),
    Timeout,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Etcd(e) => write!(f, "{e}"),
            Failed::Timeout => write!(f, "no answer in {REQUEST_TIMEOUT:?}"),
        }
    }
}

/// One request to etcd, bounded in time.
async fn ask<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(answer) => answer.map_err(Failed::Etcd),
        Err(_) => Err(Failed::Timeout),
    }
}

fn storage(e: &Failed) -> NamingError {
    NamingError::Storage(format!("etcd: {e}"))
}

/// Whether etcd said the lease is not there.
fn lease_missing(e: &Failed) -> bool {
    match e {
        Failed::Etcd(etcd_client::Error::LeaseKeepAliveError(m)) => m.contains("lease not found"),
        Failed::Etcd(other) => other.to_string().contains("requested lease not found"),
        Failed::Timeout => false,
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}

impl EtcdStore {
    /// Connects to etcd, loads the names under the prefix and starts
    /// watching them.
    pub(crate) async fn connect(options: &EtcdOptions) -> Result<Arc<Self>, String> {
        if options.endpoints.is_empty() {
            return Err("no etcd endpoint given".into());
        }
        let mut connect = ConnectOptions::new()
            // No request timeout on the channel: it would cut the watch
            // (a stream) after it; requests are bounded one by one below.
            .with_connect_timeout(REQUEST_TIMEOUT)
            // etcd refuses pings more often than every 5 s (it closes the
            // connection: `--grpc-keepalive-min-time`).
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &options.tls {
            connect = connect.with_tls(tls_options(tls)?);
        }
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|e| format!("cannot connect to etcd at {}: {e}", options.endpoints.join(",")))?;
        let (seen, _) = watch::channel(0);
        let store = Arc::new(EtcdStore {
            client,
            names_prefix: format!("{}names/", options.prefix),
            cache: Mutex::default(),
            seen,
            watcher: Mutex::new(None),
        });
        let revision = store.load().await.map_err(|e| format!("cannot read the names from etcd: {e}"))?;
        let task = tokio::spawn(watch_loop(Arc::downgrade(&store), revision));
        *lock(&store.watcher) = Some(task);
        Ok(store)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.names_prefix)
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    /// Reads every name into the cache; returns the revision read at.
    async fn load(&self) -> Result<i64, Failed> {
        let response =
            ask(self.client().get(self.names_prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
        let revision = revision_of(response.header());
        let mut names = Names::new();
        for kv in response.kvs() {
            if let Some((name, entry)) = self.decode(kv) {
                names.insert(name, entry);
            }
        }
        tracing::info!("{} names read from etcd (revision {revision})", names.len());
        lock(&self.cache).names = names;
        self.saw(revision);
        Ok(revision)
    }

    fn saw(&self, revision: i64) {
        self.seen.send_if_modified(|seen| {
            let newer = revision > *seen;
            if newer {
                *seen = revision;
            }
            newer
        });
    }

    /// The name and registration a key holds; `None` (logged) for a key
    /// that is not one rmi-naming wrote.
    fn decode(&self, kv: &KeyValue) -> Option<(String, Entry)> {
        let name = kv.key_str().ok()?.strip_prefix(self.names_prefix.as_str())?.to_owned();
        let value: Value = match serde_json::from_slice(kv.value()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "etcd key {:?} is not a registration ({e}): ignored",
                    String::from_utf8_lossy(kv.key())
                );
                return None;
            }
        };
        let uri: ObjectUri = value.uri.parse().ok()?;
        let lease = u64::try_from(kv.lease()).ok().filter(|l| *l != 0);
        Some((name, Entry { uri, metadata: value.metadata, lease }))
    }

    /// Waits until the cache holds `revision` (the write's own), so that
    /// the writer reads it back from this replica.
    async fn seen(&self, revision: i64) {
        let mut seen = self.seen.subscribe();
        if tokio::time::timeout(SEEN_TIMEOUT, seen.wait_for(|r| *r >= revision)).await.is_err() {
            tracing::warn!("the watch has not brought revision {revision} in {SEEN_TIMEOUT:?}");
        }
    }

    fn value(r: &Registration) -> Result<Vec<u8>, NamingError> {
        let value = Value { uri: r.uri.to_string(), metadata: r.metadata.clone() };
        serde_json::to_vec(&value).map_err(|e| NamingError::Storage(e.to_string()))
    }

    pub(crate) async fn register(
        &self,
        r: Registration,
        safe: bool,
        lease: Option<u64>,
    ) -> Result<(), NamingError> {
        let key = self.key(&r.name);
        let value = Self::value(&r)?;
        let options = match lease {
            Some(id) => {
                PutOptions::new().with_lease(i64::try_from(id).map_err(|_| NamingError::LeaseNotFound(id))?)
            }
            None => PutOptions::new(),
        };
        let not_found = |e: &Failed| match lease {
            Some(id) if lease_missing(e) => NamingError::LeaseNotFound(id),
            _ => storage(e),
        };
        let revision = if safe {
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), value, Some(options))])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = ask(self.client().txn(txn)).await.map_err(|e| not_found(&e))?;
            if !response.succeeded() {
                let existing = response.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().and_then(|kv| self.decode(kv)),
                    _ => None,
                });
                return Err(match existing {
                    Some((_, entry)) => NamingError::Taken { name: r.name, uri: entry.uri },
                    None => {
                        NamingError::Storage("the name was taken and removed meanwhile; try again".into())
                    }
                });
            }
            revision_of(response.header())
        } else {
            let response =
                ask(self.client().put(key, value, Some(options))).await.map_err(|e| not_found(&e))?;
            revision_of(response.header())
        };
        self.seen(revision).await;
        Ok(())
    }

    pub(crate) fn lookup(&self, name: &str) -> Result<Registration, NamingError> {
        let cache = lock(&self.cache);
        let entry = cache.names.get(name).ok_or_else(|| NamingError::NotFound(name.to_owned()))?;
        Ok(registration(name, entry))
    }

    pub(crate) fn list(&self, matcher: &Matcher) -> Vec<Registration> {
        let cache = lock(&self.cache);
        matcher.select(&cache.names).map(|(n, e)| registration(n, e)).collect()
    }

    pub(crate) fn yplookup(&self, tags: &BTreeSet<String>, mode: MetaMatch) -> Vec<Registration> {
        yellow_pages(&lock(&self.cache).names, tags, mode)
    }

    pub(crate) fn count(&self) -> u64 {
        lock(&self.cache).names.len() as u64
    }

    pub(crate) async fn remove(&self, matcher: &Matcher) -> Result<u64, NamingError> {
        let (deleted, revision) = match matcher {
            Matcher::Exact(name) => {
                let response =
                    ask(self.client().delete(self.key(name), None)).await.map_err(|e| storage(&e))?;
                (response.deleted(), revision_of(response.header()))
            }
            Matcher::Prefix(p) => {
                let options = DeleteOptions::new().with_prefix();
                let response =
                    ask(self.client().delete(self.key(p), Some(options))).await.map_err(|e| storage(&e))?;
                (response.deleted(), revision_of(response.header()))
            }
            _ => {
                let names: Vec<String> = self.list(matcher).into_iter().map(|r| r.name).collect();
                let mut deleted = 0;
                let mut revision = 0;
                for chunk in names.chunks(MAX_TXN_OPS) {
                    let ops: Vec<TxnOp> = chunk.iter().map(|n| TxnOp::delete(self.key(n), None)).collect();
                    let response =
                        ask(self.client().txn(Txn::new().and_then(ops))).await.map_err(|e| storage(&e))?;
                    revision = revision_of(response.header());
                    deleted += response
                        .op_responses()
                        .iter()
                        .map(|op| match op {
                            TxnOpResponse::Delete(d) => d.deleted(),
                            _ => 0,
                        })
                        .sum::<i64>();
                }
                (deleted, revision)
            }
        };
        self.seen(revision).await;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    pub(crate) async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        let Ok(current) = self.lookup(&name) else {
            return Err(NamingError::NotFound(name));
        };
        let key = self.key(&name);
        let value = Self::value(&Registration { metadata, ..current })?;
        // Only if it is still there; its lease stays.
        let txn = Txn::new()
            .when([Compare::version(key.as_str(), CompareOp::Greater, 0)])
            .and_then([TxnOp::put(key.as_str(), value, Some(PutOptions::new().with_ignore_lease()))]);
        let response = ask(self.client().txn(txn)).await.map_err(|e| storage(&e))?;
        if !response.succeeded() {
            return Err(NamingError::NotFound(name));
        }
        self.seen(revision_of(response.header())).await;
        Ok(())
    }

    pub(crate) async fn grant(&self, ttl: Duration) -> Result<u64, NamingError> {
        // etcd's TTLs are whole seconds.
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
        let response = ask(self.client().lease_grant(secs, None)).await.map_err(|e| storage(&e))?;
        if !response.error().is_empty() {
            return Err(NamingError::BadLease(format!("etcd: {}", response.error())));
        }
        u64::try_from(response.id())
            .map_err(|_| NamingError::Storage("etcd granted a negative lease id".into()))
    }

    pub(crate) async fn keep_alive(&self, lease: u64) -> Result<(), NamingError> {
        let id = i64::try_from(lease).map_err(|_| NamingError::LeaseNotFound(lease))?;
        // Opening the stream sends one keep-alive and reads its answer
        // (an error when etcd has no such lease).
        match ask(self.client().lease_keep_alive(id)).await {
            Ok(_) => Ok(()),
            Err(e) if lease_missing(&e) => Err(NamingError::LeaseNotFound(lease)),
            Err(e) => Err(storage(&e)),
        }
    }

    pub(crate) async fn revoke(&self, lease: u64) -> Result<u64, NamingError> {
        let id = i64::try_from(lease).map_err(|_| NamingError::LeaseNotFound(lease))?;
        let count = lock(&self.cache).names.values().filter(|e| e.lease == Some(lease)).count() as u64;
        let response = ask(self.client().lease_revoke(id))
            .await
            .map_err(|e| if lease_missing(&e) { NamingError::LeaseNotFound(lease) } else { storage(&e) })?;
        self.seen(revision_of(response.header())).await;
        Ok(count)
    }
}

/// The TLS settings of the etcd client, from the PEM files.
fn tls_options(tls: &crate::EtcdTls) -> Result<etcd_client::TlsOptions, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut options =
        etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca)?));
    if let Some((cert, key)) = &tls.identity {
        options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(options)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the value whole; a poisoned lock is usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Applies the changes under the prefix to the cache as etcd reports them;
/// when the watch breaks, loads the cache anew and watches from there.
async fn watch_loop(store: Weak<EtcdStore>, mut revision: i64) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(s) = store.upgrade() else { return };
        let mut client = s.client();
        let options =
            WatchOptions::new().with_prefix().with_start_revision(revision + 1).with_progress_notify();
        let prefix = s.names_prefix.clone();
        drop(s);
        let broke = match ask(client.watch(prefix, Some(options))).await {
            Ok((_watcher, mut stream)) => loop {
                match stream.message().await {
                    Ok(Some(response)) => {
                        let Some(s) = store.upgrade() else { return };
                        if response.canceled() || response.compact_revision() > 0 {
                            break format!("the watch was cancelled ({})", response.cancel_reason());
                        }
                        backoff = Duration::from_millis(100);
                        {
                            let mut cache = lock(&s.cache);
                            for event in response.events() {
                                let Some(kv) = event.kv() else { continue };
                                match event.event_type() {
                                    EventType::Put => {
                                        if let Some((name, entry)) = s.decode(kv) {
                                            cache.names.insert(name, entry);
                                        }
                                    }
                                    EventType::Delete => {
                                        if let Some(name) =
                                            kv.key_str().ok().and_then(|k| k.strip_prefix(prefix_of(&s)))
                                        {
                                            cache.names.remove(name);
                                        }
                                    }
                                }
                                revision = revision.max(kv.mod_revision());
                            }
                        }
                        revision = revision.max(revision_of(response.header()));
                        s.saw(revision);
                    }
                    Ok(None) => break "the watch ended".to_owned(),
                    Err(e) => break format!("the watch failed: {e}"),
                }
            },
            Err(e) => format!("cannot watch: {e}"),
        };
        tracing::warn!("etcd: {broke}; reloading the names in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        let Some(s) = store.upgrade() else { return };
        match s.load().await {
            Ok(r) => revision = r,
            Err(e) => tracing::warn!("etcd: cannot reload the names: {e}"),
        }
    }
}

fn prefix_of(s: &EtcdStore) -> &str {
    s.names_prefix.as_str()
}
