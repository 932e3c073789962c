//! A connection from a Pyro5 client (Python's `Pyro5.api.Proxy`, on the
//! json serializer or on serpent, read as a literal subset): the same
//! objects as rmi's clients call, through Pyro5's protocol (see
//! [`rmi_core::pyro5`]).
//!
//! A Pyro5 proxy is sequential: it sends one request and waits for its
//! reply (a oneway call excepted), so one task reads, runs and answers.
//! Arguments arrive as a JSON array (serpent is read into the same values)
//! and decode with serde into the method's parameter types; the result goes
//! back in the client's serializer (see [`rmi_core::json`]).
//! Calls pass through the daemon's hooks like rmi's own, run where rmi's
//! run (the blocking pool for synchronous methods), panics caught; the
//! message limit, the handshake and idle timeouts and the shutdown apply.
//!
//! Served: the handshake with the object's metadata, calls, oneway calls,
//! batches, ping, streams as Pyro5 iterators (see `streams`), and Pyro5's
//! daemon object (`get_metadata`, `ping`, `info`, `registered`,
//! `get_next_stream_item`, `close_stream`); objects made per connection
//! (`InstanceMode::Session`) get one instance per Pyro5 connection, as
//! Pyro5's `instance_mode="session"`. Not served: attributes (rmi objects
//! have none: `__getattr__` is an `AttributeError`). Compressed messages
//! (`COMPRESSION=True`) are inflated as they are read (bounded as the wire
//! is); replies go uncompressed, which every Pyro5 client reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use rmi_core::alarm::{Alarm, Bell, Ring};
use rmi_core::context::{ConnectionContext, ConnectionInfo};
use rmi_core::invoke::{self, Started};
use rmi_core::json::{json_started, with_json_replies};
use rmi_core::net::Connection;
use rmi_core::object::Exposed;
use rmi_core::object::MethodInfo;
use rmi_core::pyro5::body::{self, Connect, DAEMON_OBJECT, Invoke};
use rmi_core::pyro5::{Flags, Message, MessageReader, MessageType, Serializer, read_message_after_magic};
use rmi_core::wake::Dormant;
use rmi_core::{RemoteError, RemoteErrorKind, Reply, Text};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use crate::hooks::Traced;
use crate::state::Inner;

mod streams;

/// A Pyro5 call's outcome in Pyro5's terms: the exception's class (one a
/// Pyro5 client rebuilds: `builtins.KeyError`, `Pyro5.errors.NamingError`…)
/// and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pyro5Exception {
    /// The Python class, with its module.
    pub class: String,
    /// The message (the exception's one argument).
    pub message: String,
}

impl Pyro5Exception {
    /// An exception of `class` saying `message`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        Pyro5Exception { class: class.into(), message: message.into() }
    }
}

/// What [`Pyro5Object::call`] returns.
pub type Pyro5Future<'a> = Pin<Box<dyn Future<Output = Result<Value, Pyro5Exception>> + Send + 'a>>;

/// An object served to Pyro5 clients in Pyro5's own terms: JSON values in
/// and out, keyword arguments given as they came. For objects whose API is
/// Pyro's rather than an rmi interface (`rmi-naming`'s `Pyro.NameServer`);
/// register it with [`crate::Daemon::register_pyro5`].
pub trait Pyro5Object: std::fmt::Debug + Send + Sync + 'static {
    /// Its methods, as the handshake's metadata lists them.
    fn methods(&self) -> &'static [MethodInfo];

    /// Calls `method` with positional `params` and keyword `kwargs`.
    fn call<'a>(&'a self, method: &'a str, params: Vec<Value>, kwargs: Map<String, Value>)
    -> Pyro5Future<'a>;
}

pub use rmi_core::pyro5::PYRO5_MAX_MESSAGE;

fn read_limit(options: &crate::state::Options) -> usize {
    options.max_message_size.min(PYRO5_MAX_MESSAGE)
}

/// The object space of a Pyro5 connection: its own session instances, and
/// no link to call back over (Pyro5 clients are not called back).
fn pyro5_scope() -> rmi_core::peer::Scope {
    let no_link: std::sync::Weak<dyn rmi_core::peer::Link> =
        std::sync::Weak::<crate::callbacks::Callbacks>::new();
    rmi_core::peer::Scope::weak(rmi_core::peer::Peer::new(), &no_link)
}

/// Why a connection ends before its client closes it.
enum End {
    /// The client closed it, or sent what cannot be read: logged, closed.
    Gone(String),
}

/// Serves a connection whose first four bytes were Pyro5's magic.
pub(crate) async fn serve(daemon: Arc<Inner>, mut connection: Connection, info: Arc<ConnectionInfo>) {
    let options = &daemon.options;
    let peer = info.peer.clone();
    let max = options.max_message_size;
    let first = tokio::time::timeout(
        options.handshake_timeout,
        read_message_after_magic(&mut connection, read_limit(options)),
    );
    let first = match first.await {
        Ok(Ok(message)) => message,
        Ok(Err(e)) => {
            tracing::info!(%peer, "refused a Pyro5 connection: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "closed a Pyro5 connection that sent no handshake in {:?}", options.handshake_timeout);
            return;
        }
    };
    if let Some(hooks) = &options.hooks {
        if let Err(reason) = hooks.0.validate(&info) {
            tracing::info!(%peer, "refused a Pyro5 connection: {reason}");
            let _ = send(&mut connection, fail(&first, &format!("refused: {reason}")), max).await;
            return;
        }
        hooks.0.connected(&info);
    }
    let mut session = Session {
        daemon: &daemon,
        info: info.clone(),
        contexts: ConnectionContext::new(Some(info.clone())),
        streams: streams::Streams::default(),
        scope: pyro5_scope(),
    };
    let ended = session.run(&mut connection, first).await;
    // Its session instances go with the connection.
    session.scope.peer().close();
    let End::Gone(why) = ended;
    tracing::debug!(%peer, "Pyro5 connection closed: {why}");
    let _ = connection.shutdown().await;
    if let Some(hooks) = &options.hooks {
        hooks.0.disconnected(&info);
    }
}

struct Session<'a> {
    daemon: &'a Arc<Inner>,
    info: Arc<ConnectionInfo>,
    contexts: ConnectionContext,
    /// The connection's streams its client reads as Pyro5 iterators.
    streams: streams::Streams,
    /// The connection's object space: where its session instances live
    /// (objects registered with `InstanceMode::Session`), one per Pyro5
    /// connection as Pyro5's `instance_mode="session"`.
    scope: rmi_core::peer::Scope,
}

/// What a call became: its result as JSON text, or a stream to read as an
/// iterator.
enum Outcome {
    Json(Bytes),
    Stream(rmi_core::stream::Source),
}

/// A reply to `request` of `kind` with the bytes `payload`: same sequence
/// number and serializer, its correlation id echoed.
fn answer_raw(request: &Message, kind: MessageType, flags: Flags, payload: impl Into<Bytes>) -> Message {
    let mut reply = Message::new(kind, Serializer::Json, flags, request.header.seq, payload.into());
    reply.header.serializer = request.header.serializer;
    if request.header.flags.contains(Flags::CORR_ID) {
        reply.header.flags = reply.header.flags.with(Flags::CORR_ID);
        reply.header.correlation = request.header.correlation;
    }
    reply
}

/// A reply to `request` carrying `value`, in the request's serializer.
fn answer(request: &Message, kind: MessageType, flags: Flags, value: &Value) -> Message {
    answer_raw(request, kind, flags, encode_body(request.header.serializer, value))
}

/// Whether payloads in `serializer` are read here: json, and serpent as a
/// literal subset (see [`rmi_core::pyro5::serpent`]).
fn readable(serializer: u8) -> bool {
    serializer == Serializer::Json as u8 || serializer == Serializer::Serpent as u8
}

fn decode_body(serializer: u8, payload: &[u8]) -> Result<Value, body::BodyError> {
    if serializer == Serializer::Serpent as u8 {
        rmi_core::pyro5::serpent::parse(payload)
    } else {
        serde_json::from_slice(payload).map_err(|e| body::BodyError(format!("not JSON: {e}")))
    }
}

fn encode_body(serializer: u8, value: &Value) -> Vec<u8> {
    if serializer == Serializer::Serpent as u8 {
        rmi_core::pyro5::serpent::write(value)
    } else {
        value.to_string().into_bytes()
    }
}

/// A method's JSON result read as a value (for a batch, or a serpent
/// client), or the exception saying it is not JSON.
fn result_value(text: &[u8], method: &str) -> Result<Value, Value> {
    serde_json::from_slice(text).map_err(|e| {
        body::exception("Pyro5.errors.SerializeError", &format!("{method}'s result is not JSON: {e}"), &[])
    })
}

/// A CONNECTFAIL saying `why`, in the client's serializer.
fn fail(request: &Message, why: &str) -> Message {
    let payload = body::string_in(request.header.serializer, why)
        .unwrap_or_else(|| body::string_in(Serializer::Json as u8, why).unwrap_or_default());
    answer_raw(request, MessageType::ConnectFail, Flags::default(), payload)
}

/// A RESULT carrying `exception`.
fn exception(request: &Message, exception: &Value) -> Message {
    answer(request, MessageType::Result, Flags::EXCEPTION, exception)
}

async fn send(connection: &mut Connection, message: Message, max: usize) -> Result<(), End> {
    let bytes = match message.encode(max) {
        Ok(bytes) => bytes,
        Err(e) => {
            // A result over the limit: the client hears why instead.
            let why = body::exception("Pyro5.errors.MessageTooLargeError", &e.to_string(), &[]);
            let fallback = answer(&message, MessageType::Result, Flags::EXCEPTION, &why);
            fallback.encode(max).map_err(|e| End::Gone(e.to_string()))?
        }
    };
    connection.write_all(&bytes).await.map_err(|e| End::Gone(format!("writing: {e}")))?;
    connection.flush().await.map_err(|e| End::Gone(format!("writing: {e}")))
}

const JSON_ONLY: &str = "this daemon (rmi) reads Pyro5's json and serpent serializers only: set PYRO_SERIALIZER=json \
                         (or proxy._pyroSerializer = \"json\")";

impl Session<'_> {
    async fn run(&mut self, connection: &mut Connection, first: Message) -> End {
        let max = self.daemon.options.max_message_size;
        if let Err(end) = self.handshake(connection, &first).await {
            return end;
        }
        let idle = self.daemon.options.idle_timeout;
        // As rmi's own connections: the idle time on an alarm rather than a
        // tokio timer per message, the shutdown dormant until it wakes, and
        // messages read through a buffer (one read for a whole message).
        let bell = Arc::new(Bell::default());
        let alarm = Alarm::new(Arc::downgrade(&bell) as Weak<dyn Ring>);
        // When the client last heard from the daemon.
        let mut last_message = Instant::now();
        // A timeout too far to keep is none.
        let idle = idle.filter(|idle| last_message.checked_add(*idle).is_some());
        if let Some(idle) = idle {
            alarm.ring_by(last_message + idle);
        }
        let mut bell_waker = None;
        let mut shutdown = Dormant::new(self.daemon.shutdown.clone().cancelled_owned());
        let mut reader = MessageReader::new();
        let limit = read_limit(&self.daemon.options);
        loop {
            let message = tokio::select! {
                biased;
                () = shutdown.woken() => return End::Gone("the daemon shut down".into()),
                message = reader.read(connection, limit) => message,
                () = std::future::poll_fn(|cx| bell.poll_rang(cx, &mut bell_waker)), if idle.is_some() => {
                    let idle = idle.unwrap_or_default();
                    if last_message.elapsed() >= idle {
                        return End::Gone(format!("idle for {idle:?}"));
                    }
                    if let Some(at) = last_message.checked_add(idle) {
                        alarm.ring_by(at);
                    }
                    continue;
                }
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => return End::Gone(e.to_string()),
            };
            let reply = match message.header.kind {
                MessageType::Ping => {
                    Some(answer_raw(&message, MessageType::Ping, Flags::default(), b"pong".to_vec()))
                }
                MessageType::Invoke => self.invoke(&message).await,
                other => return End::Gone(format!("a {other:?} message after the handshake")),
            };
            if let Some(reply) = reply
                && let Err(end) = send(connection, reply, max).await
            {
                return end;
            }
            // Idle from here: a call that took longer than the idle
            // timeout is not what makes its connection idle.
            last_message = Instant::now();
        }
    }

    async fn handshake(&mut self, connection: &mut Connection, first: &Message) -> Result<(), End> {
        let max = self.daemon.options.max_message_size;
        if first.header.kind != MessageType::Connect {
            let why = format!("expected Pyro5's CONNECT first, got {:?}", first.header.kind);
            let _ = send(connection, fail(first, &why), max).await;
            return Err(End::Gone(why));
        }
        if !readable(first.header.serializer) {
            let _ = send(connection, fail(first, JSON_ONLY), max).await;
            return Err(End::Gone(format!("serializer {} refused", first.header.serializer)));
        }
        let connect = match decode_body(first.header.serializer, &first.payload).and_then(Connect::from_value)
        {
            Ok(connect) => connect,
            Err(e) => {
                let _ = send(connection, fail(first, &e.to_string()), max).await;
                return Err(End::Gone(e.to_string()));
            }
        };
        let native = self.daemon.pyro5_objects.get(&connect.object).map(|o| o.value().methods());
        let methods = if connect.object == DAEMON_OBJECT {
            DAEMON_METHODS
        } else if let Some(methods) = native {
            methods
        } else {
            match self.daemon.registry.get(&connect.object) {
                Some(object) => object.methods(),
                None => {
                    let why = format!("unknown object {:?}", connect.object);
                    let _ = send(connection, fail(first, &why), max).await;
                    return Err(End::Gone(why));
                }
            }
        };
        let ok = answer(first, MessageType::ConnectOk, Flags::default(), &body::connect_ok(methods));
        send(connection, ok, max).await
    }

    /// Answers one INVOKE (`None` for a oneway call: no reply).
    async fn invoke(&mut self, message: &Message) -> Option<Message> {
        let flags = message.header.flags;
        let oneway = flags.contains(Flags::ONEWAY);
        let refuse = |why: &str, kind: &str| Some(exception(message, &body::exception(kind, why, &[])));
        if !readable(message.header.serializer) {
            return refuse(JSON_ONLY, "Pyro5.errors.SerializeError");
        }
        if let Some(reply) = self.plain_invoke(message, oneway).await {
            return Some(reply);
        }
        let call = match decode_body(message.header.serializer, &message.payload).and_then(Invoke::from_value)
        {
            Ok(call) => call,
            Err(e) => return refuse(&e.to_string(), "Pyro5.errors.ProtocolError"),
        };
        if call.object == DAEMON_OBJECT {
            let result = self.daemon_call(&call).await;
            return match result {
                Ok(value) if !oneway => Some(answer(message, MessageType::Result, Flags::default(), &value)),
                Ok(_) => None,
                Err(e) => Some(exception(message, &e)),
            };
        }
        let native = self.daemon.pyro5_objects.get(&call.object).map(|o| o.value().clone());
        if let Some(native) = native {
            let outcome = native_call(self.daemon, &self.info, &native, &call, oneway).await;
            return match outcome {
                _ if oneway => None,
                Ok(value) => Some(answer(message, MessageType::Result, Flags::default(), &value)),
                Err(e) => Some(exception(message, &e)),
            };
        }
        let Some(object) = self.daemon.registry.get(&call.object) else {
            let e = self.daemon.registry.not_found(&call.object);
            return Some(exception(message, &body::remote_exception(&e, &call.object)));
        };
        if flags.contains(Flags::BATCH) {
            let calls = match call.batch() {
                Ok(calls) => calls,
                Err(e) => return refuse(&e.to_string(), "Pyro5.errors.ProtocolError"),
            };
            let mut results = Vec::with_capacity(calls.len());
            for (method, args, has_kwargs) in calls {
                let args = rmi_core::json::arguments(args);
                let outcome = match self.call(&object, &call.object, &method, args, has_kwargs, oneway).await
                {
                    Ok(Outcome::Json(text)) => result_value(&text, &method),
                    Ok(Outcome::Stream(_)) => {
                        let why = format!("{method} streams its results, which a batch cannot carry");
                        Err(body::exception("Pyro5.errors.PyroError", &why, &[]))
                    }
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(value) => results.push(value),
                    Err(e) => {
                        results.push(body::batch_failure(e));
                        break;
                    }
                }
            }
            if oneway {
                return None;
            }
            return Some(answer(message, MessageType::Result, Flags::BATCH, &Value::Array(results)));
        }
        if oneway {
            // The client does not wait: the call runs on, tracked by the
            // daemon (its shutdown waits for it), its result dropped.
            let daemon = self.daemon.clone();
            let scope = self.scope.clone();
            let context = self.contexts.call(None, None);
            let info = self.info.clone();
            let id = call.object.clone();
            let method = call.method.clone();
            let has_kwargs = call.has_kwargs();
            let args = rmi_core::json::arguments(call.params);
            self.daemon.calls.spawn(async move {
                let _ = run_call(
                    &daemon,
                    &info,
                    &scope,
                    context,
                    (&object, &id, &method),
                    args,
                    has_kwargs,
                    true,
                )
                .await;
            });
            return None;
        }
        let has_kwargs = call.has_kwargs();
        let args = rmi_core::json::arguments(call.params);
        let outcome = self.call(&object, &call.object, &call.method, args, has_kwargs, false).await;
        Some(self.reply(message, outcome))
    }

    /// Answers a plain json INVOKE (see [`body::PlainInvoke`]) of an rmi
    /// object, read without a tree of values; `None` when it is not one
    /// (then [`Session::invoke`] reads it the general way).
    async fn plain_invoke(&mut self, message: &Message, oneway: bool) -> Option<Message> {
        if message.header.serializer != Serializer::Json as u8
            || message.header.flags.contains(Flags::BATCH)
            || oneway
        {
            return None;
        }
        let call = body::PlainInvoke::parse(&message.payload)?;
        if call.object == DAEMON_OBJECT || self.daemon.pyro5_objects.contains_key(call.object.as_ref()) {
            return None;
        }
        let object = self.daemon.registry.get(&call.object)?;
        // The arguments go to the method's decoder as the text they came in.
        let args = match call.arguments() {
            Some(text) => message.payload.slice_ref(text.as_bytes()),
            None => Bytes::from_static(b"null"),
        };
        let args = rmi_core::Encoded::from_json(args);
        let outcome = self.call(&object, &call.object, &call.method, args, false, false).await;
        Some(self.reply(message, outcome))
    }

    /// The RESULT of a call that was not a batch.
    fn reply(&mut self, message: &Message, outcome: Result<Outcome, Value>) -> Message {
        match outcome {
            Ok(Outcome::Json(text)) if message.header.serializer == Serializer::Json as u8 => {
                answer_raw(message, MessageType::Result, Flags::default(), text)
            }
            Ok(Outcome::Json(text)) => match result_value(&text, "the method") {
                Ok(value) => answer(message, MessageType::Result, Flags::default(), &value),
                Err(e) => exception(message, &e),
            },
            Ok(Outcome::Stream(source)) => match self.streams.open(source) {
                // As Pyro5's daemon: the stream's id, and (for older clients)
                // an exception saying the result is an iterator.
                Ok(id) => {
                    let why =
                        body::exception("Pyro5.errors.ProtocolError", "result of call is an iterator", &[]);
                    let flags = Flags::EXCEPTION.with(Flags::ITEMSTREAMRESULT);
                    let mut reply = answer(message, MessageType::Result, flags, &why);
                    reply.annotations.push(rmi_core::pyro5::Annotation {
                        id: *b"STRM",
                        data: Bytes::from(id.into_bytes()),
                    });
                    reply
                }
                Err(e) => exception(message, &e),
            },
            Err(e) => exception(message, &e),
        }
    }

    async fn call(
        &mut self,
        object: &Arc<dyn Exposed>,
        id: &str,
        method: &str,
        args: rmi_core::Encoded,
        has_kwargs: bool,
        oneway: bool,
    ) -> Result<Outcome, Value> {
        let context = self.contexts.call(None, None);
        run_call(
            self.daemon,
            &self.info,
            &self.scope,
            context,
            (object, id, method),
            args,
            has_kwargs,
            oneway,
        )
        .await
    }

    /// A call to Pyro5's own daemon object.
    async fn daemon_call(&mut self, call: &Invoke) -> Result<Value, Value> {
        let registry = &self.daemon.registry;
        match (call.method.as_str(), call.params.as_slice()) {
            ("get_next_stream_item", [Value::String(id)]) => self.streams.next(id).await,
            ("close_stream", [Value::String(id)]) => {
                self.streams.close(id);
                Ok(Value::Null)
            }
            ("ping", []) => Ok(Value::Null),
            ("info", []) => Ok(json!(format!(
                "rmi daemon {} serving Pyro5 clients; {} objects",
                self.daemon.advertised,
                registry.ids().len().saturating_sub(1)
            ))),
            ("registered", []) => Ok(json!(registry.ids())),
            ("get_metadata", [Value::String(id), ..]) => {
                if id == DAEMON_OBJECT {
                    return Ok(body::metadata(DAEMON_METHODS));
                }
                match registry.get(id) {
                    Some(object) => Ok(body::metadata(object.methods())),
                    None => Err(body::exception(
                        "Pyro5.errors.DaemonError",
                        &format!("unknown object {id:?}"),
                        &[],
                    )),
                }
            }
            (method, _) => Err(body::exception(
                "builtins.AttributeError",
                &format!(
                    "{DAEMON_OBJECT} has no method {method:?} with these arguments here (rmi serves ping, info, registered, get_metadata)"
                ),
                &[],
            )),
        }
    }
}

/// A call of an object served in Pyro5's terms, the hooks asked first.
async fn native_call(
    daemon: &Arc<Inner>,
    info: &Arc<ConnectionInfo>,
    object: &Arc<dyn Pyro5Object>,
    call: &Invoke,
    oneway: bool,
) -> Result<Value, Value> {
    let hooks = daemon.options.hooks.as_ref().map(|h| &h.0);
    let (id, method) = (Text::from(call.object.as_str()), Text::from(call.method.as_str()));
    let traced = if Traced::wanted(hooks) {
        match Traced::start(hooks, info, (&id, &method, 0, oneway), None) {
            Ok(traced) => Some(traced),
            Err(reason) => {
                return Err(body::exception(
                    "Pyro5.errors.SecurityError",
                    &format!("refused: {reason}"),
                    &[],
                ));
            }
        }
    } else {
        None
    };
    let outcome = object.call(&call.method, call.params.clone(), call.kwargs.clone()).await;
    if let Some(traced) = traced {
        let reply: Reply = match &outcome {
            Ok(_) => Ok(rmi_core::Encoded::default()),
            Err(e) => Err(RemoteError::new(RemoteErrorKind::Application, e.message.clone())),
        };
        traced.ended(&reply);
    }
    outcome.map_err(|e| body::exception(&e.class, &e.message, &[]))
}

/// What Pyro5 clients see of its daemon object.
const DAEMON_METHODS: &[rmi_core::object::MethodInfo] = &[
    daemon_method("get_metadata"),
    daemon_method("info"),
    daemon_method("ping"),
    daemon_method("registered"),
];

const fn daemon_method(name: &'static str) -> rmi_core::object::MethodInfo {
    rmi_core::object::MethodInfo { name, signature: "", oneway: false, stream: false }
}

/// Runs one call of `method` on `object` (hosted as `id`) with JSON
/// arguments: the hooks asked first; the JSON result, or the exception.
#[allow(clippy::too_many_arguments)]
async fn run_call(
    daemon: &Arc<Inner>,
    info: &Arc<ConnectionInfo>,
    scope: &rmi_core::peer::Scope,
    mut context: rmi_core::context::CallContext,
    (object, id, method): (&Arc<dyn Exposed>, &str, &str),
    args: rmi_core::Encoded,
    has_kwargs: bool,
    oneway: bool,
) -> Result<Outcome, Value> {
    let error = |e: RemoteError| body::remote_exception(&e, &format!("{id}.{method}"));
    if has_kwargs {
        return Err(body::exception(
            "builtins.TypeError",
            &format!("{method}() takes positional arguments only: rmi methods have no keyword arguments"),
            &[],
        ));
    }
    if method == "__getattr__" || method == "__setattr__" {
        return Err(body::exception(
            "builtins.AttributeError",
            &format!("{id} exposes no attributes (rmi objects have methods only)"),
            &[],
        ));
    }
    let hooks = daemon.options.hooks.as_ref().map(|h| &h.0);
    let (object_text, method_text) = (Text::from(id), Text::from(method));
    let traced = if Traced::wanted(hooks) {
        match Traced::start(hooks, info, (&object_text, &method_text, 0, oneway), None) {
            Ok(traced) => Some(traced),
            Err(reason) => {
                return Err(error(RemoteError::new(RemoteErrorKind::Refused, format!("refused: {reason}"))));
            }
        }
    } else {
        None
    };
    // In the connection's scope: a session instance is this connection's.
    let started =
        scope.enter(|| with_json_replies(|| invoke::start(object.clone(), method, args, &mut context)));
    let started = match started {
        Started::Stream(source) if !oneway => {
            if let Some(traced) = traced {
                traced.ended(&Ok(rmi_core::Encoded::default()));
            }
            return Ok(Outcome::Stream(source));
        }
        other => json_started(other),
    };
    let started = match (started, traced) {
        (Started::Running(future), Some(traced)) => Started::Running(traced.around(future)),
        (Started::Blocking(call), Some(traced)) => Started::Blocking(traced.around_blocking(call)),
        (Started::Done(reply), Some(traced)) => {
            traced.ended(&reply);
            Started::Done(reply)
        }
        (started, _) => started,
    };
    let reply: Reply =
        invoke::complete(started, method, context, "Pyro5 clients cannot read yet (no iterators over Pyro5)")
            .await;
    let value = reply.map_err(error)?;
    match value.json_bytes() {
        Some(text) => Ok(Outcome::Json(Bytes::copy_from_slice(text))),
        None => Err(error(RemoteError::new(
            RemoteErrorKind::Internal,
            "the result was not encoded as JSON (it passes something JSON cannot carry)",
        ))),
    }
}
