//! rmi's proxies: the client side of a remote call.
//!
//! Users reach these through the `rmi` crate: [`Proxy`] for dynamic calls
//! (`proxy.call("method", args)`), and the typed `<Type>Proxy` that
//! `#[rmi::expose]` generates on top of it.
//!
//! # Layout
//!
//! - `proxy`: [`Proxy`], its builder, and [`IntoUri`].
//! - `connection`: one multiplexed connection to a daemon, shared by a
//!   proxy's clones; many calls in flight, matched to responses by id.
//! - `resolve`: from a URI to an object's location.
//!
//! This crate has no feature flags.

mod connection;
mod proxy;
mod resolve;

pub use proxy::{DAEMON_OBJECT, DEFAULT_CONNECT_TIMEOUT, IntoUri, Proxy, ProxyBuilder};
