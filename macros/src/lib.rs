//! rmi's `#[expose]` and `#[oneway]` attributes. Use them through the `rmi`
//! crate: `#[rmi::expose]`, `#[rmi::oneway]`.
//!
//! # Layout
//!
//! One stage per file, as the input flows:
//! - `attr`: the attribute's own arguments (`crate = …`).
//! - `ast`: the typed model of the impl block or trait and its methods.
//! - `valid`: the checks, each error spanned on the user's code.
//! - `expand`: the generated `Exposed` impl and `<Type>Proxy`.
//! - `fallback`: on error, the user's item with the errors, so that errors do
//!   not cascade.

#![allow(unreachable_pub)]

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;

/// Exposes an inherent `impl` block's `pub fn`s taking `&self`, or every
/// method of a trait, to remote callers; generates the daemon's dispatch
/// and a typed `<Type>Proxy`. See the `rmi` crate for the full story.
#[proc_macro_attribute]
pub fn expose(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expose(args.into(), input.into()).into()
}

/// Marks a method of an `#[rmi::expose]` block as oneway: callers do not
/// wait for it, and it returns nothing.
#[proc_macro_attribute]
pub fn oneway(_args: TokenStream, input: TokenStream) -> TokenStream {
    // #[expose] removes #[oneway] from the methods it handles; reaching this
    // means the attribute stands where #[expose] does not see it.
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "#[oneway] marks a method of an #[rmi::expose] impl block or trait; put #[rmi::expose] on the block",
    );
    let mut out = error.to_compile_error();
    out.extend(proc_macro2::TokenStream::from(input));
    out.into()
}
