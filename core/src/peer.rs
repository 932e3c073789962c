//! Objects as values: what the two ends of a connection export to each
//! other, and the references they hold to what the other exported.
//!
//! A local object passed as an argument or a return value is *exported*
//! over the connection its message travels on: the message carries its
//! export id, and the sender keeps the object in that connection's
//! [`Peer`], counted once for each time it was sent. The receiver holds an
//! [`Import`] for it (one per export id, shared by every copy of the
//! reference it decoded) and calls it over the same connection, as object
//! `@e<id>`; when its last copy is dropped, the import sends a `Release`
//! with the count it received, and the sender forgets the object once its
//! count falls to zero. When the connection closes, both ends drop
//! everything exported over it. No leases, no periodic collection.
//!
//! Encoding and decoding happen far from the connection (in generated code,
//! on any thread), so both go through scopes, as blobs do (see
//! [`crate::blob`]): encoding a value collects the local objects it exports
//! (see [`crate::exports`], done by [`crate::Encoded::encode`]), which travel
//! with the encoded value until it is sent; decoding runs inside the
//! connection's [`Scope`], so that a reference decodes into an import of
//! that connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

mod forward;
mod local;

pub use forward::Forwarder;
pub use local::LocalLink;

use crate::error::{Error, RemoteError, RemoteErrorKind};
use crate::exports::{Exportable, Exports};
use crate::message::{Call, Reply};
use crate::object::Exposed;

/// The object id a call names to reach export `id` over a connection.
pub fn export_object_id(id: u64) -> String {
    format!("@e{id}")
}

/// The export id an object id names, if it names one (`@e<id>`; registered
/// ids cannot start with `@`). A registered id is told apart by its first
/// byte, with no UTF-8 check.
#[inline]
pub fn parse_export_object_id(object: &[u8]) -> Option<u64> {
    let digits = object.strip_prefix(b"@e")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A future that yields a call's reply, or why there is none.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Reply, Error>> + Send + 'static>>;

/// How a reference reaches the other end of its connection: the connection
/// as seen by what it carries. Daemons and proxies implement it for their
/// connections; a local object implements it by calling itself.
pub trait Link: Send + Sync + 'static {
    /// Sends `call` and waits for its reply until `deadline` (`timeout` is
    /// what the deadline stands for, to report it).
    fn call(self: Arc<Self>, call: Call, deadline: Option<Instant>, timeout: Option<Duration>) -> CallFuture;

    /// Sends a oneway call.
    fn call_oneway(self: Arc<Self>, call: Call) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

    /// Tells the other end that `count` references to its export `export`
    /// were dropped (best effort: a closed connection has forgotten it).
    fn release(&self, export: u64, count: u32);

    /// Where the other end is, for messages and `Debug`.
    fn describe(&self) -> String;

    /// This end's object space for the connection: what decoding the
    /// replies needs (see [`Scope`]).
    fn peer(&self) -> &Arc<Peer>;
}

/// A local object ready to travel as a reference: its export id is fixed
/// when it is made, so every copy sent is the same export.
pub struct LocalExport {
    id: u64,
    object: Arc<dyn Exposed>,
}

impl fmt::Debug for LocalExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalExport")
            .field("id", &self.id)
            .field("interface", &self.object.interface())
            .finish()
    }
}

/// Export ids are unique in the process, so that an id never names two
/// objects on one connection, whatever was exported before.
static NEXT_EXPORT: AtomicU64 = AtomicU64::new(1);

impl Exportable for LocalExport {
    fn export_id(&self) -> u64 {
        self.id
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl LocalExport {
    /// Makes `object` ready to be passed as a reference.
    pub fn new(object: Arc<dyn Exposed>) -> Arc<Self> {
        Arc::new(LocalExport { id: NEXT_EXPORT.fetch_add(1, Ordering::Relaxed), object })
    }

    /// Its export id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The object.
    pub fn object(&self) -> &Arc<dyn Exposed> {
        &self.object
    }
}

thread_local! {
    /// Set while a value from a connection is decoded: that connection.
    static DECODING: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Puts back the enclosing scope, also when the decoding unwinds.
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        DECODING.with_borrow_mut(|current| *current = outer);
    }
}

/// A connection seen from what is decoded off it: its object space, and
/// how to reach the other end. A cheap `Clone` (one reference count).
#[derive(Clone)]
pub struct Scope(Arc<ScopeInner>);

struct ScopeInner {
    peer: Arc<Peer>,
    /// Weak, so that a connection can keep its scope without keeping
    /// itself alive; a reference decoded off it holds the link strongly.
    link: Weak<dyn Link>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = self.0.link.upgrade().map_or_else(|| "a closed connection".to_owned(), |l| l.describe());
        f.debug_struct("Scope").field("link", &link).finish_non_exhaustive()
    }
}

impl Scope {
    /// The scope of a connection with object space `peer`, reached through
    /// `link`.
    pub fn new(peer: Arc<Peer>, link: Arc<dyn Link>) -> Self {
        Self::weak(peer, &Arc::downgrade(&link))
    }

    /// The scope of a connection that keeps it: `link` is the connection
    /// itself, held weakly.
    pub fn weak(peer: Arc<Peer>, link: &Weak<dyn Link>) -> Self {
        Scope(Arc::new(ScopeInner { peer, link: link.clone() }))
    }

    /// Runs `f` (which decodes something that came over this connection)
    /// in this scope.
    #[inline]
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let outer = DECODING.with_borrow_mut(|current| current.replace(self.clone()));
        let _restore = Restore(outer);
        f()
    }

    /// Runs `f` in this scope if `needed` (the value it decodes carries
    /// references, see [`crate::Encoded::carries_references`]), else as it
    /// is: a value without references needs no scope.
    #[inline]
    pub fn enter_if<R>(&self, needed: bool, f: impl FnOnce() -> R) -> R {
        if needed { self.enter(f) } else { f() }
    }

    /// As [`Scope::enter`], with the scope given up (one reference count
    /// fewer to take).
    #[inline]
    pub fn enter_owned<R>(self, f: impl FnOnce() -> R) -> R {
        let outer = DECODING.with_borrow_mut(|current| current.replace(self));
        let _restore = Restore(outer);
        f()
    }

    /// The connection's object space.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.0.peer
    }

    /// How to reach the other end, while the connection lives.
    pub fn link(&self) -> Option<Arc<dyn Link>> {
        self.0.link.upgrade()
    }
}

/// The scope of the connection whose bytes are being decoded on this
/// thread, if any.
pub fn current_scope() -> Option<Scope> {
    DECODING.with_borrow(Clone::clone)
}

/// What one export holds.
struct Exported {
    object: Arc<dyn Exposed>,
    /// References sent and not yet released.
    count: u64,
}

/// One connection's object space, on one side: what this side exported over
/// it, and what it imported from the other side.
#[derive(Default)]
pub struct Peer {
    exports: Mutex<HashMap<u64, Exported>>,
    imports: Mutex<HashMap<u64, Weak<Import>>>,
    /// The connection's session instances of objects registered per
    /// session, by registration.
    sessions: Mutex<HashMap<u64, Arc<dyn Exposed>>>,
    closed: AtomicBool,
    /// Woken when the last export is released.
    emptied: tokio::sync::Notify,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("exports", &self.exports().len())
            .field("imports", &self.imports().len())
            .finish()
    }
}

impl Peer {
    /// A fresh object space.
    pub fn new() -> Arc<Self> {
        Arc::new(Peer::default())
    }

    fn exports(&self) -> MutexGuard<'_, HashMap<u64, Exported>> {
        // Every change leaves the map whole; a poisoned lock is usable.
        self.exports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn imports(&self) -> MutexGuard<'_, HashMap<u64, Weak<Import>>> {
        self.imports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `exports` as sent over this connection: call it before the
    /// message that carries them is written. Returns whether this side had
    /// exported nothing before (a client then starts reading for calls).
    #[inline]
    pub fn export(&self, exports: &Exports) -> bool {
        if exports.is_empty() {
            return false;
        }
        self.export_all(exports)
    }

    fn export_all(&self, exports: &Exports) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut table = self.exports();
        let was_empty = table.is_empty();
        for entry in exports.iter() {
            let Ok(local) = entry.clone().into_any().downcast::<LocalExport>() else { continue };
            table
                .entry(local.id)
                .or_insert_with(|| Exported { object: local.object.clone(), count: 0 })
                .count += 1;
        }
        was_empty
    }

    /// The other end dropped `count` references to export `id`; returns
    /// whether the export is gone.
    pub fn release(&self, id: u64, count: u32) -> bool {
        let mut table = self.exports();
        let Some(entry) = table.get_mut(&id) else { return false };
        entry.count = entry.count.saturating_sub(u64::from(count));
        if entry.count > 0 {
            return false;
        }
        let gone = table.remove(&id);
        let empty = table.is_empty();
        drop(table);
        drop(gone);
        if empty {
            self.emptied.notify_waiters();
        }
        true
    }

    /// The object exported as `id`, if it still is.
    pub fn exported(&self, id: u64) -> Option<Arc<dyn Exposed>> {
        self.exports().get(&id).map(|e| e.object.clone())
    }

    /// How many objects this side exports over the connection now.
    pub fn export_count(&self) -> usize {
        self.exports().len()
    }

    /// How many of the other side's objects this side holds references to.
    pub fn import_count(&self) -> usize {
        self.imports().values().filter(|i| i.strong_count() > 0).count()
    }

    /// Waits until this side exports nothing over the connection.
    pub async fn exports_released(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.export_count() == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// The connection's instance for the session-scoped registration `key`,
    /// made by `make` on the connection's first call of it.
    pub fn session(&self, key: u64, make: impl FnOnce() -> Arc<dyn Exposed>) -> Arc<dyn Exposed> {
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.entry(key).or_insert_with(make).clone()
    }

    /// The connection ended: drops every export and session instance (and
    /// the objects, unless held elsewhere, by calls still running say);
    /// imports fail their calls from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let exports = std::mem::take(&mut *self.exports());
        drop(exports);
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        drop(sessions);
        self.emptied.notify_waiters();
    }

    /// Whether the connection ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The reference to the other end's export `id` (of `interface`), as
    /// one more copy of it was received.
    pub fn import(self: &Arc<Self>, link: &Arc<dyn Link>, id: u64, interface: &str) -> Arc<Import> {
        let mut imports = self.imports();
        if let Some(existing) = imports.get(&id).and_then(Weak::upgrade) {
            existing.received.fetch_add(1, Ordering::Relaxed);
            return existing;
        }
        let import = Arc::new(Import {
            id,
            interface: interface.to_owned(),
            link: link.clone(),
            peer: Arc::downgrade(self),
            received: AtomicU32::new(1),
        });
        imports.insert(id, Arc::downgrade(&import));
        import
    }
}

/// A reference to an object the other end of a connection exported: calls
/// go over that connection, to `@e<id>`. Dropping the last copy releases it.
pub struct Import {
    id: u64,
    interface: String,
    link: Arc<dyn Link>,
    peer: Weak<Peer>,
    /// Copies received; all released at once on drop.
    received: AtomicU32,
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Import")
            .field("id", &self.id)
            .field("interface", &self.interface)
            .field("at", &self.link.describe())
            .finish()
    }
}

impl Import {
    /// The export id on the other end.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The interface the other end says the object has.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The connection it lives behind.
    pub fn link(&self) -> &Arc<dyn Link> {
        &self.link
    }

    /// The scope replies from it decode in.
    pub fn scope(&self) -> Scope {
        Scope::new(self.link.peer().clone(), self.link.clone())
    }

    /// The object id calls name.
    pub fn object_id(&self) -> String {
        export_object_id(self.id)
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.upgrade() {
            let mut imports = peer.imports();
            if imports.get(&self.id).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
                imports.remove(&self.id);
            }
            if peer.is_closed() {
                return;
            }
        }
        self.link.release(self.id, self.received.load(Ordering::Relaxed));
    }
}

/// The error of a call to an export that is gone.
pub fn export_not_found(object: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::ObjectNotFound,
        format!("no object {object:?} is exported over this connection (it was released, or never sent)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exports::{collect_exports, note_export};
    use crate::object::{Dispatch, MethodInfo};

    struct Nothing;

    impl Exposed for Nothing {
        fn type_name(&self) -> &'static str {
            "Nothing"
        }
        fn methods(&self) -> &'static [MethodInfo] {
            &[]
        }
        fn dispatch(self: Arc<Self>, _: &str, _: crate::Encoded) -> Dispatch {
            Dispatch::Ready(Err(RemoteError::new(RemoteErrorKind::MethodNotFound, "none")))
        }
    }

    /// Records the releases it is asked to send.
    struct Recorder(Mutex<Vec<(u64, u32)>>, Arc<Peer>);

    impl Default for Recorder {
        fn default() -> Self {
            Recorder(Mutex::default(), Peer::new())
        }
    }

    impl Link for Recorder {
        fn call(self: Arc<Self>, _: Call, _: Option<Instant>, _: Option<Duration>) -> CallFuture {
            Box::pin(async { Err(Error::ConnectionLost("a test link".into())) })
        }
        fn call_oneway(self: Arc<Self>, _: Call) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> {
            Box::pin(async { Ok(()) })
        }
        fn release(&self, export: u64, count: u32) {
            self.0.lock().unwrap().push((export, count));
        }
        fn describe(&self) -> String {
            "a test link".into()
        }
        fn peer(&self) -> &Arc<Peer> {
            &self.1
        }
    }

    #[test]
    fn exports_are_counted_per_send_and_released_by_count() {
        let peer = Peer::new();
        let local = LocalExport::new(Arc::new(Nothing));
        let ((), twice) = collect_exports(|| {
            assert!(note_export(local.clone()));
            assert!(note_export(local.clone()));
        });
        assert!(peer.export(&twice), "the first export");
        assert!(!peer.export(&twice));
        assert_eq!(peer.export_count(), 1);
        assert!(!peer.release(local.id(), 3), "4 sent, 3 released");
        assert!(peer.exported(local.id()).is_some());
        assert!(peer.release(local.id(), 1));
        assert_eq!(peer.export_count(), 0);
    }

    #[test]
    fn imports_share_one_handle_and_release_what_they_received() {
        let peer = Peer::new();
        let recorder = Arc::new(Recorder::default());
        let link: Arc<dyn Link> = recorder.clone();
        let a = peer.import(&link, 7, "Thing");
        let b = peer.import(&link, 7, "Thing");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(peer.import_count(), 1);
        drop(a);
        assert!(recorder.0.lock().unwrap().is_empty(), "a copy is still held");
        drop(b);
        assert_eq!(*recorder.0.lock().unwrap(), vec![(7, 2)]);
        assert_eq!(peer.import_count(), 0);
        // Received again after the release: a new handle, released on its own.
        drop(peer.import(&link, 7, "Thing"));
        assert_eq!(*recorder.0.lock().unwrap(), vec![(7, 2), (7, 1)]);
    }

    #[test]
    fn a_closed_connection_drops_its_exports_and_sends_no_releases() {
        let peer = Peer::new();
        let recorder = Arc::new(Recorder::default());
        let link: Arc<dyn Link> = recorder.clone();
        let local = LocalExport::new(Arc::new(Nothing));
        let ((), one) = collect_exports(|| assert!(note_export(local.clone())));
        peer.export(&one);
        let import = peer.import(&link, 9, "Thing");
        peer.close();
        assert_eq!(peer.export_count(), 0);
        assert!(!peer.export(&one), "nothing is exported over a closed connection");
        drop(import);
        assert!(recorder.0.lock().unwrap().is_empty());
    }

    #[test]
    fn export_ids_round_trip_as_object_ids() {
        assert_eq!(parse_export_object_id(export_object_id(42).as_bytes()), Some(42));
        assert_eq!(parse_export_object_id(b"greeter"), None);
        assert_eq!(parse_export_object_id(b"@ex"), None);
    }
}
