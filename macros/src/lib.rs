//! rmi's `#[expose]`, `#[oneway]` and `#[nonblocking]` attributes. Use them
//! through the `rmi` crate: `#[rmi::expose]`, `#[rmi::oneway]`,
//! `#[rmi::nonblocking]`.
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
///
/// Where each method runs: an `async fn` on the runtime (it must not
/// block); a plain `fn` on tokio's blocking pool (it may block); a plain
/// `fn` marked `#[rmi::nonblocking]` where its call is read (it must not
/// block either).
#[proc_macro_attribute]
pub fn expose(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expose(args.into(), input.into()).into()
}

/// Marks a method of an `#[rmi::expose]` block as oneway: callers do not
/// wait for it, and it returns nothing.
#[proc_macro_attribute]
pub fn oneway(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_expose("oneway", input)
}

/// Marks a synchronous method of an `#[rmi::expose]` block as one that
/// never blocks: the daemon runs it where it reads the call, the fast path,
/// instead of on tokio's blocking pool (while it runs, the requests that
/// follow it on its connection wait, on any runtime).
#[proc_macro_attribute]
pub fn nonblocking(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_expose("nonblocking", input)
}

/// `#[expose]` removes its method attributes from the methods it handles;
/// reaching one of them means it stands where `#[expose]` does not see it.
fn outside_expose(attribute: &str, input: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        format!(
            "#[{attribute}] marks a method of an #[rmi::expose] impl block or trait; put #[rmi::expose] on the block"
        ),
    );
    let mut out = error.to_compile_error();
    out.extend(proc_macro2::TokenStream::from(input));
    out.into()
}
