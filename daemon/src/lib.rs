//! rmi's daemon: hosts objects and serves calls to them.
//!
//! Users reach it through the `rmi` crate as `rmi::Daemon`.
//!
//! # Layout
//!
//! - `daemon`: [`Daemon`] and its builder: bind, register, serve, shut down.
//! - `state`: what the daemon's tasks share (settings, registry, budgets).
//! - `instances`: objects the daemon makes itself from a factory, per
//!   daemon, per connection or per call ([`InstanceMode`]).
//! - `registry`: the hosted objects by id, and the daemon's own object
//!   (`RMI.Daemon`: `ping`, `describe`, `registered`, `batch`).
//! - `channels`: services other than rmi's objects (a tarpc service) served
//!   on the daemon's listener, named in rmi's handshake ([`Channel`]).
//! - `callbacks`: the daemon's calls to the objects a client passed it,
//!   over the connection the client opened.
//! - `connection`: one client connection: handshake, reading loop, calls
//!   started where they belong (workers, the blocking pool), cancellation.
//! - `pyro5`: a connection from a Pyro5 client (Python, json serializer):
//!   the same objects through Pyro5's protocol, when the daemon says so.
//! - `hooks`: [`Hooks`], the application told of each connection and call,
//!   and able to refuse them.
//! - `flow`: flow control: when a connection may start another call (room
//!   for its reply, in the connection and in the daemon), and the calls it
//!   holds until then.
//! - `workers`: the reusable tasks a connection's calls run on.
//!
//! This crate has no feature flags.

// Data from the network must never panic this code: these are denied outside
// tests, and the few justified exceptions say why where they stand.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod callbacks;
mod channels;
mod connection;
mod daemon;
mod flow;
mod hooks;
mod instances;
mod names;
mod pyro5;
mod registry;
mod state;
mod workers;

pub use channels::Channel;
pub use daemon::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CALLS_PER_CONNECTION,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED_PER_CONNECTION, DEFAULT_MAX_QUEUED_TOTAL,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_WRITE_TIMEOUT, Daemon, DaemonBuilder, DaemonError,
};
pub use flow::HELD_LIMIT;
pub use hooks::{CallInfo, CallOutcome, Hooks};
pub use instances::InstanceMode;
pub use pyro5::{PYRO5_MAX_MESSAGE, Pyro5Exception, Pyro5Future, Pyro5Object};
pub use registry::DAEMON_OBJECT;
