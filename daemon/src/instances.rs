//! Instance modes: objects the daemon makes itself, from a factory, one
//! for the whole daemon, one per client connection, or one per call (Pyro's
//! `instance_mode` of `single`, `session` and `percall`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rmi_core::Encoded;
use rmi_core::object::{Dispatch, Exposed, ExposedType, MethodInfo, TypeInfo};
use rmi_core::peer::{Peer, current_scope};

/// How the daemon makes the instances of an object it registers from a
/// factory ([`crate::Daemon::register_factory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstanceMode {
    /// One instance for the whole daemon, made on the first call (once,
    /// however many first calls arrive together) and kept while registered.
    Single,
    /// One instance per client connection, made on the connection's first
    /// call of it and dropped once the connection has closed and its calls
    /// have ended. A proxy that reconnects (after an idle timeout, say) starts
    /// a new session, as in Pyro.
    Session,
    /// A fresh instance for each call, dropped before the call's reply is
    /// sent.
    PerCall,
}

/// What makes the instances.
type Factory = Arc<dyn Fn() -> Arc<dyn Exposed> + Send + Sync>;

/// Keys of session registrations: each has its own instance per connection.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A registration whose instances the daemon makes: it dispatches each
/// call to the instance its mode says.
pub(crate) struct Instances {
    mode: InstanceMode,
    make: Factory,
    info: TypeInfo,
    single: OnceLock<Arc<dyn Exposed>>,
    session: u64,
    /// For calls made outside any connection (none today): instances per
    /// session then live here.
    fallback: Arc<Peer>,
}

impl Instances {
    pub(crate) fn new<O, F>(mode: InstanceMode, factory: F) -> Self
    where
        O: ExposedType,
        F: Fn() -> O + Send + Sync + 'static,
    {
        Instances {
            mode,
            make: Arc::new(move || Arc::new(factory()) as Arc<dyn Exposed>),
            info: O::type_info(),
            single: OnceLock::new(),
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            fallback: Peer::new(),
        }
    }

    /// The instance a call made now goes to.
    fn instance(&self) -> Arc<dyn Exposed> {
        match self.mode {
            InstanceMode::Single => self.single.get_or_init(|| (self.make)()).clone(),
            InstanceMode::Session => {
                let make = || (self.make)();
                match current_scope() {
                    Some(scope) => scope.peer().session(self.session, make),
                    None => self.fallback.session(self.session, make),
                }
            }
            InstanceMode::PerCall => (self.make)(),
        }
    }
}

impl Exposed for Instances {
    fn type_name(&self) -> &'static str {
        self.info.type_name
    }

    fn interface(&self) -> &str {
        self.info.interface
    }

    fn methods(&self) -> &'static [MethodInfo] {
        self.info.methods
    }

    fn per_connection(&self) -> bool {
        self.mode == InstanceMode::Session
    }

    fn instance_mode(&self) -> &'static str {
        match self.mode {
            InstanceMode::Single => "single",
            InstanceMode::Session => "session",
            InstanceMode::PerCall => "percall",
        }
    }

    fn dispatch(self: Arc<Self>, method: &str, args: Encoded) -> Dispatch {
        // The instance goes with the call: a per-call one is dropped when the
        // method is done with it (its future, or its blocking call), before
        // the reply is sent; a session's lives on with its connection.
        self.instance().dispatch(method, args)
    }

    fn dispatch_bytes(self: Arc<Self>, method: &[u8], args: Encoded) -> Dispatch {
        self.instance().dispatch_bytes(method, args)
    }
}
