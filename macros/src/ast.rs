//! The typed model of what `#[expose]` was put on.

use proc_macro2::Span;
use syn::spanned::Spanned;

/// What the attribute sits on.
pub enum Kind {
    /// `impl Type { … }`: the type's name and the type.
    Impl { name: syn::Ident, self_ty: syn::Type },
    /// `trait Name { … }`: its name and visibility.
    Trait { name: syn::Ident, vis: syn::Visibility },
}

/// The item and the methods it exposes.
pub struct Model {
    pub kind: Kind,
    pub methods: Vec<Method>,
    /// Where to report item-level errors.
    pub span: Span,
}

/// How a method takes `self`.
pub enum Receiver {
    /// `&self`: what remote methods take.
    Ref,
    /// `&mut self`.
    RefMut,
    /// `self` by value.
    Value,
    /// `self: Box<Self>` and other typed receivers.
    Typed,
}

/// What a method returns.
pub enum Ret {
    /// Nothing, or `()`.
    Unit,
    /// A plain value.
    Value(syn::Type),
    /// `…Result<T, E>`: `T` goes back; `E` becomes a remote error.
    Fallible { ok: syn::Type },
    /// `impl Trait`, which cannot travel.
    Opaque(syn::Type),
    /// `…Stream<T>` (`rmi::Stream<T>`): the results stream, `T` by `T`.
    Stream { item: syn::Type },
}

pub struct Arg {
    /// The parameter's name in the generated proxy.
    pub name: syn::Ident,
    pub ty: syn::Type,
}

pub struct Method {
    pub sig: syn::Signature,
    /// The method's doc comments, repeated on the proxy's method.
    pub docs: Vec<syn::Attribute>,
    pub receiver: Receiver,
    /// Where `#[oneway]` was written, if it was.
    pub oneway: Option<Span>,
    /// `#[nonblocking]`, if it was written: a synchronous method that runs
    /// where its call is read, not on the blocking pool.
    pub nonblocking: Option<syn::Attribute>,
    pub args: Vec<Arg>,
    pub ret: Ret,
}

impl Method {
    pub fn name(&self) -> &syn::Ident {
        &self.sig.ident
    }

    pub fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }
}

/// Whether an attribute is our `#[oneway]` (written `#[rmi::oneway]`,
/// `#[oneway]`, or through a renamed crate).
pub fn is_oneway(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "oneway")
}

/// Whether an attribute is our `#[nonblocking]`.
pub fn is_nonblocking(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "nonblocking")
}

/// Whether an attribute is one of ours, which only mean something to
/// `#[expose]`.
fn is_ours(attr: &syn::Attribute) -> bool {
    is_oneway(attr) || is_nonblocking(attr)
}

/// Removes `#[oneway]` and `#[nonblocking]` from every method: they only
/// mean something to us.
pub fn strip_method_attrs(item: &mut syn::Item) {
    match item {
        syn::Item::Impl(imp) => {
            for it in &mut imp.items {
                if let syn::ImplItem::Fn(f) = it {
                    f.attrs.retain(|a| !is_ours(a));
                }
            }
        }
        syn::Item::Trait(tr) => {
            for it in &mut tr.items {
                if let syn::TraitItem::Fn(f) = it {
                    f.attrs.retain(|a| !is_ours(a));
                }
            }
        }
        _ => {}
    }
}

fn receiver(sig: &syn::Signature) -> Option<Receiver> {
    let r = sig.receiver()?;
    Some(if r.colon_token.is_some() {
        Receiver::Typed
    } else if r.reference.is_none() {
        Receiver::Value
    } else if r.mutability.is_some() {
        Receiver::RefMut
    } else {
        Receiver::Ref
    })
}

fn ret(output: &syn::ReturnType) -> Ret {
    let syn::ReturnType::Type(_, ty) = output else { return Ret::Unit };
    match &**ty {
        syn::Type::Tuple(t) if t.elems.is_empty() => Ret::Unit,
        syn::Type::ImplTrait(_) => Ret::Opaque((**ty).clone()),
        syn::Type::Path(p) => {
            let last = p.path.segments.last();
            if let Some(seg) = last.filter(|s| s.ident == "Result")
                && let syn::PathArguments::AngleBracketed(args) = &seg.arguments
                && let Some(syn::GenericArgument::Type(ok)) = args.args.first()
            {
                return Ret::Fallible { ok: ok.clone() };
            }
            if let Some(seg) = last.filter(|s| s.ident == "Stream")
                && let syn::PathArguments::AngleBracketed(args) = &seg.arguments
                && args.args.len() == 1
                && let Some(syn::GenericArgument::Type(item)) = args.args.first()
            {
                return Ret::Stream { item: item.clone() };
            }
            Ret::Value((**ty).clone())
        }
        _ => Ret::Value((**ty).clone()),
    }
}

fn method(sig: &syn::Signature, attrs: &[syn::Attribute]) -> Option<Method> {
    let receiver = receiver(sig)?;
    let args = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(pat) => Some(pat),
            syn::FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, pat)| {
            let name = match &*pat.pat {
                syn::Pat::Ident(id) if id.subpat.is_none() => id.ident.clone(),
                other => syn::Ident::new(&format!("arg{i}"), other.span()),
            };
            Arg { name, ty: (*pat.ty).clone() }
        })
        .collect();
    Some(Method {
        sig: sig.clone(),
        docs: attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect(),
        receiver,
        oneway: attrs.iter().find(|a| is_oneway(a)).map(Spanned::span),
        nonblocking: attrs.iter().find(|a| is_nonblocking(a)).cloned(),
        args,
        ret: ret(&sig.output),
    })
}

/// Builds the model. The checks come later (`valid`); here only the shape
/// of the item itself is refused when it is not one we can work with.
pub fn model(item: &syn::Item) -> syn::Result<Model> {
    match item {
        syn::Item::Impl(imp) => {
            if let Some((_, path, _)) = &imp.trait_ {
                return Err(syn::Error::new_spanned(
                    path,
                    "#[expose] goes on an inherent impl block (`impl Type { … }`) or on the trait itself, \
                     not on a trait implementation",
                ));
            }
            let syn::Type::Path(path) = &*imp.self_ty else {
                return Err(syn::Error::new_spanned(
                    &imp.self_ty,
                    "#[expose] needs a named type, as `impl Greeter { … }`",
                ));
            };
            let Some(last) = path.path.segments.last() else {
                return Err(syn::Error::new_spanned(&imp.self_ty, "#[expose] needs a named type"));
            };
            let methods = imp
                .items
                .iter()
                .filter_map(|it| match it {
                    syn::ImplItem::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => {
                        method(&f.sig, &f.attrs)
                    }
                    _ => None,
                })
                .collect();
            Ok(Model {
                kind: Kind::Impl { name: last.ident.clone(), self_ty: (*imp.self_ty).clone() },
                methods,
                span: imp.impl_token.span,
            })
        }
        syn::Item::Trait(tr) => {
            let methods = tr
                .items
                .iter()
                .filter_map(|it| match it {
                    syn::TraitItem::Fn(f) => method(&f.sig, &f.attrs),
                    _ => None,
                })
                .collect();
            Ok(Model {
                kind: Kind::Trait { name: tr.ident.clone(), vis: tr.vis.clone() },
                methods,
                span: tr.ident.span(),
            })
        }
        other => Err(syn::Error::new_spanned(
            other,
            "#[expose] goes on an inherent impl block (`impl Type { … }`) or on a trait",
        )),
    }
}
