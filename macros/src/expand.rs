//! Code generation: the `Exposed` impl the daemon dispatches through, and
//! the typed `<Type>Proxy` callers use.
//!
//! Generated code names everything by absolute path (`::core::…`, and rmi
//! through `#krate::__private`), so it compiles under
//! `#![no_implicit_prelude]` and with rmi renamed.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Kind, Method, Model, Ret, strip_method_attrs};
use crate::{ast, attr, fallback, valid};

pub fn expose(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(input);
            return out;
        }
    };
    let args = match attr::parse(args) {
        Ok(args) => args,
        Err(e) => return fallback::emit(item, e),
    };
    let model = match ast::model(&item) {
        Ok(model) => model,
        Err(e) => return fallback::emit(item, e),
    };
    if let Err(e) = valid::check(&item, &model) {
        return fallback::emit(item, e);
    }
    Generator { krate: &args.krate, model: &model }.expand(item)
}

struct Generator<'a> {
    krate: &'a syn::Path,
    model: &'a Model,
}

/// Prints a type the way a person writes it (token streams space out every
/// punctuation mark).
fn tidy(tokens: &impl ToTokens) -> String {
    let mut s = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

fn signature(m: &Method) -> String {
    let mut s = format!("{}fn {}(&self", if m.is_async() { "async " } else { "" }, m.name());
    for arg in &m.args {
        s.push_str(&format!(", {}: {}", arg.name, tidy(&arg.ty)));
    }
    s.push(')');
    if let syn::ReturnType::Type(_, ty) = &m.sig.output {
        s.push_str(&format!(" -> {}", tidy(ty)));
    }
    s
}

/// Whether a method takes an upload (a parameter of type `…Upload<T>`):
/// its proxy sends the items after the call.
fn takes_upload(m: &Method) -> bool {
    m.args.iter().any(|a| {
        matches!(&a.ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Upload"))
    })
}

/// The type the caller gets back (inside `Result<_, rmi::Error>`).
fn return_type(m: &Method) -> TokenStream {
    match &m.ret {
        Ret::Unit | Ret::Opaque(_) => quote!(()),
        Ret::Value(ty) | Ret::Fallible { ok: ty } | Ret::Stream { item: ty } => ty.to_token_stream(),
    }
}

impl Generator<'_> {
    fn private(&self) -> TokenStream {
        let krate = self.krate;
        quote!(#krate::__private)
    }

    fn expand(&self, mut item: syn::Item) -> TokenStream {
        strip_method_attrs(&mut item);
        if let syn::Item::Trait(tr) = &mut item {
            self.make_async_methods_send(tr);
        }
        let object = self.object_wrapper();
        let exposed = self.exposed_impl();
        let checks = self.checks();
        let proxy = self.proxy();
        quote! {
            #item
            #object
            const _: () = {
                #checks
                #exposed
            };
            #proxy
        }
    }

    /// In a trait, `async fn m(&self) -> T` becomes
    /// `fn m(&self) -> impl Future<Output = T> + Send`, so that the daemon can
    /// run it on any thread; implementations still write `async fn`.
    fn make_async_methods_send(&self, tr: &mut syn::ItemTrait) {
        for it in &mut tr.items {
            let syn::TraitItem::Fn(f) = it else { continue };
            if f.sig.asyncness.take().is_none() {
                continue;
            }
            let output = match &f.sig.output {
                syn::ReturnType::Default => quote!(()),
                syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
            };
            let span = f.sig.ident.span();
            f.sig.output = syn::parse_quote_spanned! {span=>
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            };
            if let Some(block) = &f.default {
                f.default = Some(syn::parse_quote_spanned!(span=> { async move #block }));
            }
        }
    }

    fn object_ident(&self) -> Option<syn::Ident> {
        match &self.model.kind {
            Kind::Trait { name, .. } => Some(format_ident!("{}Object", name)),
            Kind::Impl { .. } => None,
        }
    }

    /// For a trait: `<Trait>Object<T>`, the wrapper a daemon hosts an
    /// implementation in.
    fn object_wrapper(&self) -> TokenStream {
        let Kind::Trait { name, vis } = &self.model.kind else { return TokenStream::new() };
        let object = format_ident!("{}Object", name);
        let doc = format!(
            "An implementation of [`{name}`] made ready to be hosted by a daemon: \
             `daemon.register({object}(implementation), Some(\"id\"))`."
        );
        quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::default::Default)]
            #vis struct #object<T>(pub T);
        }
    }

    /// Compile-time checks that every argument and return type can travel,
    /// each reported on the user's type.
    fn checks(&self) -> TokenStream {
        let private = self.private();
        let mut out = TokenStream::new();
        for m in &self.model.methods {
            let mut types: Vec<&syn::Type> = m.args.iter().map(|a| &a.ty).collect();
            if let Ret::Value(ty) | Ret::Fallible { ok: ty } | Ret::Stream { item: ty } = &m.ret {
                types.push(ty);
            }
            for ty in types {
                out.extend(quote_spanned! {ty.span()=>
                    #private::assert_remote::<#ty>();
                });
            }
        }
        quote!(const _: () = { #out };)
    }

    fn exposed_impl(&self) -> TokenStream {
        let private = self.private();
        let methods = &self.model.methods;
        let count = methods.len();
        let infos = methods.iter().map(|m| {
            let name = m.name().to_string();
            let sig = signature(m);
            let oneway = m.oneway.is_some();
            let stream = matches!(m.ret, Ret::Stream { .. });
            quote!(#private::MethodInfo { name: #name, signature: #sig, oneway: #oneway, stream: #stream })
        });
        let arms = methods.iter().enumerate().map(|(i, m)| self.dispatch_arm(i, m));
        let (header, type_name, implements) = match &self.model.kind {
            Kind::Impl { self_ty, name } => {
                let type_name = tidy(self_ty);
                let proxy = format_ident!("{}Proxy", name);
                (
                    quote!(impl #private::Exposed for #self_ty),
                    quote!(#type_name),
                    quote!(impl #private::Implements<#proxy> for #self_ty {}),
                )
            }
            Kind::Trait { name, .. } => {
                let object = self.object_ident();
                let proxy = format_ident!("{}Proxy", name);
                let bounds = quote!(T: #name + ::core::marker::Send + ::core::marker::Sync + 'static);
                (
                    quote! {
                        impl<T> #private::Exposed for #object<T>
                        where
                            #bounds
                    },
                    quote!(::core::any::type_name::<T>()),
                    quote!(impl<T> #private::Implements<#proxy> for #object<T> where #bounds {}),
                )
            }
        };
        let interface = self.interface_name();
        let type_header = match &self.model.kind {
            Kind::Impl { self_ty, .. } => quote!(impl #private::ExposedType for #self_ty),
            Kind::Trait { name, .. } => {
                let object = self.object_ident();
                quote! {
                    impl<T> #private::ExposedType for #object<T>
                    where
                        T: #name + ::core::marker::Send + ::core::marker::Sync + 'static
                }
            }
        };
        quote! {
            #implements

            #type_header {
                fn type_info() -> #private::TypeInfo {
                    const METHODS: [#private::MethodInfo; #count] = [#(#infos),*];
                    #private::TypeInfo { type_name: #type_name, interface: #interface, methods: &METHODS }
                }
            }

            #header {
                fn type_name(&self) -> &'static str {
                    #type_name
                }

                fn interface(&self) -> &str {
                    #interface
                }

                fn methods(&self) -> &'static [#private::MethodInfo] {
                    <Self as #private::ExposedType>::type_info().methods
                }

                fn dispatch(
                    self: ::std::sync::Arc<Self>,
                    method: &str,
                    args: #private::Encoded,
                ) -> #private::Dispatch {
                    #private::Exposed::dispatch_bytes(self, method.as_bytes(), args)
                }

                fn dispatch_bytes(
                    self: ::std::sync::Arc<Self>,
                    method: &[u8],
                    args: #private::Encoded,
                ) -> #private::Dispatch {
                    let methods = #private::Exposed::methods(&*self);
                    match method {
                        #(#arms)*
                        _ => #private::Dispatch::Ready(#private::method_not_found(
                            #private::Exposed::type_name(&*self),
                            &::std::string::String::from_utf8_lossy(method),
                            methods,
                        )),
                    }
                }
            }
        }
    }

    /// The interface's name, as references carry it: the exposed type's or
    /// trait's name.
    fn interface_name(&self) -> String {
        match &self.model.kind {
            Kind::Impl { name, .. } | Kind::Trait { name, .. } => name.to_string(),
        }
    }

    fn dispatch_arm(&self, index: usize, m: &Method) -> TokenStream {
        let private = self.private();
        let name = m.name();
        let name_str = name.to_string();
        let span = name.span();
        let vars: Vec<syn::Ident> = (0..m.args.len()).map(|i| format_ident!("__rmi_arg{}", i)).collect();
        let tys: Vec<&syn::Type> = m.args.iter().map(|a| &a.ty).collect();
        let call = match &self.model.kind {
            Kind::Impl { self_ty, .. } => quote_spanned!(span=> <#self_ty>::#name(&*this, #(#vars),*)),
            Kind::Trait { name: tr, .. } => quote_spanned!(span=> <T as #tr>::#name(&this.0, #(#vars),*)),
        };
        let call = if m.is_async() { quote_spanned!(span=> #call.await) } else { call };
        // The reply, from the call's value (a unit value is not bound to a
        // variable, so that lints about `let () = …` stay quiet).
        let reply = match &m.ret {
            Ret::Fallible { .. } => quote_spanned!(span=> #private::encode_result(#call)),
            Ret::Unit => quote_spanned!(span=> { #call; #private::encode_return(&()) }),
            _ => quote_spanned!(span=> #private::encode_return(&#call)),
        };
        // An async method runs on the runtime; a synchronous one may block,
        // so the daemon runs it on the blocking pool, unless it is marked
        // #[nonblocking]: then it runs here, where the call was read.
        // A stream's producer: made by the method first (an async one on
        // the runtime, a synchronous one on the blocking pool unless it is
        // #[nonblocking]), then polled by the daemon for its items.
        let run = if let Ret::Stream { .. } = &m.ret {
            if m.is_async() {
                quote_spanned!(span=> #private::Dispatch::Stream(#private::Source::after(async move { #call })))
            } else if m.nonblocking.is_some() {
                quote_spanned!(span=> #private::Dispatch::Stream(#private::Stream::into_source(#call)))
            } else {
                quote_spanned!(span=> #private::Dispatch::Stream(#private::Source::blocking(move || #call)))
            }
        } else if m.is_async() {
            quote_spanned! {span=>
                #private::Dispatch::Pending(::std::boxed::Box::pin(async move { #reply }))
            }
        } else if m.nonblocking.is_some() {
            quote_spanned!(span=> #private::Dispatch::Ready(#reply))
        } else {
            quote_spanned! {span=>
                #private::Dispatch::Blocking(::std::boxed::Box::new(move || #reply))
            }
        };
        let name_bytes = syn::LitByteStr::new(name_str.as_bytes(), span);
        quote_spanned! {span=>
            #name_bytes => {
                let this = self;
                let (#(#vars,)*): (#(#tys,)*) = match #private::decode_args(&args, &methods[#index]) {
                    ::core::result::Result::Ok(decoded) => decoded,
                    ::core::result::Result::Err(e) => {
                        return #private::Dispatch::Ready(::core::result::Result::Err(e));
                    }
                };
                #run
            }
        }
    }

    fn proxy(&self) -> TokenStream {
        let krate = self.krate;
        let private = self.private();
        let (name, vis) = match &self.model.kind {
            Kind::Impl { name, .. } => (name, syn::Visibility::Public(Default::default())),
            Kind::Trait { name, vis } => (name, vis.clone()),
        };
        let proxy = format_ident!("{}Proxy", name);
        let doc = format!(
            "A typed proxy for a remote [`{name}`]: each method calls the remote object's method of the same \
             name and returns its value, or the [`Error`]({}::Error) that kept it from coming back.\n\n\
             Clones share one connection. Generated by `#[rmi::expose]`.",
            tidy(krate)
        );
        let method_vis = &vis;
        let methods = self.model.methods.iter().map(|m| {
            let name = m.name();
            let name_str = name.to_string();
            let docs = &m.docs;
            let args = m.args.iter().map(|a| {
                let (n, t) = (&a.name, &a.ty);
                quote!(#n: #t)
            });
            let names: Vec<&syn::Ident> = m.args.iter().map(|a| &a.name).collect();
            let ret = return_type(m);
            let method = quote!(#private::Text::from_static(#name_str));
            if let Ret::Stream { .. } = &m.ret {
                return quote_spanned! {name.span()=>
                    #(#docs)*
                    #method_vis async fn #name(&self, #(#args),*)
                        -> ::core::result::Result<#krate::Streaming<#ret>, #krate::Error>
                    {
                        self.proxy.call_stream_named::<#ret>(#method, (#(#names,)*)).await
                    }
                };
            }
            let body = if m.oneway.is_some() {
                quote!(self.proxy.call_oneway_named(#method, (#(#names,)*)).await)
            } else if takes_upload(m) {
                quote!(self.proxy.call_upload_named::<#ret>(#method, (#(#names,)*), self.proxy.timeout()).await)
            } else {
                quote!(self.proxy.call_named::<#ret>(#method, (#(#names,)*), self.proxy.timeout()).await)
            };
            quote_spanned! {name.span()=>
                #(#docs)*
                #method_vis async fn #name(&self, #(#args),*) -> ::core::result::Result<#ret, #krate::Error> {
                    #body
                }
            }
        });
        let batch = self.batch(&proxy, name, &vis);
        let interface = self.interface_name();
        quote! {
            #batch

            #[doc = #doc]
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            #vis struct #proxy {
                proxy: #krate::Proxy,
            }

            impl #proxy {
                /// A proxy for the object at `uri` (`RMI:`, `RMINAME:` or `RMIMETA:`); it
                /// connects on its first call.
                ///
                /// # Errors
                ///
                /// When the URI is malformed or an `RMI_*` variable is invalid.
                pub fn new(uri: impl #private::IntoUri) -> ::core::result::Result<Self, #krate::Error> {
                    ::core::result::Result::Ok(Self { proxy: #krate::Proxy::new(uri)? })
                }

                /// A proxy for the object at `uri`, connected now, so that a wrong address
                /// shows at once.
                ///
                /// # Errors
                ///
                /// When the URI is malformed, the name cannot be resolved, or the daemon
                /// cannot be reached or refuses the connection.
                pub async fn connect(uri: impl #private::IntoUri) -> ::core::result::Result<Self, #krate::Error> {
                    ::core::result::Result::Ok(Self { proxy: #krate::Proxy::connect(uri).await? })
                }

                /// A typed proxy over a dynamic one (sharing its connection).
                pub fn from_proxy(proxy: #krate::Proxy) -> Self {
                    Self { proxy }
                }

                /// The dynamic proxy underneath.
                pub fn proxy(&self) -> &#krate::Proxy {
                    &self.proxy
                }

                /// The dynamic proxy underneath.
                pub fn into_proxy(self) -> #krate::Proxy {
                    self.proxy
                }

                /// The same proxy (sharing the connection) whose calls wait at most
                /// `timeout` for their reply (`None`: forever).
                #[must_use]
                pub fn with_timeout(self, timeout: ::core::option::Option<::core::time::Duration>) -> Self {
                    Self { proxy: self.proxy.with_timeout(timeout) }
                }

                #(#methods)*
            }

            impl #private::Interface for #proxy {
                const NAME: &'static str = #interface;

                fn from_proxy(proxy: #krate::Proxy) -> Self {
                    Self { proxy }
                }

                fn as_proxy(&self) -> &#krate::Proxy {
                    &self.proxy
                }
            }
        }
    }

    /// `<Type>Batch`: records calls of the object's methods, with their own
    /// argument and result types, to run them in one message (awaiting it).
    fn batch(&self, proxy: &syn::Ident, name: &syn::Ident, vis: &syn::Visibility) -> TokenStream {
        let krate = self.krate;
        let private = self.private();
        let batch = format_ident!("{}Batch", name);
        let doc = format!(
            "Calls to a remote [`{name}`] recorded to run together, in one message each way: each method \
             records a call and returns where its result will be; awaiting the batch runs it and gives \
             the [`BatchResults`]({krate}::BatchResults). The daemon runs the calls in order and stops at \
             the first failure. Generated by `#[rmi::expose]`.",
            krate = tidy(krate)
        );
        // A stream cannot be part of a batch: its methods are not offered.
        let methods = self
            .model
            .methods
            .iter()
            .filter(|m| !matches!(m.ret, Ret::Stream { .. }) && !takes_upload(m))
            .map(|m| {
                let name = m.name();
                let name_str = name.to_string();
                let args = m.args.iter().map(|a| {
                    let (n, t) = (&a.name, &a.ty);
                    quote!(#n: #t)
                });
                let names: Vec<&syn::Ident> = m.args.iter().map(|a| &a.name).collect();
                let ret = return_type(m);
                let doc = format!("Records a call of `{name_str}`; nothing is sent until the batch runs.");
                quote_spanned! {name.span()=>
                    #[doc = #doc]
                    ///
                    /// # Errors
                    ///
                    /// When the arguments do not encode, or the batch would pass the message size limit.
                    #vis fn #name(&mut self, #(#args),*)
                        -> ::core::result::Result<#krate::BatchCall<#ret>, #krate::Error>
                    {
                        self.batch.call_named::<#ret>(#private::Text::from_static(#name_str), (#(#names,)*))
                    }
                }
            });
        quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug)]
            #[must_use = "a batch sends nothing until it is awaited"]
            #vis struct #batch {
                batch: #krate::Batch,
            }

            impl #batch {
                /// An empty batch of calls to the object behind `proxy`.
                pub fn new(proxy: &#proxy) -> Self {
                    Self { batch: proxy.proxy().batch() }
                }

                #(#methods)*
            }

            impl ::core::convert::From<#batch> for #krate::Batch {
                /// The dynamic batch underneath (to add calls by name, or to run it oneway).
                fn from(batch: #batch) -> Self {
                    batch.batch
                }
            }

            impl ::core::future::IntoFuture for #batch {
                type Output = ::core::result::Result<#krate::BatchResults, #krate::Error>;
                type IntoFuture = #private::BatchRun;

                /// Runs the batch: one message out, one back.
                fn into_future(self) -> Self::IntoFuture {
                    #private::run_boxed(self.batch)
                }
            }
        }
    }
}
