//! The name server object: checks what it is asked, then asks the store.

use std::collections::BTreeSet;
use std::sync::Arc;

use rmi_proxy::{MetaMatch, NameFilter, NameServerApi, NamingError, Registration, check_name, check_tag};

use crate::backend::Backend;
use crate::store::Matcher;

/// Largest compiled regular expression accepted, in bytes: generous for
/// name patterns, small enough that a hostile pattern cannot take memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The name server's object, hosted in a daemon as `RMI.NameServer`.
#[derive(Debug, Clone)]
pub struct NameServer {
    store: Arc<Backend>,
}

impl NameServer {
    pub(crate) fn new(store: Arc<Backend>) -> Self {
        NameServer { store }
    }
}

fn matcher(filter: NameFilter) -> Result<Matcher, NamingError> {
    Ok(match filter {
        NameFilter::Exact(name) => Matcher::Exact(name),
        NameFilter::Prefix(prefix) => Matcher::Prefix(prefix),
        NameFilter::Regex(pattern) => {
            let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| NamingError::BadRegex { pattern: pattern.clone(), reason: regex_reason(&e) })?;
            Matcher::Regex(regex)
        }
        _ => Matcher::All,
    })
}

/// The gist of a regex error on one line (its display spans several, with
/// a caret under our anchored copy of the pattern).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    last.trim().trim_start_matches("error: ").to_owned()
}

fn check_tags(tags: &BTreeSet<String>) -> Result<(), NamingError> {
    tags.iter().try_for_each(|t| check_tag(t))
}

impl NameServerApi for NameServer {
    async fn register(&self, registration: Registration, safe: bool) -> Result<(), NamingError> {
        check_name(&registration.name)?;
        check_tags(&registration.metadata)?;
        tracing::debug!(name = registration.name, uri = %registration.uri, "register");
        self.store.register(registration, safe, None).await
    }

    fn lookup(&self, name: String) -> Result<Registration, NamingError> {
        self.store.lookup(&name)
    }

    fn list(&self, filter: NameFilter) -> Result<Vec<Registration>, NamingError> {
        Ok(self.store.list(&matcher(filter)?))
    }

    async fn remove(&self, filter: NameFilter) -> Result<u64, NamingError> {
        let matcher = matcher(filter)?;
        self.store.remove(&matcher).await
    }

    async fn set_metadata(&self, name: String, metadata: BTreeSet<String>) -> Result<(), NamingError> {
        check_tags(&metadata)?;
        self.store.set_metadata(name, metadata).await
    }

    fn yplookup(&self, tags: BTreeSet<String>, mode: MetaMatch) -> Result<Vec<Registration>, NamingError> {
        Ok(self.store.yplookup(&tags, mode))
    }

    fn count(&self) -> u64 {
        self.store.count()
    }

    fn ping(&self) {}

    async fn grant_lease(&self, ttl_ms: u64) -> Result<u64, NamingError> {
        let ttl = crate::store::check_ttl(ttl_ms)?;
        self.store.grant(ttl).await
    }

    async fn keep_alive(&self, lease: u64) -> Result<(), NamingError> {
        self.store.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: u64) -> Result<u64, NamingError> {
        self.store.revoke(lease).await
    }

    async fn register_leased(
        &self,
        registration: Registration,
        safe: bool,
        lease: u64,
    ) -> Result<(), NamingError> {
        check_name(&registration.name)?;
        check_tags(&registration.metadata)?;
        tracing::debug!(name = registration.name, uri = %registration.uri, lease = format_args!("{lease:x}"), "register (leased)");
        self.store.register(registration, safe, Some(lease)).await
    }
}
