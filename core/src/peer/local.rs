//! A local object reached the way a remote one is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CallFuture, Link, Peer, Scope, export_not_found, parse_export_object_id};
use crate::error::Error;
use crate::invoke::{complete, start};
use crate::message::Call;
use crate::object::Exposed;

/// Calls a local object through the code a daemon runs calls with, so that
/// a reference to a local object (one made here and never sent, or sent and
/// used here too) is called exactly as a remote one: the same rule for where
/// methods run, the same panics caught, references in its arguments and
/// replies exported and imported through an object space of its own.
pub struct LocalLink {
    object: Arc<dyn Exposed>,
    peer: Arc<Peer>,
}

impl std::fmt::Debug for LocalLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLink").field("interface", &self.object.interface()).finish()
    }
}

impl LocalLink {
    /// A link to `object`, in this process.
    pub fn new(object: Arc<dyn Exposed>) -> Arc<Self> {
        Arc::new(LocalLink { object, peer: Peer::new() })
    }

    async fn run(self: Arc<Self>, call: Call, deadline: Option<Instant>) -> crate::message::Reply {
        self.peer.export(call.args.exports());
        let object = match parse_export_object_id(call.object.as_bytes()) {
            Some(id) => match self.peer.exported(id) {
                Some(object) => object,
                None => return Err(export_not_found(&call.object)),
            },
            None => self.object.clone(),
        };
        let link: Arc<dyn Link> = self.clone();
        let scope = Scope::new(self.peer.clone(), link);
        let method = call.method;
        let refs = call.args.carries_references();
        let mut context = crate::context::CallContext::incoming(deadline, None, call.meta);
        let started = scope.enter_if(refs, || start(object, &method, call.args, &mut context));
        let reply = complete(started, &method, context, "a local reference does not carry").await;
        // The reply "travels" to the caller here: what it exports, this
        // link's object space holds.
        if let Ok(value) = &reply {
            self.peer.export(value.exports());
        }
        reply
    }
}

impl Link for LocalLink {
    fn call(self: Arc<Self>, call: Call, deadline: Option<Instant>, timeout: Option<Duration>) -> CallFuture {
        Box::pin(async move {
            let running = self.run(call, deadline);
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), running)
                    .await
                    .map_err(|_| Error::Timeout(timeout.unwrap_or_default())),
                None => Ok(running.await),
            }
        })
    }

    fn call_oneway(self: Arc<Self>, call: Call) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> {
        Box::pin(async move {
            let method = call.method.clone();
            tokio::spawn(async move {
                if let Err(e) = self.run(call, None).await {
                    tracing::info!(%method, "oneway call failed: {e}");
                }
            });
            Ok(())
        })
    }

    fn release(&self, export: u64, count: u32) {
        self.peer.release(export, count);
    }

    fn describe(&self) -> String {
        format!("a local {}", self.object.interface())
    }

    fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}
