//! Hooks: the application told of each connection and each call, and able
//! to refuse them, without touching every method (access logs, per-method
//! metrics, authorization). Pyro's `validateHandshake` and
//! `clientDisconnect`, and more.
//!
//! For each connection, in order: [`Hooks::validate`] (after the handshake,
//! before its first call; a refusal sends the client the reason and runs no
//! other hook), [`Hooks::connected`], then for each call
//! [`Hooks::before_call`] (a refusal answers the call with the reason, and
//! the method does not run) and [`Hooks::after_call`] (its outcome and how
//! long it took), and last [`Hooks::disconnected`], once the connection's
//! calls have ended and before its session instances are dropped.
//!
//! Hooks run where the daemon is at that moment (the connection's task, or
//! the thread a call ran on): keep them short, and never block in them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmi_core::context::ConnectionInfo;
use rmi_core::object::ReplyFuture;
use rmi_core::{RemoteErrorKind, Reply, Text};

/// One call, as hooks see it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CallInfo<'a> {
    /// The connection it came over.
    pub connection: &'a ConnectionInfo,
    /// The object's id.
    pub object: &'a str,
    /// The method's name.
    pub method: &'a str,
    /// Whether the caller does not wait for it.
    pub oneway: bool,
}

impl<'a> CallInfo<'a> {
    /// A call of `method` on `object` over `connection`.
    pub(crate) fn new(
        connection: &'a ConnectionInfo,
        object: &'a str,
        method: &'a str,
        oneway: bool,
    ) -> Self {
        CallInfo { connection, object, method, oneway }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// It returned (for a stream: it ended).
    Ok,
    /// It failed, or was refused, with this kind of error.
    Failed(RemoteErrorKind),
    /// The caller gave up on it (or went away) before it ended.
    Cancelled,
}

impl CallOutcome {
    fn of(reply: &Reply) -> CallOutcome {
        match reply {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Failed(e.kind()),
        }
    }
}

/// What a daemon tells the application, and asks it. Every method has a
/// default that does nothing (and allows everything): implement those you
/// need, and give them to [`crate::DaemonBuilder::hooks`].
pub trait Hooks: Send + Sync + 'static {
    /// A new connection, its handshake done: `Err(reason)` refuses it (the
    /// client's calls fail with [`rmi_core::Error::Refused`] and the
    /// reason), and no other hook runs for it.
    ///
    /// # Errors
    ///
    /// The reason to refuse the connection.
    fn validate(&self, connection: &ConnectionInfo) -> Result<(), String> {
        let _ = connection;
        Ok(())
    }

    /// A connection was accepted (validated).
    fn connected(&self, connection: &ConnectionInfo) {
        let _ = connection;
    }

    /// A connection closed: its calls have ended; its session instances
    /// are dropped after this returns.
    fn disconnected(&self, connection: &ConnectionInfo) {
        let _ = connection;
    }

    /// A call is about to run: `Err(reason)` refuses it (the caller gets a
    /// [`RemoteErrorKind::Refused`] error with the reason, and the method
    /// does not run; [`Hooks::after_call`] still sees it).
    ///
    /// # Errors
    ///
    /// The reason to refuse the call.
    fn before_call(&self, call: &CallInfo<'_>) -> Result<(), String> {
        let _ = call;
        Ok(())
    }

    /// A call ended: how, and how long it ran (from before
    /// [`Hooks::before_call`]).
    fn after_call(&self, call: &CallInfo<'_>, outcome: CallOutcome, elapsed: Duration) {
        let _ = (call, outcome, elapsed);
    }
}

/// The hooks a daemon was given, shared by its connections.
#[derive(Clone)]
pub(crate) struct SharedHooks(pub(crate) Arc<dyn Hooks>);

impl std::fmt::Debug for SharedHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// A call being traced for [`Hooks::after_call`]: reports when dropped,
/// with the outcome set, or as cancelled (or as a panic, if dropped while
/// unwinding).
pub(crate) struct Traced {
    hooks: Option<Arc<dyn Hooks>>,
    /// The call's span, when `rmi` is logged at debug level.
    span: Option<tracing::Span>,
    connection: Arc<ConnectionInfo>,
    object: Text,
    method: Text,
    oneway: bool,
    started: Instant,
    outcome: Option<CallOutcome>,
}

impl Traced {
    /// Whether calls are traced at all: the daemon has hooks, or `rmi` is
    /// logged at debug level.
    #[inline]
    pub(crate) fn wanted(hooks: Option<&Arc<dyn Hooks>>) -> bool {
        hooks.is_some() || tracing::enabled!(tracing::Level::DEBUG)
    }

    /// Traces a call about to start (call `id` of its connection, carrying
    /// `correlation`), asking [`Hooks::before_call`] first: `Err` is the
    /// refusal, already traced.
    pub(crate) fn start(
        hooks: Option<&Arc<dyn Hooks>>,
        connection: &Arc<ConnectionInfo>,
        call: (&Text, &Text, u64, bool),
        correlation: Option<&str>,
    ) -> Result<Traced, String> {
        let (object, method, id, oneway) = call;
        let span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            tracing::debug_span!(
                "rmi.serve",
                object = object.as_str(),
                method = method.as_str(),
                id,
                correlation = correlation.unwrap_or(""),
                peer = connection.peer.as_str(),
            )
        });
        if let Some(span) = &span {
            span.in_scope(|| tracing::debug!(oneway, "call started"));
        }
        let mut traced = Traced {
            hooks: hooks.cloned(),
            span,
            connection: connection.clone(),
            object: object.clone(),
            method: method.clone(),
            oneway,
            started: Instant::now(),
            outcome: None,
        };
        let refusal = match &traced.hooks {
            Some(hooks) => hooks.before_call(&traced.info()).err(),
            None => None,
        };
        match refusal {
            None => Ok(traced),
            Some(reason) => {
                traced.outcome = Some(CallOutcome::Failed(RemoteErrorKind::Refused));
                Err(reason)
            }
        }
    }

    fn info(&self) -> CallInfo<'_> {
        CallInfo {
            connection: &self.connection,
            object: self.object.as_str(),
            method: self.method.as_str(),
            oneway: self.oneway,
        }
    }

    /// The call ended with `reply`.
    pub(crate) fn ended(mut self, reply: &Reply) {
        self.outcome = Some(CallOutcome::of(reply));
    }

    /// `future`, reporting its reply when it is done (or its cancel, when
    /// it is dropped before).
    pub(crate) fn around(self, future: ReplyFuture) -> ReplyFuture {
        use tracing::Instrument;
        let span = self.span.clone().unwrap_or_else(tracing::Span::none);
        Box::pin(
            async move {
                let reply = future.await;
                self.ended(&reply);
                reply
            }
            .instrument(span),
        )
    }

    /// `call`, reporting its reply (or its panic).
    pub(crate) fn around_blocking(
        self,
        call: rmi_core::object::BlockingCall,
    ) -> rmi_core::object::BlockingCall {
        Box::new(move || {
            let _entered = self.span.clone().map(|span| span.entered());
            let reply = call();
            self.ended(&reply);
            reply
        })
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(if std::thread::panicking() {
            CallOutcome::Failed(RemoteErrorKind::Panic)
        } else {
            CallOutcome::Cancelled
        });
        let elapsed = self.started.elapsed();
        if let Some(span) = &self.span {
            span.in_scope(|| {
                tracing::debug!(?outcome, elapsed_us = elapsed.as_micros() as u64, "call ended")
            });
        }
        if let Some(hooks) = &self.hooks {
            hooks.after_call(&self.info(), outcome, elapsed);
        }
    }
}
