//! A reference passed on to a third party.

use std::sync::Arc;

use super::Import;
use crate::encoded::Encoded;
use crate::message::Call;
use crate::object::{Dispatch, Exposed, MethodInfo};

/// The local stand-in for an imported reference passed on to a third
/// party: an object that lives behind a connection (a client's callback,
/// or an object a daemon exported over a client's connection) has no
/// address a third party can reach, so the process that holds the
/// reference exports this in its place and relays every call to it.
/// (A reference to an object registered in a daemon travels as its URI
/// instead, and is called directly.) References inside a relayed call's
/// arguments do not travel on.
pub struct Forwarder {
    import: Arc<Import>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("to", &self.import).finish()
    }
}

impl Forwarder {
    /// A stand-in relaying calls to `import`.
    pub fn new(import: Arc<Import>) -> Self {
        Forwarder { import }
    }
}

impl Exposed for Forwarder {
    fn type_name(&self) -> &'static str {
        "a forwarded reference"
    }

    fn interface(&self) -> &str {
        self.import.interface()
    }

    fn methods(&self) -> &'static [MethodInfo] {
        &[]
    }

    fn dispatch(self: Arc<Self>, method: &str, args: Encoded) -> Dispatch {
        let (deadline, meta) = crate::context::for_outgoing_call();
        let call = Call::new(self.import.object_id(), method, args).with_meta(meta.as_ref());
        Dispatch::Pending(Box::pin(async move {
            match self.import.link().clone().call(call, deadline, None).await {
                Ok(reply) => reply,
                Err(e) => Err(e.into_remote()),
            }
        }))
    }
}
