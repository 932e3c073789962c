//! The local objects a value passes as references, collected while it is
//! encoded.
//!
//! Encoding happens far from any connection (in generated code, on any
//! thread), so the references a value carries are collected in a
//! thread-local scope, as blobs are (see [`crate::blob`]), and travel with
//! the [`crate::Encoded`] value until the connection that sends it exports
//! them (see [`crate::peer`]). The objects are opaque here: this module
//! knows only their export ids.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;

/// An object that can be passed as a reference, seen from the encoder: its
/// export id, fixed when it was made.
pub trait Exportable: Any + Send + Sync {
    /// The export id.
    fn export_id(&self) -> u64;

    /// The object itself, to be recovered by the connection that exports it.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// The local objects an encoded value exports, one entry for each time one
/// appears in it. (An encoded value keeps it out of line, with its blobs.)
#[derive(Clone, Default)]
pub struct Exports(Vec<Arc<dyn Exportable>>);

impl Exports {
    /// Nothing exported.
    pub const NONE: Exports = Exports(Vec::new());

    /// Whether it exports nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Exportable>> {
        self.0.iter()
    }
}

impl fmt::Debug for Exports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|e| e.export_id())).finish()
    }
}

/// Two encoded values are equal on the wire whatever objects back their
/// exports: they compare by export id.
impl PartialEq for Exports {
    fn eq(&self, other: &Self) -> bool {
        self.iter().map(|e| e.export_id()).eq(other.iter().map(|e| e.export_id()))
    }
}

impl Eq for Exports {}

/// The encode scopes open on this thread, and what they collected.
#[derive(Default)]
struct Collector {
    /// The objects their values export, the innermost scope's last.
    stack: Vec<Arc<dyn Exportable>>,
}

thread_local! {
    static EXPORTING: RefCell<Collector> = const { RefCell::new(Collector { stack: Vec::new() }) };
    /// How many encode scopes are open. It and [`MISSED`] are plain cells,
    /// apart from the collector: every value encoded reads them, and a
    /// cell without a destructor costs a load to read.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether a reference was met outside any scope since the last
    /// [`take_missed`].
    static MISSED: Cell<bool> = const { Cell::new(false) };
}

/// Closes an encode scope, also when the encoding unwinds (what an unwound
/// scope collected is dropped).
struct Scope {
    start: usize,
}

impl Drop for Scope {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get().saturating_sub(1));
        EXPORTING.with_borrow_mut(|c| c.stack.truncate(self.start));
    }
}

/// Runs `f` (which encodes something) collecting the objects it exports.
/// It costs two thread-local accesses when nothing is exported.
#[inline]
pub fn collect_exports<R>(f: impl FnOnce() -> R) -> (R, Exports) {
    DEPTH.set(DEPTH.get().saturating_add(1));
    let start = EXPORTING.with_borrow(|c| c.stack.len());
    let unwinding = Scope { start };
    let result = f();
    std::mem::forget(unwinding);
    DEPTH.set(DEPTH.get().saturating_sub(1));
    let exports = EXPORTING
        .with_borrow_mut(|c| if c.stack.len() > start { c.stack.split_off(start) } else { Vec::new() });
    (result, Exports(exports))
}

/// Records that the value being encoded exports `object`; `false` outside
/// an encode scope (a reference serialized by something else than rmi).
pub fn note_export(object: Arc<dyn Exportable>) -> bool {
    if DEPTH.get() == 0 {
        MISSED.set(true);
        return false;
    }
    EXPORTING.with_borrow_mut(|c| c.stack.push(object));
    true
}

/// Records the exports of a value already encoded, when it is encoded
/// again inside another (a batch's calls inside the batch).
#[inline]
pub fn note_exports(exports: &Exports) {
    if exports.is_empty() {
        return;
    }
    if DEPTH.get() == 0 {
        MISSED.set(true);
    } else {
        EXPORTING.with_borrow_mut(|c| c.stack.extend(exports.iter().cloned()));
    }
}

/// Whether a reference was met outside any encode scope since the last
/// call (and forgets it): a value encoded without a scope, to be encoded
/// again in one.
#[inline]
pub(crate) fn take_missed() -> bool {
    MISSED.replace(false)
}

/// Whether an encode scope is open on this thread.
#[inline]
pub(crate) fn in_export_scope() -> bool {
    DEPTH.get() > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u64);

    impl Exportable for Thing {
        fn export_id(&self) -> u64 {
            self.0
        }
        fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    #[test]
    fn scopes_collect_nest_and_unwind() {
        let ((), outer) = collect_exports(|| {
            assert!(note_export(Arc::new(Thing(1))));
            let ((), inner) = collect_exports(|| assert!(note_export(Arc::new(Thing(2)))));
            assert_eq!(format!("{inner:?}"), "[2]");
            note_exports(&inner);
        });
        assert_eq!(format!("{outer:?}"), "[1, 2]");
        assert!(!note_export(Arc::new(Thing(3))), "outside any scope");
        let caught = std::panic::catch_unwind(|| {
            collect_exports(|| {
                note_export(Arc::new(Thing(4)));
                panic!("boom")
            })
        });
        assert!(caught.is_err());
        assert!(!note_export(Arc::new(Thing(5))), "the scope was closed");
        EXPORTING.with_borrow(|c| assert!(c.stack.is_empty(), "what it collected was dropped"));
    }
}
