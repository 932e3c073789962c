//! A lease kept alive in the background, and the names registered with it:
//! names that follow the life of the process that holds the lease.
//!
//! The name server ends a lease that is not kept alive for its TTL, and its
//! names with it: so a process that dies (killed, frozen, cut off) loses
//! its names one TTL later, and one that revokes its lease on the way out
//! loses them at once. A [`Lease`] sends a keep-alive every third of the
//! TTL; when the name server no longer knows the lease (it restarted
//! without storage, or the process was cut off longer than the TTL) it is
//! granted anew and every name registered through it is registered again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rmi_core::{Error, ObjectUri};

use crate::naming::{NameFilter, NameServerProxy};

/// A lease a name server granted, kept alive while this value (or a clone)
/// lives, with the names registered through it.
///
/// ```no_run
/// # async fn demo(uri: rmi_core::ObjectUri) -> Result<(), rmi_core::Error> {
/// let ns = rmi_proxy::locate_ns(None).await?;
/// let lease = rmi_proxy::Lease::grant(&ns, rmi_proxy::DEFAULT_LEASE_TTL).await?;
/// lease.register_with("example.greeting", &uri, ["class:greeter"]).await?;
/// // ... serve; then, on the way out, remove the names at once:
/// lease.revoke().await?;
/// # Ok(()) }
/// ```
///
/// Dropping the last clone stops the keep-alives: the names then go one
/// TTL later.
#[derive(Debug, Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ns: NameServerProxy,
    ttl: Duration,
    id: AtomicU64,
    /// What was registered through the lease, to register again on a new one.
    names: Mutex<BTreeMap<String, (ObjectUri, BTreeSet<String>)>>,
    /// Held while the lease is granted anew, so that it happens once.
    renewing: tokio::sync::Mutex<()>,
    keeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.get_mut().ok().and_then(Option::take) {
            keeper.abort();
        }
    }
}

/// Whether `e` says the lease is not live (the name server's
/// `NamingError::LeaseNotFound`, as it crosses the wire).
fn lease_gone(e: &Error) -> bool {
    matches!(e, Error::Remote(r) if r.message().starts_with("no live lease"))
}

impl Lease {
    /// Asks `ns` for a lease of `ttl` (1 s to 1 h) and keeps it alive.
    ///
    /// # Errors
    ///
    /// A TTL out of range, or any [`Error`] of the call.
    pub async fn grant(ns: &NameServerProxy, ttl: Duration) -> Result<Lease, Error> {
        let id = ns.grant_lease(ttl).await?;
        let inner = Arc::new(Inner {
            ns: ns.clone(),
            ttl,
            id: AtomicU64::new(id),
            names: Mutex::default(),
            renewing: tokio::sync::Mutex::new(()),
            keeper: Mutex::new(None),
        });
        let keeper = tokio::spawn(keep_alive(Arc::downgrade(&inner)));
        *lock(&inner.keeper) = Some(keeper);
        tracing::debug!(lease = format_args!("{id:x}"), ?ttl, "lease granted");
        Ok(Lease { inner })
    }

    /// The lease's id now (a new one after it was granted anew).
    pub fn id(&self) -> u64 {
        self.inner.id.load(Ordering::Relaxed)
    }

    /// The lease's TTL.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The name server the lease is kept with.
    pub fn name_server(&self) -> &NameServerProxy {
        &self.inner.ns
    }

    /// The names registered through the lease, sorted.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner.names).keys().cloned().collect()
    }

    /// Registers `name` for `uri`, for as long as the lease lives
    /// (replacing an earlier registration of the name).
    ///
    /// # Errors
    ///
    /// A bad name, or any [`Error`] of the call.
    pub async fn register(&self, name: &str, uri: &ObjectUri) -> Result<(), Error> {
        self.register_with(name, uri, Vec::<String>::new()).await
    }

    /// As [`Lease::register`], with metadata `tags`.
    ///
    /// # Errors
    ///
    /// A bad name or tag, or any [`Error`] of the call.
    pub async fn register_with<T: Into<String>>(
        &self,
        name: &str,
        uri: &ObjectUri,
        tags: impl IntoIterator<Item = T>,
    ) -> Result<(), Error> {
        let tags: BTreeSet<String> = tags.into_iter().map(Into::into).collect();
        let id = self.id();
        match self.inner.ns.register_leased(name, uri, tags.iter().cloned(), false, id).await {
            Err(e) if lease_gone(&e) => {
                lock(&self.inner.names).insert(name.to_owned(), (uri.clone(), tags));
                // Granting anew registers every name, this one included.
                renew(&self.inner, id, Some(name)).await
            }
            Err(e) => Err(e),
            Ok(()) => {
                lock(&self.inner.names).insert(name.to_owned(), (uri.clone(), tags));
                Ok(())
            }
        }
    }

    /// Removes `name` from the name server and from the lease; returns
    /// whether it was registered.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        lock(&self.inner.names).remove(name);
        Ok(self.inner.ns.remove_matching(NameFilter::Exact(name.to_owned())).await? > 0)
    }

    /// Stops the keep-alives and ends the lease now: its names are removed
    /// at once. Returns how many.
    ///
    /// # Errors
    ///
    /// Any [`Error`] of the call (the names then go one TTL later).
    pub async fn revoke(&self) -> Result<u64, Error> {
        if let Some(keeper) = lock(&self.inner.keeper).take() {
            keeper.abort();
        }
        lock(&self.inner.names).clear();
        match self.inner.ns.revoke_lease(self.id()).await {
            Err(e) if lease_gone(&e) => Ok(0),
            other => other,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the value whole; a poisoned lock is usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Grants the lease anew (unless another caller did since `stale` was
/// seen) and registers every name again: `fresh` (the one being
/// registered now, if any) as asked, replacing whatever holds it; the
/// others only if nobody took them meanwhile (while this process was
/// frozen or cut off, its names ended, and another process may have
/// registered one of them since: that name is its now, and leaves the
/// lease).
async fn renew(inner: &Inner, stale: u64, fresh: Option<&str>) -> Result<(), Error> {
    let _renewing = inner.renewing.lock().await;
    if inner.id.load(Ordering::Relaxed) == stale {
        let id = inner.ns.grant_lease(inner.ttl).await?;
        inner.id.store(id, Ordering::Relaxed);
        tracing::info!(old = format_args!("{stale:x}"), new = format_args!("{id:x}"), "lease granted anew");
    }
    let id = inner.id.load(Ordering::Relaxed);
    let names: Vec<_> =
        lock(&inner.names).iter().map(|(n, (u, t))| (n.clone(), u.clone(), t.clone())).collect();
    for (name, uri, tags) in names {
        let replace = fresh == Some(name.as_str());
        match inner.ns.register_leased(&name, &uri, tags, !replace, id).await {
            Err(e) if taken(&e) => {
                tracing::warn!(name, "registered elsewhere while the lease was lost: left to its new owner");
                lock(&inner.names).remove(&name);
            }
            other => other?,
        }
    }
    Ok(())
}

/// Whether `e` says the name is registered already (`NamingError::Taken`).
fn taken(e: &Error) -> bool {
    matches!(e, Error::Remote(r) if r.message().starts_with("the name ") && r.message().contains("is already registered"))
}

/// Keeps the lease alive every third of its TTL while the lease lives.
async fn keep_alive(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|i| i.ttl / 3) else { return };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let id = inner.id.load(Ordering::Relaxed);
        let outcome = match inner.ns.keep_alive(id).await {
            Err(e) if lease_gone(&e) => {
                tracing::warn!(
                    lease = format_args!("{id:x}"),
                    "the name server lost the lease; granting it anew"
                );
                renew(&inner, id, None).await
            }
            other => other,
        };
        if let Err(e) = outcome {
            // The name server did not answer: try again at the next tick
            // (the client fails over to the next name server, if it has one).
            tracing::warn!(lease = format_args!("{id:x}"), "cannot keep the lease alive: {e}");
        }
    }
}
