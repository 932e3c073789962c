//! Where the names are kept: the embedded store (memory, and the log with
//! `--storage`), or etcd (the `etcd` feature). The name server asks this,
//! and does not know which.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rmi_proxy::{MetaMatch, NamingError, Registration};

use crate::store::{Matcher, Store};

#[derive(Debug)]
pub(crate) enum Backend {
    Embedded(Store),
    #[cfg(feature = "etcd")]
    Etcd(std::sync::Arc<crate::etcd::EtcdStore>),
}

/// Calls the same method on whichever store it is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::Embedded($s) => $call,
            #[cfg(feature = "etcd")]
            Backend::Etcd($s) => $call,
        }
    };
}

impl Backend {
    pub(crate) async fn register(
        &self,
        r: Registration,
        safe: bool,
        lease: Option<u64>,
    ) -> Result<(), NamingError> {
        each!(self, s => s.register(r, safe, lease).await)
    }

    pub(crate) fn lookup(&self, name: &str) -> Result<Registration, NamingError> {
        each!(self, s => s.lookup(name))
    }

    pub(crate) fn list(&self, matcher: &Matcher) -> Vec<Registration> {
        each!(self, s => s.list(matcher))
    }

    pub(crate) async fn remove(&self, matcher: &Matcher) -> Result<u64, NamingError> {
        each!(self, s => s.remove(matcher).await)
    }

    pub(crate) async fn set_metadata(
        &self,
        name: String,
        metadata: BTreeSet<String>,
    ) -> Result<(), NamingError> {
        each!(self, s => s.set_metadata(name, metadata).await)
    }

    pub(crate) fn yplookup(&self, tags: &BTreeSet<String>, mode: MetaMatch) -> Vec<Registration> {
        each!(self, s => s.yplookup(tags, mode))
    }

    pub(crate) fn count(&self) -> u64 {
        each!(self, s => s.count())
    }

    pub(crate) async fn grant(&self, ttl: Duration) -> Result<u64, NamingError> {
        each!(self, s => s.grant(ttl).await)
    }

    pub(crate) async fn keep_alive(&self, lease: u64) -> Result<(), NamingError> {
        match self {
            Backend::Embedded(s) => s.keep_alive(lease),
            #[cfg(feature = "etcd")]
            Backend::Etcd(s) => s.keep_alive(lease).await,
        }
    }

    pub(crate) async fn revoke(&self, lease: u64) -> Result<u64, NamingError> {
        each!(self, s => s.revoke(lease).await)
    }

    /// Ends the leases past their TTL (etcd ends its own); returns how many
    /// names went.
    pub(crate) fn expire(&self, now: Instant) -> usize {
        match self {
            Backend::Embedded(s) => s.expire(now),
            #[cfg(feature = "etcd")]
            Backend::Etcd(_) => 0,
        }
    }
}
