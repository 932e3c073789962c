//! The dynamic proxy: calls any method by name.

use rmi_core::alarm::ticks_of;
use rmi_core::tls::ClientTls;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmi_core::context::for_outgoing_call;
use rmi_core::object::ObjectDescription;
use rmi_core::peer::{Import, Link, Scope};
use rmi_core::{Call, Config, Encoded, Error, Key, Location, MetaUri, NameUri, ObjectUri, Text, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::{CallFailure, ClientConnection};
use crate::streaming::Streaming;

/// The object id of the daemon's own object (ping, describe, registered).
pub const DAEMON_OBJECT: &str = "RMI.Daemon";

/// How long connecting and the handshake may take when the call itself has
/// no deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a URI argument can be: text, or any parsed URI.
pub trait IntoUri {
    /// The URI.
    ///
    /// # Errors
    ///
    /// [`Error::Uri`] when the text is not a valid URI.
    fn into_uri(self) -> Result<Uri, Error>;
}

impl IntoUri for &str {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self.parse()?)
    }
}

impl IntoUri for String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.as_str().into_uri()
    }
}

impl IntoUri for &String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.as_str().into_uri()
    }
}

impl IntoUri for Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self)
    }
}

impl IntoUri for &Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self.clone())
    }
}

impl IntoUri for ObjectUri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(Uri::Object(self))
    }
}

impl IntoUri for &ObjectUri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(Uri::Object(self.clone()))
    }
}

impl IntoUri for NameUri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(Uri::Name(self))
    }
}

impl IntoUri for MetaUri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(Uri::Meta(self))
    }
}

/// How a proxy turns an `RMINAME:` or `RMIMETA:` URI into an object's
/// location (the name server's lookups, see `resolve`), given to it when it
/// is built: the proxy itself knows nothing of name servers.
pub(crate) type Resolver =
    for<'a> fn(
        &'a Uri,
        &'a Options,
    ) -> Pin<Box<dyn Future<Output = Result<crate::resolve::Resolved, Error>> + Send + 'a>>;

/// Settings of a proxy and of the connection its clones share.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) key: Option<Key>,
    /// TLS for every connection (`RMI_TLS=on`), or none.
    pub(crate) tls: Option<ClientTls>,
    pub(crate) max_message_size: usize,
    pub(crate) connect_timeout: Duration,
    /// How to find the name server when a name must be resolved.
    pub(crate) config: Config,
    /// How names are resolved; `None` for a proxy that needs no name (of
    /// a name server, or of a reference).
    pub(crate) resolver: Option<Resolver>,
}

impl Options {
    /// The settings `config` gives, for `RMI:` URIs only.
    pub(crate) fn direct(config: &Config) -> Self {
        Options {
            key: config.hmac_key.clone(),
            tls: config.tls.as_ref().map(|t| t.client.clone()),
            max_message_size: config.max_message_size,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            config: config.clone(),
            resolver: None,
        }
    }

    /// A proxy for `uri` with these settings.
    pub(crate) fn proxy(&self, uri: Uri, timeout: Option<Duration>) -> Proxy {
        Proxy::from_parts(uri, self.clone(), timeout)
    }
}

/// A proxy for one remote object: calls its methods by name.
///
/// It connects on its first call, and clones share that one connection, on
/// which any number of calls may be in flight at once. Each call waits at
/// most the proxy's timeout (`RMI_CALL_TIMEOUT`, 30 s by default) and no
/// longer than the deadline of the call being handled, when it is made from
/// inside a remote method. When the connection breaks, calls in flight fail
/// at once with [`Error::ConnectionLost`], and the next call connects again
/// (resolving an `RMINAME:` or `RMIMETA:` URI again too).
///
/// ```no_run
/// # async fn demo() -> Result<(), rmi_core::Error> {
/// let greeter = rmi_proxy::Proxy::new("RMI:greeter@127.0.0.1:9100")?;
/// let text: String = greeter.call("welcome_message", ("Ruvika",)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    timeout: Option<Duration>,
}

struct Shared {
    uri: Uri,
    /// For a proxy of a reference: the connection (or local object) it
    /// calls through, instead of a URI to connect to.
    over: Option<Over>,
    options: Options,
    state: Mutex<State>,
    /// Held while connecting, so that concurrent first calls share one
    /// connection instead of racing to open several.
    connecting: tokio::sync::Mutex<()>,
    /// For a `PYRO:` URI, or a name that resolved to a Pyro5 daemon's
    /// object: the Pyro5 daemon's connection.
    pyro5: crate::pyro5::Pyro5Client,
    /// Whether calls go through Pyro5 (`pyro5`): a `PYRO:` URI, or a name
    /// that resolved to a Pyro5 daemon's object.
    speaks_pyro5: std::sync::atomic::AtomicBool,
}

/// Where a proxy of a reference sends its calls.
struct Over {
    link: Arc<dyn Link>,
    object: Text,
    /// The reference, kept alive as long as a proxy of it is.
    import: Option<Arc<Import>>,
}

#[derive(Default)]
struct State {
    /// Where the object is, once known (for `RMINAME:`, once resolved).
    target: Option<ObjectUri>,
    /// The target's object id, as calls carry it.
    object: Text,
    connection: Option<Arc<ClientConnection>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.shared.uri.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Proxy {
    /// A proxy for `uri` with `options`, not connected yet.
    pub(crate) fn from_parts(uri: Uri, options: Options, timeout: Option<Duration>) -> Self {
        let speaks_pyro5 = std::sync::atomic::AtomicBool::new(matches!(uri, Uri::Pyro5(_)));
        Proxy {
            shared: Arc::new(Shared {
                uri,
                over: None,
                options,
                state: Mutex::new(State::default()),
                connecting: tokio::sync::Mutex::new(()),
                pyro5: crate::pyro5::Pyro5Client::default(),
                speaks_pyro5,
            }),
            timeout,
        }
    }

    /// A proxy whose calls go through `link` to `object` (a reference's
    /// proxy, see [`crate::Remote::proxy`]); it keeps `import` alive.
    pub(crate) fn over(link: Arc<dyn Link>, object: Text, import: Option<Arc<Import>>) -> Self {
        let location = Location::Unix(std::path::PathBuf::from(format!("<{}>", link.describe())));
        let uri = Uri::Object(ObjectUri { object: object.as_str().to_owned(), location });
        let config = Config::from_env().unwrap_or_default();
        let timeout = config.call_timeout;
        Proxy {
            shared: Arc::new(Shared {
                uri,
                over: Some(Over { link, object, import }),
                options: Options::direct(&config),
                state: Mutex::new(State::default()),
                connecting: tokio::sync::Mutex::new(()),
                pyro5: crate::pyro5::Pyro5Client::default(),
                speaks_pyro5: std::sync::atomic::AtomicBool::new(false),
            }),
            timeout,
        }
    }

    /// The reference this proxy was made from, if it is a reference's proxy.
    pub(crate) fn import(&self) -> Option<Arc<Import>> {
        self.shared.over.as_ref().and_then(|o| o.import.clone())
    }

    /// The URI the proxy was made for.
    pub fn uri(&self) -> &Uri {
        &self.shared.uri
    }

    /// Where the object is, if known yet (for `RMINAME:` and `RMIMETA:`,
    /// after the first call resolved it).
    pub fn target(&self) -> Option<ObjectUri> {
        self.state().target.clone()
    }

    /// How long each call waits for its reply (`None`: forever).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The same proxy, sharing its connection, with another call timeout.
    #[must_use]
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Self {
        Proxy { shared: self.shared.clone(), timeout }
    }

    /// Calls `method` with `args` (a tuple: `()`, `(a,)`, `(a, b)`, …) and
    /// decodes its return value as `R`.
    ///
    /// # Errors
    ///
    /// Any [`Error`]: connecting, the timeout, the daemon's refusal (unknown
    /// object or method, bad arguments), the method's own error, or a
    /// broken connection.
    pub async fn call<R: DeserializeOwned>(&self, method: &str, args: impl Serialize) -> Result<R, Error> {
        self.call_named(Text::from(method), args, self.timeout).await
    }

    /// As [`Proxy::call`], with a timeout for this call only.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`].
    pub async fn call_with_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<R, Error> {
        self.call_named(Text::from(method), args, timeout).await
    }

    /// As [`Proxy::call_with_timeout`], with the method name as [`Text`]
    /// (generated proxies pass static names, so calls allocate nothing).
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`].
    #[doc(hidden)]
    pub async fn call_named<R: DeserializeOwned>(
        &self,
        method: Text,
        args: impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<R, Error> {
        if self.shared.speaks_pyro5.load(std::sync::atomic::Ordering::Relaxed) {
            return self.call_pyro5(&method, &args, false, timeout).await;
        }
        let encoded = self.encode(&args)?;
        // `call_scoped` written out: a layer of future less on the path
        // every call takes (each copies the call into its state).
        let called = if tracing::enabled!(tracing::Level::DEBUG) {
            Box::pin(self.call_traced(method.clone(), encoded, timeout)).await
        } else {
            self.call_untraced(method.clone(), encoded, timeout).await
        };
        let (encoded, scope) = match called {
            Ok(reply) => reply,
            // The name resolved to a Pyro5 daemon's object just now.
            Err(_) if self.shared.speaks_pyro5.load(std::sync::atomic::Ordering::Relaxed) => {
                return self.call_pyro5(&method, &args, false, timeout).await;
            }
            Err(e) => return Err(e),
        };
        decode_reply::<R>(&method, &encoded, &scope)
    }

    /// Calls a method that streams its results (it returns an
    /// `rmi::Stream<T>`): returns once the call is sent, with the stream of
    /// its items as they come. Every outcome from the daemon, an unknown
    /// method or bad arguments too, arrives through the stream.
    ///
    /// The proxy's timeout bounds each wait for the next chunk of items,
    /// not the whole stream: for a stream of rare events, use a proxy
    /// without one ([`Proxy::with_timeout`]).
    ///
    /// # Errors
    ///
    /// Connecting, or a connection that broke before the call was sent; a
    /// proxy of a reference ([`crate::Remote`]) does not stream.
    pub async fn call_stream<T: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<Streaming<T>, Error> {
        self.call_stream_named(Text::from(method), args).await
    }

    /// As [`Proxy::call_stream`], with the method name as [`Text`].
    ///
    /// # Errors
    ///
    /// As [`Proxy::call_stream`].
    #[doc(hidden)]
    pub async fn call_stream_named<T: DeserializeOwned>(
        &self,
        method: Text,
        args: impl Serialize,
    ) -> Result<Streaming<T>, Error> {
        let args = self.encode(&args)?;
        if self.shared.over.is_some() {
            return Err(Error::Protocol(format!(
                "{method:?} streams its results, and a proxy of a reference does not carry streams yet"
            )));
        }
        let (_, meta) = for_outgoing_call();
        for attempt in 0..2 {
            let (connection, object) = self.connection().await?;
            let call = Call::new(object, method.clone(), args.clone()).streaming().with_meta(meta.as_ref());
            match connection.open_stream(call) {
                Ok(id) => return Ok(Streaming::new(connection, id, method, self.timeout)),
                Err(CallFailure::NotSent(e) | CallFailure::Failed(e)) => {
                    self.forget(&connection);
                    if attempt == 1 || matches!(e, Error::MessageTooLarge { .. }) {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::ConnectionLost("the connection closed twice in a row".into()))
    }

    /// Calls a method that takes an upload (an argument of type
    /// `rmi::Upload<T>`, here among `args`): its items are sent after the
    /// call, as the method reads them, and the method's reply returned.
    ///
    /// The proxy's timeout bounds the whole call, the upload included: for a
    /// large upload use a proxy without one ([`Proxy::with_timeout`]). An
    /// upload is sent once: a call that fails is not retried.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`]; a proxy of a reference ([`crate::Remote`]) does
    /// not carry uploads.
    pub async fn call_upload<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.call_upload_named(Text::from(method), args, self.timeout).await
    }

    /// As [`Proxy::call_upload`], with the method name as [`Text`].
    ///
    /// # Errors
    ///
    /// As [`Proxy::call_upload`].
    #[doc(hidden)]
    pub async fn call_upload_named<R: DeserializeOwned>(
        &self,
        method: Text,
        args: impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<R, Error> {
        let (encoded, source) = rmi_core::stream::collect_upload(|| self.encode(&args));
        let args = encoded?;
        let Some(source) = source else {
            // No upload among the arguments after all: a plain call.
            let (encoded, scope) = self.call_scoped(method.clone(), args, timeout).await?;
            return decode_reply::<R>(&method, &encoded, &scope);
        };
        if self.shared.over.is_some() {
            return Err(Error::Protocol(format!(
                "{method:?} takes an upload, and a proxy of a reference does not carry uploads yet"
            )));
        }
        let started = Instant::now();
        let (inherited, meta) = for_outgoing_call();
        let mut deadline = timeout.and_then(|t| started.checked_add(t));
        if let Some(inherited) = inherited {
            deadline = Some(deadline.map_or(inherited, |d| d.min(inherited)));
        }
        let waited = deadline.map(|d| d.saturating_duration_since(started));
        let (connection, object) = self.connection().await?;
        let mut call = Call::new(object, method.clone(), args);
        let mut carried = meta.as_deref().cloned().unwrap_or_default();
        carried.upload = true;
        call.meta = Some(Box::new(carried));
        let reply = match connection.send_upload(call, source, deadline, waited).await {
            Ok(reply) => reply,
            Err(CallFailure::NotSent(e) | CallFailure::Failed(e)) => {
                if connection.is_closed(Instant::now()) {
                    self.forget(&connection);
                }
                return Err(e);
            }
        };
        decode_reply::<R>(&method, &reply?, &connection.scope())
    }

    /// Calls a oneway method: returns once the call is handed to the
    /// connection, without waiting for the method (or for any error it
    /// meets on the daemon, which the daemon logs).
    ///
    /// # Errors
    ///
    /// Connecting, or a connection that broke before the call was sent.
    pub async fn call_oneway(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.call_oneway_named(Text::from(method), args).await
    }

    /// As [`Proxy::call_oneway`], with the method name as [`Text`].
    ///
    /// # Errors
    ///
    /// As [`Proxy::call_oneway`].
    #[doc(hidden)]
    pub async fn call_oneway_named(&self, method: Text, args: impl Serialize) -> Result<(), Error> {
        if self.shared.speaks_pyro5.load(std::sync::atomic::Ordering::Relaxed) {
            return self.call_pyro5(&method, &args, true, self.timeout).await;
        }
        let args = self.encode(&args)?;
        self.call_oneway_encoded(method, args).await
    }

    pub(crate) async fn call_oneway_encoded(&self, method: Text, args: Encoded) -> Result<(), Error> {
        let (_, meta) = for_outgoing_call();
        if let Some(over) = &self.shared.over {
            let call = Call::new(over.object.clone(), method, args).with_meta(meta.as_ref());
            return over.link.clone().call_oneway(call).await;
        }
        for attempt in 0..2 {
            let (connection, object) = self.connection().await?;
            let call = Call::new(object, method.clone(), args.clone()).with_meta(meta.as_ref());
            match connection.send_oneway(call).await {
                Ok(()) => return Ok(()),
                Err(CallFailure::NotSent(e)) | Err(CallFailure::Failed(e)) => {
                    self.forget(&connection);
                    if attempt == 1 || matches!(e, Error::MessageTooLarge { .. }) {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::ConnectionLost("the connection closed twice in a row".into()))
    }

    /// Calls `method` with its arguments as JSON text (an array, one element
    /// per parameter, decoded by the daemon with serde into the method's
    /// parameter types, as `describe`'s signatures say); returns the result
    /// as JSON text. For tools and people (`rmi-naming call`); programs call
    /// with their own types.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with `BadArguments` when the text is not a JSON
    /// array or does not fit the signature; otherwise as [`Proxy::call`].
    pub async fn call_json(&self, method: &str, args: &str) -> Result<String, Error> {
        let params = match serde_json::from_str::<serde_json::Value>(args) {
            Ok(serde_json::Value::Array(params)) => params,
            Ok(other) => {
                return Err(Error::Remote(rmi_core::RemoteError::new(
                    rmi_core::RemoteErrorKind::BadArguments,
                    format!("the arguments must be a JSON array (one element per parameter), not {other}"),
                )));
            }
            Err(e) => {
                return Err(Error::Remote(rmi_core::RemoteError::new(
                    rmi_core::RemoteErrorKind::BadArguments,
                    format!("the arguments are not JSON: {e}"),
                )));
            }
        };
        let reply =
            self.call_encoded(Text::from(method), rmi_core::json::arguments(params), self.timeout).await?;
        match reply.json_bytes() {
            Some(text) => Ok(String::from_utf8_lossy(text).into_owned()),
            None => Err(Error::Remote(rmi_core::RemoteError::new(
                rmi_core::RemoteErrorKind::Internal,
                "the daemon did not answer in JSON (it predates JSON calls)",
            ))),
        }
    }

    /// A call to an object of a Pyro5 daemon (`PYRO:` URIs), in JSON.
    #[cold]
    #[inline(never)]
    async fn call_pyro5<R: DeserializeOwned>(
        &self,
        method: &str,
        args: &impl Serialize,
        oneway: bool,
        timeout: Option<Duration>,
    ) -> Result<R, Error> {
        let target = match &self.shared.uri {
            Uri::Pyro5(target) => target.clone(),
            _ => self
                .state()
                .target
                .clone()
                .ok_or_else(|| Error::Protocol("no Pyro5 object resolved".into()))?,
        };
        let params = crate::pyro5::params(args)?;
        let value =
            self.shared.pyro5.call(&target, &self.shared.options, (method, params, oneway), timeout).await?;
        serde_json::from_value(value).map_err(|e| {
            Error::Serialization(format!("the result of {method} is not what the caller expects: {e}"))
        })
    }

    /// Calls `method` with arguments already encoded; returns the encoded
    /// reply.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`].
    pub async fn call_encoded(
        &self,
        method: Text,
        args: Encoded,
        timeout: Option<Duration>,
    ) -> Result<Encoded, Error> {
        Ok(self.call_scoped(method, args, timeout).await?.0)
    }

    /// As [`Proxy::call_encoded`], with the scope the reply decodes in (the
    /// connection it came over: references in it are that connection's).
    #[inline]
    pub(crate) async fn call_scoped(
        &self,
        method: Text,
        args: Encoded,
        timeout: Option<Duration>,
    ) -> Result<(Encoded, Scope), Error> {
        if tracing::enabled!(tracing::Level::DEBUG) {
            // Boxed, so that the untraced call's future stays as small as
            // it was without tracing.
            return Box::pin(self.call_traced(method, args, timeout)).await;
        }
        self.call_untraced(method, args, timeout).await
    }

    /// As [`Proxy::call_scoped`], in a span of its own (`rmi=debug`), with
    /// an event when it ends.
    #[cold]
    async fn call_traced(
        &self,
        method: Text,
        args: Encoded,
        timeout: Option<Duration>,
    ) -> Result<(Encoded, Scope), Error> {
        use tracing::Instrument;
        let correlation = rmi_core::context::for_outgoing_call()
            .1
            .and_then(|m| m.correlation.as_ref().map(|c| c.as_str().to_owned()));
        let span = tracing::debug_span!(
            "rmi.call",
            uri = %self.shared.uri,
            method = method.as_str(),
            correlation = correlation.as_deref().unwrap_or(""),
        );
        let started = Instant::now();
        let outcome = self.call_untraced(method, args, timeout).instrument(span.clone()).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        span.in_scope(|| match &outcome {
            Ok(_) => tracing::debug!(elapsed_us, "call returned"),
            Err(e) => tracing::debug!(elapsed_us, error = %e, "call failed"),
        });
        outcome
    }

    async fn call_untraced(
        &self,
        method: Text,
        args: Encoded,
        timeout: Option<Duration>,
    ) -> Result<(Encoded, Scope), Error> {
        let started = Instant::now();
        // The clock read once: the rest is arithmetic in alarm ticks.
        let started_ticks = rmi_core::alarm::ticks(started);
        let mut deadline = timeout.and_then(|t| started.checked_add(t));
        let (inherited, meta) = for_outgoing_call();
        let (waited, deadline_ticks) = match inherited {
            None => (
                deadline.and(timeout),
                deadline.and(timeout).map(|t| started_ticks.saturating_add(ticks_of(t))),
            ),
            Some(inherited) => {
                let d = deadline.map_or(inherited, |d| d.min(inherited));
                deadline = Some(d);
                (Some(d.saturating_duration_since(started)), Some(rmi_core::alarm::ticks(d)))
            }
        };
        if let Some(over) = &self.shared.over {
            let call = Call::new(over.object.clone(), method, args).with_meta(meta.as_ref());
            let reply = over.link.clone().call(call, deadline, waited).await?;
            let scope = Scope::new(over.link.peer().clone(), over.link.clone());
            return Ok((reply?, scope));
        }
        // Built once: a call the first connection did not send comes back
        // to be sent on the next, its object id set for that connection.
        let mut call = Some(Call::new(Text::default(), method, args));
        if let Some(call) = &mut call {
            call.attach(meta.as_ref());
        }
        for attempt in 0..2 {
            let live = self.live_at_ticks(started_ticks);
            // The time left, for the daemon: on a connection already live at
            // the first attempt, no time has passed to speak of since
            // `started`, so the clock is not read again.
            let fresh = attempt == 0 && live.is_some();
            let (connection, object) = match (live, deadline) {
                (Some(live), _) => live,
                (None, Some(d)) => tokio::time::timeout_at(d.into(), self.connection())
                    .await
                    .map_err(|_| Error::Timeout(waited.unwrap_or_default()))??,
                (None, None) => self.connection().await?,
            };
            let remaining =
                if fresh { waited } else { deadline.map(|d| d.saturating_duration_since(Instant::now())) };
            if let Some(call) = &mut call {
                call.object = object;
            }
            match connection.send_call(&mut call, deadline, deadline_ticks, waited, remaining).await {
                Ok(reply) => return Ok((reply?, connection.scope())),
                Err(CallFailure::NotSent(e)) => {
                    // The connection was already gone: nothing reached the
                    // daemon, so one retry on a new connection is safe.
                    self.forget(&connection);
                    if attempt == 1 || matches!(e, Error::MessageTooLarge { .. }) {
                        return Err(e);
                    }
                }
                Err(CallFailure::Failed(e)) => {
                    if connection.is_closed(Instant::now()) {
                        self.forget(&connection);
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::ConnectionLost("the connection closed twice in a row".into()))
    }

    /// Where the object is, connecting (and resolving) first if needed.
    async fn located(&self) -> Result<ObjectUri, Error> {
        self.connection().await?;
        self.state().target.clone().ok_or_else(|| Error::ConnectionLost("the connection closed".into()))
    }

    /// The object's description: its type and exposed methods, with their
    /// signatures and oneway flags.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`]; [`Error::ObjectNotFound`] if the daemon has no
    /// such object.
    pub async fn describe(&self) -> Result<ObjectDescription, Error> {
        let target = self.located().await?;
        self.daemon_proxy(&target).call("describe", (target.object.clone(),)).await
    }

    /// Checks that the object's daemon answers.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`].
    pub async fn ping(&self) -> Result<(), Error> {
        let target = self.located().await?;
        self.daemon_proxy(&target).call("ping", ()).await
    }

    /// The daemon's own object (`RMI.Daemon`) where this proxy's object
    /// lives, on this proxy's connection, and the object's id there.
    pub(crate) async fn daemon_object(&self) -> Result<(Proxy, String), Error> {
        let target = self.located().await?;
        Ok((self.daemon_proxy(&target), target.object))
    }

    /// A proxy for the daemon's own object, sharing this proxy's connection
    /// settings.
    fn daemon_proxy(&self, target: &ObjectUri) -> Proxy {
        let uri = ObjectUri { object: DAEMON_OBJECT.to_owned(), location: target.location.clone() };
        Proxy {
            shared: Arc::new(Shared {
                uri: Uri::Object(uri.clone()),
                over: None,
                options: self.shared.options.clone(),
                state: Mutex::new(State {
                    target: Some(uri),
                    object: Text::from_static(DAEMON_OBJECT),
                    connection: self.state().connection.clone().filter(|c| !c.is_closed(Instant::now())),
                }),
                connecting: tokio::sync::Mutex::new(()),
                pyro5: crate::pyro5::Pyro5Client::default(),
                speaks_pyro5: std::sync::atomic::AtomicBool::new(false),
            }),
            timeout: self.timeout,
        }
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.shared.options.max_message_size
    }

    pub(crate) fn encode(&self, args: &impl Serialize) -> Result<Encoded, Error> {
        let args = Encoded::encode(args).map_err(|e| Error::Serialization(format!("the arguments: {e}")))?;
        let max = self.shared.options.max_message_size;
        if args.wire_len() > max {
            return Err(Error::MessageTooLarge { size: args.wire_len(), max });
        }
        Ok(args)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole; a poisoned lock is usable.
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops a broken connection, and the resolved target of a name, so
    /// that the next call connects (and resolves) again.
    fn forget(&self, broken: &Arc<ClientConnection>) {
        let mut state = self.state();
        if state.connection.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            state.connection = None;
            if !matches!(self.shared.uri, Uri::Object(_)) {
                state.target = None;
            }
        }
    }

    /// The live connection and the object's location, connecting (and
    /// resolving) first if needed.
    pub(crate) async fn connection(&self) -> Result<(Arc<ClientConnection>, Text), Error> {
        if let Some(found) = self.live_at(Instant::now()) {
            return Ok(found);
        }
        let _connecting = self.shared.connecting.lock().await;
        if let Some(found) = self.live_at(Instant::now()) {
            return Ok(found);
        }
        let by_name = !matches!(self.shared.uri, Uri::Object(_));
        let cached = {
            let mut state = self.state();
            if state.connection.take().is_some() && by_name {
                // The connection ended: the object may have moved.
                state.target = None;
            }
            state.target.clone()
        };
        let target = match &cached {
            Some(target) => target.clone(),
            None => self.resolve().await?,
        };
        let connection = match self.open(&target).await {
            Ok(connection) => (connection, target),
            Err(e) if by_name && cached.is_some() => {
                // Where the name pointed last time is gone; ask again.
                let fresh = self.resolve().await?;
                if fresh == target {
                    return Err(e);
                }
                (self.open(&fresh).await?, fresh)
            }
            Err(e) => return Err(e),
        };
        let (connection, target) = connection;
        let object = Text::from(target.object.as_str());
        let mut state = self.state();
        state.target = Some(target);
        state.object = object.clone();
        state.connection = Some(connection.clone());
        Ok((connection, object))
    }

    /// Where the proxy's URI points now. A name that resolves to a Pyro5
    /// daemon's object turns the proxy into a Pyro5 proxy (see
    /// [`Proxy::call_named`]), and is an error for an rmi connection.
    async fn resolve(&self) -> Result<ObjectUri, Error> {
        let resolved = match (&self.shared.uri, self.shared.options.resolver) {
            (Uri::Object(object), _) => return Ok(object.clone()),
            (uri, Some(resolve)) => resolve(uri, &self.shared.options).await?,
            (uri, None) => return Err(Error::Protocol(format!("{uri}: this proxy resolves no names"))),
        };
        if resolved.pyro5 {
            let uri = resolved.uri;
            let mut state = self.state();
            state.target = Some(uri.clone());
            self.shared.speaks_pyro5.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(Error::Protocol(format!(
                "{} resolves to a Pyro5 daemon's object (PYRO:{}@{}): it is called through Pyro5, not rmi",
                self.shared.uri, uri.object, uri.location
            )));
        }
        Ok(resolved.uri)
    }

    async fn open(&self, target: &ObjectUri) -> Result<Arc<ClientConnection>, Error> {
        let options = &self.shared.options;
        let connection = ClientConnection::open(
            &target.location,
            options.key.as_ref(),
            options.tls.as_ref(),
            options.max_message_size,
            options.connect_timeout,
        )
        .await?;
        tracing::debug!(address = connection.address(), "connected");
        Ok(connection)
    }

    /// The live connection and the object id, if connected (`now` is the
    /// time of the call, to skip checking a connection in steady use).
    fn live_at(&self, now: Instant) -> Option<(Arc<ClientConnection>, Text)> {
        self.live_at_ticks(rmi_core::alarm::ticks(now))
    }

    /// As [`Proxy::live_at`], `now` in alarm ticks.
    fn live_at_ticks(&self, now: u64) -> Option<(Arc<ClientConnection>, Text)> {
        let state = self.state();
        match (&state.connection, &state.target) {
            (Some(c), Some(_)) if !c.is_closed_at(now) => Some((c.clone(), state.object.clone())),
            _ => None,
        }
    }
}

/// Decodes a call's reply, in the scope of the connection it came over when
/// it carries references.
#[inline]
fn decode_reply<R: DeserializeOwned>(method: &Text, encoded: &Encoded, scope: &Scope) -> Result<R, Error> {
    let decoded = if encoded.carries_references() {
        scope.clone().enter_owned(|| encoded.decode::<R>())
    } else {
        encoded.decode::<R>()
    };
    decoded.map_err(|e| {
        Error::Serialization(format!(
            "the reply of {method:?} does not decode as {}: {e}",
            std::any::type_name::<R>()
        ))
    })
}

/// The object behind a proxy that cannot be reached.
pub(crate) struct Unreachable;

impl rmi_core::object::Exposed for Unreachable {
    fn type_name(&self) -> &'static str {
        "an unreachable object"
    }

    fn methods(&self) -> &'static [rmi_core::object::MethodInfo] {
        &[]
    }

    fn dispatch(self: Arc<Self>, _: &str, _: Encoded) -> rmi_core::object::Dispatch {
        rmi_core::object::Dispatch::Ready(Err(rmi_core::RemoteError::new(
            rmi_core::RemoteErrorKind::ObjectNotFound,
            "the reference's URI could not be used with this process's RMI_* settings",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Calls may be spawned: their futures are `Send`.
    #[test]
    fn call_futures_are_send() {
        let proxy = Proxy::builder_with_config("RMI:x@127.0.0.1:1", &Config::default()).build().unwrap();
        assert_send(&proxy.call::<u32>("m", ()));
        assert_send(&proxy.call_oneway("m", ()));
        assert_send(&proxy.describe());
        assert_send(&Proxy::connect("RMI:x@127.0.0.1:1"));
    }
}
