//! What to emit when the input has errors: the user's item unchanged (minus
//! our `#[oneway]` markers) followed by the errors, so the rest of the crate
//! still sees the type's methods and reports no follow-up errors.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ast::strip_method_attrs;

pub fn emit(mut item: syn::Item, errors: syn::Error) -> TokenStream {
    strip_method_attrs(&mut item);
    let mut out = item.into_token_stream();
    out.extend(errors.to_compile_error());
    out
}
