//! rmi: remote objects for Rust, in the spirit of Pyro and Java RMI.
//!
//! A name server maps logical names to object URIs, a daemon hosts objects,
//! and proxies forward method calls to them from other processes.
//!
//! # Layout
//!
//! This crate re-exports what users need from rmi's member crates:
//! `rmi-core` (URIs, wire, authentication, errors, configuration).

pub use rmi_core::{
    AuthError, Blob, Config, ConfigError, Error, Host, HostPort, Key, Location, MetaUri, NameUri, ObjectUri,
    RemoteError, RemoteErrorKind, Uri, UriError,
};
