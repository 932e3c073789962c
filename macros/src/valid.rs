//! The checks: every form `#[expose]` refuses, each error spanned on the
//! user's code and saying what to do instead. All errors are collected
//! before returning, so one build shows them all.

use crate::ast::{Kind, Model, Receiver, Ret};

/// Names the generated proxy already uses for its own methods.
pub const RESERVED: &[&str] = &["new", "connect", "from_proxy", "proxy", "into_proxy", "with_timeout"];

#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
}

pub fn check(item: &syn::Item, model: &Model) -> syn::Result<()> {
    let mut errors = Errors::default();
    let generics = match item {
        syn::Item::Impl(imp) => Some(&imp.generics),
        syn::Item::Trait(tr) => Some(&tr.generics),
        _ => None,
    };
    if let Some(g) = generics.filter(|g| !g.params.is_empty() || g.where_clause.is_some()) {
        errors.spanned(
            g,
            "#[expose] cannot expose a generic type: the daemon must know the concrete type; \
             expose a concrete type (a newtype around the generic one, for example)",
        );
    }
    let (proxy, kind) = match &model.kind {
        Kind::Impl { name, .. } => (format!("{name}Proxy"), "impl block"),
        Kind::Trait { name, .. } => (format!("{name}Proxy"), "trait"),
    };
    if model.methods.is_empty() {
        errors.push(syn::Error::new(
            model.span,
            match model.kind {
                Kind::Impl { .. } => "#[expose] found nothing to expose in this impl block: remote methods are `pub fn` taking `&self`",
                Kind::Trait { .. } => "#[expose] found nothing to expose in this trait: remote methods take `&self`",
            },
        ));
    }
    for m in &model.methods {
        let sig = &m.sig;
        let receiver = sig.inputs.first();
        match m.receiver {
            Receiver::Ref => {}
            Receiver::RefMut => errors.spanned(
                receiver,
                "`&mut self` methods cannot be exposed: a remote object is shared by every client and called \
                 concurrently; take `&self` and keep mutable state in a Mutex, RwLock or atomic",
            ),
            Receiver::Value => errors.spanned(
                receiver,
                "`self` by value cannot be exposed: the object lives on in the daemon after a call; take `&self`",
            ),
            Receiver::Typed => errors.spanned(
                receiver,
                "remote methods take `&self`; typed receivers such as `self: Arc<Self>` cannot be exposed",
            ),
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.spanned(
                &sig.generics,
                "remote methods cannot be generic: a caller in another process cannot choose the type; \
                 use concrete types (an enum can stand for several)",
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.spanned(
                unsafety,
                "`unsafe fn` cannot be exposed: a remote caller cannot uphold its contract",
            );
        }
        if let Some(abi) = &sig.abi {
            errors.spanned(abi, "`extern` functions cannot be exposed");
        }
        if let Some(variadic) = &sig.variadic {
            errors.spanned(variadic, "variadic functions cannot be exposed");
        }
        for arg in &m.args {
            match &arg.ty {
                syn::Type::Reference(r) => errors.spanned(
                    r,
                    "remote arguments must be owned values: take `String` rather than `&str`, \
                     `Vec<T>` rather than `&[T]`, `T` rather than `&T`",
                ),
                syn::Type::ImplTrait(t) => {
                    errors.spanned(t, "`impl Trait` arguments cannot travel: name a concrete type")
                }
                _ => {}
            }
        }
        match &m.ret {
            Ret::Opaque(ty) => {
                errors.spanned(ty, "an `impl Trait` return value cannot travel back: name a concrete type")
            }
            Ret::Stream { item } if m.oneway.is_some() => errors.spanned(
                item,
                "a #[oneway] method cannot stream its results: the caller does not wait for them; \
                 remove #[oneway]",
            ),
            Ret::Value(ty) | Ret::Fallible { ok: ty } if m.oneway.is_some() => errors.spanned(
                ty,
                "a #[oneway] method cannot return a value: the caller does not wait for it; \
                 remove the return type, or remove #[oneway]",
            ),
            _ => {}
        }
        if let Ret::Value(syn::Type::Reference(r)) | Ret::Fallible { ok: syn::Type::Reference(r) } = &m.ret {
            errors.spanned(r, "remote methods return owned values: return `String` rather than `&str`, `T` rather than `&T`");
        }
        if let (Some(at), Some(asyncness)) = (&m.nonblocking, &sig.asyncness) {
            let mut e = syn::Error::new_spanned(
                at,
                "#[nonblocking] marks a synchronous method that runs where its call is read; an `async fn` \
                 always runs on the runtime: remove #[nonblocking] (and never block in an async method)",
            );
            e.combine(syn::Error::new_spanned(asyncness, "this method is async"));
            errors.push(e);
        }
        let name = m.name().to_string();
        if RESERVED.contains(&name.as_str()) {
            errors.spanned(
                m.name(),
                format!(
                    "`{name}` is a method of the generated `{proxy}` itself; rename this method of the {kind} \
                     to expose it"
                ),
            );
        }
    }
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
