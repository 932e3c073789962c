//! The objects a client exports over its connection: the daemon calls them
//! back over the connection the client opened, so the client needs no
//! daemon, no open port and no serving loop of its own (behind NAT too).
//!
//! Calls from the daemon are read by whoever reads the connection: a caller
//! waiting for its own reply (leader and followers, see the parent module),
//! or, while the client exports anything, a reading task of the connection's
//! own, so that an idle client still hears its callbacks. Either way the
//! reader only hands each call to a task of its own: no handler runs on the
//! reader. The reading task ends once every export is released, and with
//! it the connection's hold on itself.

use std::pin::Pin;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable};
use rmi_core::exports::Exports;
use rmi_core::idmap::IdMap;
use rmi_core::invoke::{Started, finish, on_blocking_pool, start, stream_refused};
use rmi_core::message::deadline_from;
use rmi_core::peer::{CallFuture, Link, Peer, export_not_found, parse_export_object_id};
use rmi_core::{Call, Error, Message, Reply};

use super::{CallFailure, ClientConnection};

impl ClientConnection {
    pub(super) fn hosted(&self) -> MutexGuard<'_, IdMap<AbortHandle>> {
        // Insertions and removals leave the map whole; a poisoned lock is usable.
        self.hosted.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `exports` as sent over this connection (before the message
    /// that carries them is written), and starts reading for the calls they
    /// may bring.
    pub(super) fn export(&self, exports: &Exports) {
        if exports.is_empty() {
            return;
        }
        self.peer.export(exports);
        if !self.reading.swap(true, std::sync::atomic::Ordering::AcqRel)
            && let Some(me) = self.me.upgrade()
        {
            tokio::spawn(me.read_while_exporting());
        }
    }

    /// Reads the connection for everyone while this client exports objects:
    /// replies go to their callers, calls to tasks of their own.
    async fn read_while_exporting(self: Arc<Self>) {
        loop {
            self.read_exporting().await;
            self.reading.store(false, std::sync::atomic::Ordering::Release);
            // A caller may be waiting to read its reply itself.
            self.hand_off(None);
            // Exported again meanwhile: read on.
            let again = self.peer.export_count() > 0 && !self.peer.is_closed();
            if !again || self.reading.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
        }
    }

    /// One stretch of reading, until no export is left or the connection
    /// ends.
    async fn read_exporting(&self) {
        let mut reader = self.reader.lock().await;
        loop {
            if self.peer.export_count() == 0 || self.peer.is_closed() {
                return;
            }
            let read = tokio::select! {
                read = self.read_one(&mut reader) => read,
                () = self.peer.exports_released() => return,
            };
            if read.is_err() {
                return;
            }
        }
    }

    /// Acts on a message from the daemon that is not a reply to one of our
    /// calls: a call to one of our objects, its cancel, or a release.
    pub(super) fn incoming(&self, message: Message) {
        match message {
            Message::Call { id, remaining, call } => {
                let deadline = deadline_from(Instant::now(), remaining);
                let Some(me) = self.me.upgrade() else { return };
                let object = parse_export_object_id(call.object.as_bytes())
                    .and_then(|export| self.peer.exported(export));
                let Some(object) = object else {
                    if !call.oneway {
                        let reply = Message::Reply { id, reply: Err(export_not_found(&call.object)) };
                        let _ = self.writer.send_batched(&reply);
                    }
                    return;
                };
                tokio::spawn(async move {
                    let oneway = call.oneway;
                    let method = call.method.clone();
                    let reply = me.run_hosted(id, object, call, deadline).await;
                    let Some(reply) = reply else { return };
                    if let Err(e) = &reply {
                        tracing::warn!(%method, "a call back into this client failed: {e}");
                    }
                    if oneway {
                        return;
                    }
                    if let Ok(value) = &reply {
                        me.export(value.exports());
                    }
                    // Written at once from this task: a callback's reply has no
                    // company to wait for.
                    let _ = me.writer.send(&Message::Reply { id, reply });
                });
            }
            Message::Cancel { id } => {
                if let Some(call) = self.hosted().remove(&id) {
                    call.abort();
                }
            }
            Message::Release { export, count } => {
                self.peer.release(export, count);
            }
            Message::Items { id, items } => self.push_items(id, items),
            Message::Credit { id, bytes } => self.upload_credits.grant(id, bytes),
            Message::Close { reason } => {
                self.fail_all(Error::Refused(reason.as_str().to_owned()));
            }
            Message::Reply { .. } => {}
            _ => {}
        }
    }

    /// Runs one call of the daemon on one of our objects, as a daemon runs
    /// calls (the same rule for where it runs); `None` when it was
    /// cancelled.
    async fn run_hosted(
        self: &Arc<Self>,
        id: u64,
        object: Arc<dyn rmi_core::object::Exposed>,
        mut call: Call,
        deadline: Option<Instant>,
    ) -> Option<Reply> {
        let mut context = self.contexts.call(deadline, call.meta.take());
        let method = call.method;
        let refs = call.args.carries_references();
        let started = self.scope.enter_if(refs, || start(object, &method, call.args, &mut context));
        match started {
            Started::Done(reply) => Some(reply),
            Started::Blocking(blocking) => Some(on_blocking_pool(&method, blocking, context).await),
            Started::Stream(_) => Some(Err(stream_refused(&method, "a callback does not carry yet"))),
            Started::Running(future) => {
                let (abort, registration) = AbortHandle::new_pair();
                self.hosted().insert(id, abort);
                let finished = Abortable::new(context.scope(finish(&method, future)), registration).await;
                self.hosted().remove(&id);
                finished.ok()
            }
        }
    }
}

impl Link for ClientConnection {
    fn call(self: Arc<Self>, call: Call, deadline: Option<Instant>, timeout: Option<Duration>) -> CallFuture {
        Box::pin(async move {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match ClientConnection::send_call(
                &self,
                &mut Some(call),
                deadline,
                deadline.map(rmi_core::alarm::ticks),
                timeout,
                remaining,
            )
            .await
            {
                Ok(reply) => Ok(reply),
                Err(CallFailure::NotSent(e) | CallFailure::Failed(e)) => Err(e),
            }
        })
    }

    fn call_oneway(
        self: Arc<Self>,
        call: Call,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>> {
        Box::pin(async move {
            ClientConnection::send_oneway(&self, call)
                .await
                .map_err(|(CallFailure::NotSent(e) | CallFailure::Failed(e))| e)
        })
    }

    fn release(&self, export: u64, count: u32) {
        // No round trip: it goes out with whatever is written next.
        let _ = self.writer.send_batched(&Message::Release { export, count });
    }

    fn describe(&self) -> String {
        format!("the daemon at {}", self.address)
    }

    fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}
