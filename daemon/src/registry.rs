//! The objects a daemon hosts, by id, and the daemon's own object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use rmi_core::context::CallContext;
use rmi_core::object::{self, Dispatch, Exposed, MethodInfo, ObjectDescription};
use rmi_core::peer::{Scope, current_scope};
use rmi_core::{Encoded, RemoteError, RemoteErrorKind, Reply, Text};

use crate::DaemonError;
use rmi_core::invoke::{Started, finish, run_blocking, start, stream_refused};

/// Id of the daemon's own object, which every daemon hosts.
pub const DAEMON_OBJECT: &str = "RMI.Daemon";

/// The hosted objects: a concurrent map, read on every call.
#[derive(Default)]
pub(crate) struct Registry {
    objects: DashMap<String, Arc<dyn Exposed>>,
    /// Changes with every registration and removal, so that connections can
    /// cache lookups and know when to look again.
    generation: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("objects", &self.ids()).finish()
    }
}

/// A fresh object id, as Pyro makes them: `obj_` and 32 hex digits.
fn generated_id() -> Result<String, DaemonError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| DaemonError::Random(e.to_string()))?;
    Ok(bytes.iter().fold(String::from("obj_"), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}

pub(crate) fn check_id(id: &str) -> Result<(), DaemonError> {
    let bad = |why: &str| Err(DaemonError::InvalidId { id: id.to_owned(), reason: why.to_owned() });
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.contains('@') || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("ids cannot contain '@', spaces or control characters");
    }
    if id == DAEMON_OBJECT {
        return bad("it is the id of the daemon's own object");
    }
    Ok(())
}

impl Registry {
    /// Adds `object` under `id`, or a generated id; returns the id.
    pub(crate) fn insert(&self, object: Arc<dyn Exposed>, id: Option<&str>) -> Result<String, DaemonError> {
        let id = match id {
            Some(id) => {
                check_id(id)?;
                id.to_owned()
            }
            None => generated_id()?,
        };
        match self.objects.entry(id.clone()) {
            dashmap::Entry::Occupied(_) => Err(DaemonError::DuplicateId(id)),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(object);
                self.generation.fetch_add(1, Ordering::Release);
                Ok(id)
            }
        }
    }

    pub(crate) fn remove(&self, id: &str) -> bool {
        let removed = self.objects.remove(id).is_some();
        self.generation.fetch_add(1, Ordering::Release);
        removed
    }

    /// The current generation: it differs from an earlier one if objects
    /// were registered or removed since.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<dyn Exposed>> {
        self.objects.get(id).map(|o| o.value().clone())
    }

    /// The ids of the objects, sorted.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.objects.iter().map(|e| e.key().clone()).collect();
        ids.sort();
        ids
    }

    /// The error for a call to an id nobody registered.
    pub(crate) fn not_found(&self, id: &str) -> RemoteError {
        // Not counting the daemon's own object.
        let count = self.objects.len().saturating_sub(1);
        let objects = if count == 1 { "object" } else { "objects" };
        RemoteError::new(
            RemoteErrorKind::ObjectNotFound,
            format!("no object {id:?} in this daemon ({count} {objects} registered)"),
        )
    }
}

/// The daemon's own object: `ping()`, `describe(id)`, `registered()`,
/// `batch(id, calls)`.
pub(crate) struct DaemonObject {
    pub(crate) registry: Weak<Registry>,
    /// The largest reply a batch may build (the message size limit).
    pub(crate) max_reply: usize,
    /// The daemon's hooks: each call of a batch is put to
    /// [`crate::Hooks::before_call`] with its own object and method.
    pub(crate) hooks: Option<Arc<dyn crate::Hooks>>,
}

const DAEMON_METHODS: [MethodInfo; 4] = [
    MethodInfo { name: "ping", signature: "fn ping(&self)", oneway: false, stream: false },
    MethodInfo {
        name: "describe",
        signature: "fn describe(&self, object: String) -> ObjectDescription",
        oneway: false,
        stream: false,
    },
    MethodInfo {
        name: "registered",
        signature: "fn registered(&self) -> Vec<String>",
        oneway: false,
        stream: false,
    },
    MethodInfo {
        name: "batch",
        signature: "fn batch(&self, object: String, calls: Vec<(String, Encoded)>) -> Vec<Result<Encoded, RemoteError>>",
        oneway: false,
        stream: false,
    },
];

impl DaemonObject {
    /// The hooks' refusal of the first call of a batch they refuse, if any:
    /// the calls from it on are dropped, and it stands as the batch's last
    /// reply (after the calls before it, if they all succeed).
    fn refusal(&self, id: &str, calls: &mut Vec<(Text, Encoded)>) -> Option<RemoteError> {
        let hooks = self.hooks.as_ref()?;
        let context = rmi_core::context::context();
        let connection = context.as_ref().and_then(rmi_core::context::CallContext::connection)?;
        let (index, reason) = calls.iter().enumerate().find_map(|(index, (method, _))| {
            let call = crate::CallInfo::new(connection, id, method.as_str(), false);
            hooks.before_call(&call).err().map(|reason| (index, reason))
        })?;
        calls.truncate(index);
        Some(RemoteError::new(RemoteErrorKind::Refused, format!("refused: {reason}")))
    }
}

impl Exposed for DaemonObject {
    fn type_name(&self) -> &'static str {
        "rmi::Daemon"
    }

    fn methods(&self) -> &'static [MethodInfo] {
        &DAEMON_METHODS
    }

    /// A batch's calls run as if made on their own: in the connection's
    /// scope (its references, its session instances).
    fn per_connection(&self) -> bool {
        true
    }

    fn dispatch(self: Arc<Self>, method: &str, args: Encoded) -> Dispatch {
        let Some(registry) = self.registry.upgrade() else {
            return Dispatch::Ready(Err(RemoteError::new(
                RemoteErrorKind::ShuttingDown,
                "the daemon is gone",
            )));
        };
        let [ping, describe, registered, batch] = &DAEMON_METHODS;
        if method == "batch" {
            return match object::decode_args::<(String, Vec<(Text, Encoded)>)>(&args, batch) {
                Ok((id, mut calls)) => match registry.get(&id) {
                    Some(target) if id != DAEMON_OBJECT => {
                        let refusal = self.refusal(&id, &mut calls);
                        run_batch(target, calls, self.max_reply, refusal)
                    }
                    _ => Dispatch::Ready(Err(registry.not_found(&id))),
                },
                Err(e) => Dispatch::Ready(Err(e)),
            };
        }
        Dispatch::Ready(match method {
            "ping" => object::decode_args::<()>(&args, ping).and_then(|()| object::encode_return(&())),
            "describe" => object::decode_args::<(String,)>(&args, describe).and_then(|(id,)| {
                let description: ObjectDescription = if id == DAEMON_OBJECT {
                    object::describe(&id, &*self)
                } else {
                    let found = registry.get(&id).ok_or_else(|| registry.not_found(&id))?;
                    object::describe(&id, &*found)
                };
                object::encode_return(&description)
            }),
            "registered" => object::decode_args::<()>(&args, registered)
                .and_then(|()| object::encode_return(&registry.ids())),
            other => object::method_not_found(self.type_name(), other, &DAEMON_METHODS),
        })
    }
}

/// The replies of a batch, as they come: stops the batch at the first call
/// that fails, or whose reply would take the batch's reply past the message
/// size limit (an error then stands in for it, so a batch of calls with
/// large replies cannot make the daemon hold more than one message's worth).
struct Replies {
    replies: Vec<Reply>,
    size: usize,
    max: usize,
    /// A call the hooks refused, after the ones that run.
    refusal: Option<RemoteError>,
}

impl Replies {
    /// Adds `reply`; false when the batch stops here.
    fn push(&mut self, reply: Reply) -> bool {
        // An error takes a few dozen bytes; count it roughly.
        let size = reply.as_ref().map_or(64, Encoded::wire_len);
        self.size = self.size.saturating_add(size);
        if self.size > self.max {
            let index = self.replies.len();
            self.replies.push(Err(RemoteError::new(
                RemoteErrorKind::Internal,
                format!(
                    "the replies of the batch exceed the message size limit of {} bytes (RMI_MAX_MESSAGE_SIZE) \
                     at call {index}",
                    self.max
                ),
            )));
            return false;
        }
        let ok = reply.is_ok();
        self.replies.push(reply);
        ok
    }

    fn encode(&mut self) -> Reply {
        // The refused call stands last, unless the batch stopped before it.
        if let Some(refused) = self.refusal.take()
            && self.replies.iter().all(Result::is_ok)
        {
            self.replies.push(Err(refused));
        }
        object::encode_return(&self.replies)
    }
}

/// Runs the calls of a batch on `target` one after another, in order, and
/// stops at the first that fails, as Pyro does: the replies are those of the
/// calls that ran, the last one an error if one failed. The calls share the
/// batch's deadline. Calls of `#[nonblocking]` methods that finish at once
/// run here; from the first call that awaits or may block on, the rest run
/// in the returned future, and each run of calls that may block goes to the
/// blocking pool together, on one thread.
fn run_batch(
    target: Arc<dyn Exposed>,
    calls: Vec<(Text, Encoded)>,
    max_reply: usize,
    refusal: Option<RemoteError>,
) -> Dispatch {
    // The batch's calls run in the batch's own context (its deadline, its
    // caller's correlation id).
    let context = rmi_core::context::context().unwrap_or_default();
    let mut batch = BatchRun {
        target,
        calls: calls.into_iter(),
        replies: Replies { replies: Vec::new(), size: 0, max: max_reply, refusal },
        context,
        scope: current_scope(),
    };
    batch.replies.replies.reserve(batch.calls.len());
    while let Some((method, args)) = batch.calls.next() {
        match no_stream(start(batch.target.clone(), &method, args, &mut batch.context), &method) {
            Started::Done(reply) => {
                if !batch.replies.push(reply) {
                    break;
                }
            }
            other => return Dispatch::Pending(Box::pin(batch.finish(method, other))),
        }
    }
    Dispatch::Ready(batch.replies.encode())
}

/// Why a batch refuses a streaming method.
const IN_A_BATCH: &str = "a batch cannot carry: call it on its own";

/// A call of a batch, a streaming method refused.
fn no_stream(started: Started, method: &str) -> Started {
    match started {
        Started::Stream(_) => Started::Done(Err(stream_refused(method, IN_A_BATCH))),
        other => other,
    }
}

/// A batch whose calls have started to wait for something.
struct BatchRun {
    target: Arc<dyn Exposed>,
    calls: std::vec::IntoIter<(Text, Encoded)>,
    replies: Replies,
    context: CallContext,
    /// The connection's scope: references in the calls' arguments decode
    /// in it, wherever the calls start.
    scope: Option<Scope>,
}

impl BatchRun {
    /// Runs the batch to its end, from the call `method` started as `started`.
    async fn finish(mut self, mut method: Text, mut started: Started) -> Reply {
        loop {
            let reply = match started {
                Started::Done(reply) => reply,
                Started::Running(future) => finish(&method, future).await,
                Started::Stream(_) => Err(stream_refused(&method, IN_A_BATCH)),
                Started::Blocking(call) => {
                    let context = self.context.clone();
                    let mut run = tokio::task::spawn_blocking(move || {
                        let reply = run_blocking(&method, call, context);
                        let next = self.run_blocking_calls(reply);
                        (self, next)
                    });
                    let Ok((back, next)) = (&mut run).await else {
                        return Err(RemoteError::new(
                            RemoteErrorKind::ShuttingDown,
                            "the batch did not finish: the runtime is shutting down",
                        ));
                    };
                    self = back;
                    match next {
                        Some((m, s)) => {
                            (method, started) = (m, s);
                            continue;
                        }
                        None => return self.replies.encode(),
                    }
                }
            };
            if !self.replies.push(reply) {
                return self.replies.encode();
            }
            let Some((next, args)) = self.calls.next() else { return self.replies.encode() };
            started = self.start(&next, args);
            method = next;
        }
    }

    /// Starts one call of the batch, in the connection's scope.
    fn start(&mut self, method: &str, args: Encoded) -> Started {
        let target = self.target.clone();
        let started = match &self.scope {
            Some(scope) => scope.enter(|| start(target, method, args, &mut self.context)),
            None => start(target, method, args, &mut self.context),
        };
        no_stream(started, method)
    }

    /// On a blocking thread, after `reply`: runs the calls that follow while
    /// they finish at once or may block; returns the first that awaits, or
    /// `None` when the batch is done.
    fn run_blocking_calls(&mut self, mut reply: Reply) -> Option<(Text, Started)> {
        loop {
            if !self.replies.push(reply) {
                return None;
            }
            let (method, args) = self.calls.next()?;
            reply = match self.start(&method, args) {
                Started::Done(reply) => reply,
                Started::Blocking(call) => run_blocking(&method, call, self.context.clone()),
                Started::Stream(_) => Err(stream_refused(&method, IN_A_BATCH)),
                running @ Started::Running(_) => return Some((method, running)),
            };
        }
    }
}

impl Registry {
    /// A registry that already hosts the daemon's own object.
    pub(crate) fn with_daemon_object(
        max_reply: usize,
        hooks: Option<Arc<dyn crate::Hooks>>,
    ) -> Arc<Registry> {
        let registry = Arc::new(Registry::default());
        let object = DaemonObject { registry: Arc::downgrade(&registry), max_reply, hooks };
        registry.objects.insert(DAEMON_OBJECT.to_owned(), Arc::new(object));
        registry
    }
}
