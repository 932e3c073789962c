//! The caller's context: what a method knows of the call it is handling,
//! and what calls carry with them.
//!
//! Inside an exposed method, [`context()`] gives the connection the call
//! came over (its id and the peer's address), the call's deadline, and the
//! caller's correlation id and annotations. It is task-local: it follows
//! the call across `.await`s (and into a synchronous method on the blocking
//! pool), and calls the method makes through proxies carry its deadline and
//! correlation id on, so a chain of servers shares one id. (A task the
//! method spawns starts without it: run its future in
//! [`CallContext::scope`] to carry it there.)
//!
//! A client sets what its calls carry with [`correlate`] (a correlation id,
//! carried on by every server into the calls it makes in turn) and
//! [`annotate`] (small key/value annotations for the called method only;
//! at most [`MAX_ANNOTATIONS`] of them, and at most [`MAX_META_BYTES`]
//! bytes in all with the correlation id).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::blob::Text;
use crate::error::Error;

/// Most annotations one call carries.
pub const MAX_ANNOTATIONS: usize = 16;

/// Most bytes a call's correlation id and annotations (keys and values)
/// take together.
pub const MAX_META_BYTES: usize = 4096;

/// What a call carries beside its arguments: the caller's correlation id
/// and annotations. Bounded (see [`CallMeta::check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMeta {
    /// The id that ties the calls of one request together across servers.
    pub correlation: Option<Text>,
    /// Key/value annotations, for the called method only.
    pub annotations: Vec<(Text, Text)>,
    /// The call's items follow it (an `rmi::Upload` argument).
    pub upload: bool,
}

impl CallMeta {
    /// Checks the bounds: at most [`MAX_ANNOTATIONS`] annotations, and
    /// [`MAX_META_BYTES`] bytes in all.
    ///
    /// # Errors
    ///
    /// What is over which bound.
    pub fn check(&self) -> Result<(), String> {
        if self.annotations.len() > MAX_ANNOTATIONS {
            return Err(format!(
                "a call carries {} annotations, more than the {MAX_ANNOTATIONS} allowed",
                self.annotations.len()
            ));
        }
        let bytes = self.correlation.as_ref().map_or(0, |c| c.as_str().len())
            + self.annotations.iter().map(|(k, v)| k.as_str().len() + v.as_str().len()).sum::<usize>();
        if bytes > MAX_META_BYTES {
            return Err(format!(
                "a call's correlation id and annotations take {bytes} bytes, more than the {MAX_META_BYTES} allowed"
            ));
        }
        Ok(())
    }

    /// The annotation `key`, if the call carries it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v.as_str())
    }
}

/// The connection a call came over, as its daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's id, unique within its daemon's life.
    pub id: u64,
    /// The peer's address (`ip:port`, or the socket path's peer).
    pub peer: String,
    /// The peer's verified certificate, over TLS when it presented one
    /// (with `RMI_TLS_REQUIRE_CLIENT_CERT`, every client does).
    pub identity: Option<Arc<crate::tls::PeerIdentity>>,
}

/// What a handled call knows of itself: see [`context()`].
///
/// Small to move (its deadline and one shared pointer): a call that carries
/// no meta shares its connection's part ([`ConnectionContext`]).
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    deadline: Option<Instant>,
    rest: Option<Arc<Rest>>,
}

/// What a call's context shares: its connection, what it carried, and
/// what calls made in it carry.
#[derive(Debug, Default)]
struct Rest {
    connection: Option<Arc<ConnectionInfo>>,
    /// What the call carried.
    meta: Option<CallMeta>,
    /// What calls made here carry: the correlation id, and for a client's
    /// own scope ([`annotate`]) its annotations.
    outgoing: Option<Arc<CallMeta>>,
    /// The items the call's caller sends it, if it sends any (the stream
    /// module's `UploadSlot`, opaque here).
    upload: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// A connection's part of its calls' contexts, made once per connection.
#[derive(Debug, Clone)]
pub struct ConnectionContext(Arc<Rest>);

impl ConnectionContext {
    /// The part of the contexts of the calls received over `connection`.
    pub fn new(connection: Option<Arc<ConnectionInfo>>) -> Self {
        ConnectionContext(Arc::new(Rest { connection, meta: None, outgoing: None, upload: None }))
    }

    /// The context of a call received over this connection, due by
    /// `deadline`, carrying `meta`.
    #[inline]
    pub fn call(&self, deadline: Option<Instant>, meta: Option<Box<CallMeta>>) -> CallContext {
        match meta {
            None => CallContext { deadline, rest: Some(self.0.clone()) },
            Some(meta) => CallContext::carrying(deadline, self.0.connection.clone(), *meta, None),
        }
    }

    /// The context of a call that carries an upload, arriving in `upload`.
    pub fn call_with_upload(
        &self,
        deadline: Option<Instant>,
        meta: CallMeta,
        upload: Arc<dyn std::any::Any + Send + Sync>,
    ) -> CallContext {
        CallContext::carrying(deadline, self.0.connection.clone(), meta, Some(upload))
    }
}

impl CallContext {
    /// The context of a call received over `connection`, due by
    /// `deadline`, carrying `meta` (see [`ConnectionContext::call`] for
    /// many calls of one connection).
    pub fn incoming(
        deadline: Option<Instant>,
        connection: Option<Arc<ConnectionInfo>>,
        meta: Option<Box<CallMeta>>,
    ) -> Self {
        match meta {
            None => CallContext {
                deadline,
                rest: Some(Arc::new(Rest { connection, meta: None, outgoing: None, upload: None })),
            },
            Some(meta) => CallContext::carrying(deadline, connection, *meta, None),
        }
    }

    #[cold]
    fn carrying(
        deadline: Option<Instant>,
        connection: Option<Arc<ConnectionInfo>>,
        meta: CallMeta,
        upload: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        // Only the correlation id goes on into the calls the method makes.
        let outgoing = meta
            .correlation
            .clone()
            .map(|c| Arc::new(CallMeta { correlation: Some(c), ..CallMeta::default() }));
        CallContext {
            deadline,
            rest: Some(Arc::new(Rest { connection, meta: Some(meta), outgoing, upload })),
        }
    }

    fn meta(&self) -> Option<&CallMeta> {
        self.rest.as_ref().and_then(|r| r.meta.as_ref())
    }

    /// The call's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The id of the connection the call came over (`None` for a call of a
    /// local object).
    pub fn connection_id(&self) -> Option<u64> {
        self.rest.as_ref().and_then(|r| r.connection.as_ref()).map(|c| c.id)
    }

    /// The connection the call came over (`None` for a call of a local
    /// object).
    pub fn connection(&self) -> Option<&Arc<ConnectionInfo>> {
        self.rest.as_ref().and_then(|r| r.connection.as_ref())
    }

    /// The address of the peer that made the call.
    pub fn peer(&self) -> Option<&str> {
        self.rest.as_ref().and_then(|r| r.connection.as_ref()).map(|c| c.peer.as_str())
    }

    /// The caller's verified certificate identity, when it came over TLS
    /// with a client certificate: who it is, for authorization.
    pub fn identity(&self) -> Option<&crate::tls::PeerIdentity> {
        self.rest.as_ref().and_then(|r| r.connection.as_ref()).and_then(|c| c.identity.as_deref())
    }

    /// The caller's correlation id, if it set one (or a caller up the
    /// chain did).
    pub fn correlation_id(&self) -> Option<&str> {
        self.meta().and_then(|m| m.correlation.as_ref()).map(Text::as_str)
    }

    /// The annotation `key` the caller sent with the call.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.meta().and_then(|m| m.annotation(key))
    }

    /// Every annotation the caller sent with the call.
    pub fn annotations(&self) -> &[(Text, Text)] {
        self.meta().map_or(&[], |m| &m.annotations)
    }

    /// What a call made in this context carries, if anything.
    pub fn outgoing(&self) -> Option<&Arc<CallMeta>> {
        self.rest.as_ref().and_then(|r| r.outgoing.as_ref())
    }

    /// The same context, its calls carrying `outgoing`.
    fn with_outgoing(&self, outgoing: CallMeta) -> CallContext {
        let connection = self.rest.as_ref().and_then(|r| r.connection.clone());
        let meta = self.rest.as_ref().and_then(|r| r.meta.clone());
        let rest = Rest { connection, meta, outgoing: Some(Arc::new(outgoing)), upload: None };
        CallContext { deadline: self.deadline, rest: Some(Arc::new(rest)) }
    }

    /// Runs `future` in this context: in a task the method spawned, say,
    /// so that its calls carry the deadline and correlation id on.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CONTEXT.scope(self, future).await
    }

    /// Runs `f` in this context.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CONTEXT.sync_scope(self, f)
    }
}

tokio::task_local! {
    static CONTEXT: CallContext;
}

thread_local! {
    /// The context of a synchronous dispatch running on this thread right
    /// now (see [`sync_borrowed`]): it comes before the task's.
    static SYNC: std::cell::RefCell<Option<CallContext>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f`, a synchronous dispatch, with `context` current, without
/// cloning it: it is moved in for `f` and back out after. A panic in `f`
/// is caught (and returned), so the context always comes back. What the
/// dispatch path every call takes uses, instead of a task-local scope that
/// would need a clone of its own.
#[inline(always)]
pub(crate) fn sync_borrowed<R>(context: &mut CallContext, f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let previous = SYNC.with(|s| s.replace(Some(std::mem::take(context))));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Some(back) = SYNC.with(|s| s.replace(previous)) {
        *context = back;
    }
    result
}

/// Reads the current context: a synchronous dispatch's, else the task's.
#[inline]
fn with_current<R>(f: impl Fn(&CallContext) -> R) -> Option<R> {
    let sync = SYNC.with(|s| s.borrow().as_ref().map(&f));
    match sync {
        Some(r) => Some(r),
        None => CONTEXT.try_with(|c| f(c)).ok(),
    }
}

/// The context of the call being handled on this task (or set by
/// [`correlate`] or [`annotate`]); `None` elsewhere.
pub fn context() -> Option<CallContext> {
    with_current(Clone::clone)
}

/// The upload the call being dispatched carries, if any (what an `Upload`
/// argument decodes into; opaque here, the stream module knows its type).
pub(crate) fn take_upload() -> Option<Arc<dyn std::any::Any + Send + Sync>> {
    with_current(|c| c.rest.as_ref().and_then(|r| r.upload.clone())).flatten()
}

/// What a call made now carries from the current context: its deadline,
/// and its correlation id and annotations.
#[inline]
pub fn for_outgoing_call() -> (Option<Instant>, Option<Arc<CallMeta>>) {
    with_current(|c| (c.deadline, c.outgoing().cloned())).unwrap_or((None, None))
}

/// The deadline of the call being handled on this task, if any: a proxy
/// makes outgoing calls due no later than it, so a chain of calls shares one
/// deadline.
pub fn current_deadline() -> Option<Instant> {
    with_current(|c| c.deadline).flatten()
}

/// Runs `future` with every call made in it carrying `id` as its
/// correlation id; the servers called carry it on into their own calls, so
/// one id ties a request's calls together across a chain of servers.
///
/// # Errors
///
/// [`Error::Protocol`] when the id is longer than [`MAX_META_BYTES`].
pub async fn correlate<F: Future>(id: impl Into<String>, future: F) -> Result<F::Output, Error> {
    let context = context().unwrap_or_default();
    let mut meta = context.outgoing().map(|m| (**m).clone()).unwrap_or_default();
    meta.correlation = Some(Text::from(id.into()));
    meta.check().map_err(Error::Protocol)?;
    Ok(context.with_outgoing(meta).scope(future).await)
}

/// Runs `future` with every call made in it carrying `annotations` (and
/// the current correlation id, if any). The called methods read them with
/// [`CallContext::annotation`]; they do not go on into the calls those
/// methods make.
///
/// # Errors
///
/// [`Error::Protocol`] when they are over the bounds ([`MAX_ANNOTATIONS`],
/// [`MAX_META_BYTES`]).
pub async fn annotate<F, K, V>(
    annotations: impl IntoIterator<Item = (K, V)>,
    future: F,
) -> Result<F::Output, Error>
where
    F: Future,
    K: Into<String>,
    V: Into<String>,
{
    let context = context().unwrap_or_default();
    let mut meta = context.outgoing().map(|m| (**m).clone()).unwrap_or_default();
    meta.annotations =
        annotations.into_iter().map(|(k, v)| (Text::from(k.into()), Text::from(v.into()))).collect();
    meta.check().map_err(Error::Protocol)?;
    Ok(context.with_outgoing(meta).scope(future).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_correlation_id_goes_on_and_annotations_do_not() {
        assert!(context().is_none());
        let inner = correlate("req-1", async {
            annotate([("user", "ada")], async {
                let c = context().unwrap();
                let out = c.outgoing().unwrap();
                assert_eq!(out.correlation.as_ref().unwrap().as_str(), "req-1");
                assert_eq!(out.annotation("user"), Some("ada"));
                // A server receiving that meta carries on the id only.
                let received = CallContext::incoming(None, None, Some(Box::new((**out).clone())));
                assert_eq!(received.correlation_id(), Some("req-1"));
                assert_eq!(received.annotation("user"), Some("ada"));
                let on = received.outgoing().unwrap();
                assert_eq!(on.correlation.as_ref().unwrap().as_str(), "req-1");
                assert!(on.annotations.is_empty());
            })
            .await
            .unwrap();
            current_deadline()
        })
        .await
        .unwrap();
        assert_eq!(inner, None);
    }

    #[tokio::test]
    async fn annotations_are_bounded() {
        let many = (0..=MAX_ANNOTATIONS).map(|i| (format!("k{i}"), "v".to_owned()));
        let err = annotate(many, async {}).await.unwrap_err();
        assert!(err.to_string().contains("more than the 16 allowed"), "{err}");
        let err = correlate("x".repeat(MAX_META_BYTES + 1), async {}).await.unwrap_err();
        assert!(err.to_string().contains("more than the 4096 allowed"), "{err}");
    }
}
