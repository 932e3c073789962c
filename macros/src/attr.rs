//! The arguments of `#[expose(...)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;

/// What `#[expose(...)]` was given.
pub struct Args {
    /// The path generated code names rmi by: `::rmi` unless `crate = …`.
    pub krate: syn::Path,
}

/// Parses `crate = path` or `crate = "path"`; nothing else is accepted.
pub fn parse(args: TokenStream) -> syn::Result<Args> {
    let mut krate: syn::Path = syn::parse_quote!(::rmi);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let value = meta.value()?;
            krate = if value.peek(syn::LitStr) {
                value.parse::<syn::LitStr>()?.parse()?
            } else {
                value.parse()?
            };
            Ok(())
        } else {
            Err(meta.error("unknown #[expose] argument; the only one is `crate = path::to::rmi`"))
        }
    });
    parser.parse2(args)?;
    Ok(Args { krate })
}
