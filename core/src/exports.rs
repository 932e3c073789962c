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
use std::cell::RefCell;
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
/// appears in it.
#[derive(Clone, Default)]
pub struct Exports(Vec<Arc<dyn Exportable>>);

impl Exports {
    /// Whether it exports nothing (the common case: no allocation).
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
        f.debug_list().entries(self.0.iter().map(|e| e.export_id())).finish()
    }
}

/// Two encoded values are equal on the wire whatever objects back their
/// exports: they compare by export id.
impl PartialEq for Exports {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| a.export_id() == b.export_id())
    }
}

impl Eq for Exports {}

thread_local! {
    /// Set while a value is encoded: the objects it exports.
    static EXPORTING: RefCell<Option<Vec<Arc<dyn Exportable>>>> = const { RefCell::new(None) };
}

/// Puts back the enclosing scope, also when the encoding unwinds.
struct Restore(Option<Option<Vec<Arc<dyn Exportable>>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            EXPORTING.set(outer);
        }
    }
}

/// Runs `f` (which encodes something) collecting the objects it exports.
pub fn collect_exports<R>(f: impl FnOnce() -> R) -> (R, Exports) {
    let mut restore = Restore(Some(EXPORTING.replace(Some(Vec::new()))));
    let result = f();
    let outer = restore.0.take().unwrap_or_default();
    let exports = EXPORTING.replace(outer).unwrap_or_default();
    (result, Exports(exports))
}

/// Records that the value being encoded exports `object`; `false` outside
/// an encode scope (a reference serialized by something else than rmi).
pub fn note_export(object: Arc<dyn Exportable>) -> bool {
    EXPORTING.with_borrow_mut(|e| match e {
        Some(exports) => {
            exports.push(object);
            true
        }
        None => false,
    })
}

/// Records the exports of a value already encoded, when it is encoded
/// again inside another (a batch's calls inside the batch).
pub fn note_exports(exports: &Exports) {
    if exports.is_empty() {
        return;
    }
    EXPORTING.with_borrow_mut(|e| {
        if let Some(all) = e {
            all.extend(exports.0.iter().cloned());
        }
    });
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
        let caught = std::panic::catch_unwind(|| collect_exports(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(!note_export(Arc::new(Thing(4))), "the scope was put back");
    }
}
