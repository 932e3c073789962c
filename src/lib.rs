//! rmi: remote objects for Rust, in the spirit of Pyro and Java RMI.
//!
//! A **daemon** hosts objects whose methods are exposed with
//! [`#[rmi::expose]`](expose); **proxies** call those methods from other
//! processes and machines, typed (the generated `<Type>Proxy`) or dynamic
//! ([`Proxy::call`]).
//!
//! ```no_run
//! #[derive(Default)]
//! pub struct Greeter;
//!
//! #[rmi::expose]
//! impl Greeter {
//!     pub fn welcome_message(&self, name: String) -> String {
//!         format!("Hi welcome {name}")
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The server, in one process:
//! let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
//! let uri = daemon.register(Greeter, Some("greeter"))?;
//! tokio::spawn({ let daemon = daemon.clone(); async move { daemon.serve().await } });
//!
//! // A client, in another:
//! let greeter = GreeterProxy::new(&uri.to_string())?;
//! assert_eq!(greeter.welcome_message("Ruvika".into()).await?, "Hi welcome Ruvika");
//! # Ok(()) }
//! ```
//!
//! # What `#[expose]` accepts
//!
//! On an inherent `impl` block, every `pub fn` taking `&self` (sync or
//! `async`) becomes remotely callable; other functions do not. Arguments
//! are any owned `Serialize + Deserialize` types; the return type is `T`,
//! `()`, or `Result<T, E>` where `E` converts into
//! `Box<dyn Error + Send + Sync>` (any error type, `String`, `anyhow::Error`)
//! and travels as a [`RemoteError`] with its source chain. `#[rmi::oneway]`
//! marks methods that return nothing and that callers do not wait for.
//! `&mut self` methods are refused: an object is shared by all its clients
//! and called concurrently, so keep mutable state in a `Mutex` or atomic.
//!
//! # Where a method runs
//!
//! One rule: an `async fn` runs on the runtime and must not block; a plain
//! `fn` may block (sleep, compute, use a blocking driver, as a Pyro user
//! writes it), and the daemon runs it on tokio's blocking pool, so that it
//! holds up no other call, on a multi-thread or a current-thread runtime.
//! A short synchronous method that never blocks may opt into the fast path
//! with [`#[rmi::nonblocking]`](nonblocking): it then runs where its call
//! is read, without the hop to the pool (and while it runs, the requests
//! that follow it on its connection wait, on any runtime).
//!
//! ```no_run
//! # #[derive(Default)]
//! # pub struct Store { hits: std::sync::atomic::AtomicU64 }
//! #[rmi::expose]
//! impl Store {
//!     /// May take its time: runs on the blocking pool.
//!     pub fn checksum(&self, path: String) -> Result<u64, std::io::Error> {
//!         let bytes = std::fs::read(path)?;
//!         Ok(bytes.iter().map(|&b| u64::from(b)).sum())
//!     }
//!
//!     /// Never blocks: runs where the call is read.
//!     #[rmi::nonblocking]
//!     pub fn hits(&self) -> u64 {
//!         self.hits.load(std::sync::atomic::Ordering::Relaxed)
//!     }
//!
//!     /// Awaits without holding a thread: runs on the runtime.
//!     pub async fn later(&self, millis: u64) -> u64 {
//!         tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
//!         millis
//!     }
//! }
//! ```
//!
//! On a trait, every method taking `&self` is exposed, so that a client can
//! depend on a small interface crate and get `<Trait>Proxy` without the
//! implementation; a daemon hosts an implementation as
//! `<Trait>Object(implementation)`.
//!
//! Calls can be batched, as with Pyro's `BatchProxy`: [`Proxy::batch`] (or
//! the generated `<Type>Batch`) records calls, and running the batch sends
//! them in one message and reads every result from one reply (see
//! [`Batch`]).
//!
//! ```no_run
//! # #[derive(Default)]
//! # pub struct Calculator;
//! # #[rmi::expose]
//! # impl Calculator {
//! #     pub fn add(&self, a: i64, b: i64) -> i64 { a + b }
//! # }
//! # async fn demo() -> Result<(), rmi::Error> {
//! let calculator = CalculatorProxy::new("RMINAME:example.calculator")?;
//! let mut batch = CalculatorBatch::new(&calculator);
//! let sum = batch.add(1, 2)?;
//! let other = batch.add(3, 4)?;
//! let results = batch.await?; // one message each way
//! assert_eq!((results.get(sum)?, results.get(other)?), (3, 7));
//! # Ok(()) }
//! ```
//!
//! # Objects as values
//!
//! A [`Remote<P>`](Remote) is a reference to an object, named by the proxy
//! type of its interface: an argument or a return value like any other.
//! `Remote::new(object)` passes a local object, exported over the connection
//! the call travels on; the receiver calls it through `reference.proxy()`.
//! A server calls back a client's object over the connection the client
//! opened, so the client needs no daemon of its own; a method returning a
//! reference hands out a new object (Pyro's autoproxy). A reference lives as
//! long as the receiver holds it, and is released when its last copy is
//! dropped or its connection closes.
//!
//! ```no_run
//! use rmi::Remote;
//!
//! /// The client's side: hears a job's progress.
//! #[derive(Default)]
//! pub struct Printer;
//!
//! #[rmi::expose]
//! impl Printer {
//!     pub fn report(&self, percent: u32) {
//!         println!("{percent}%");
//!     }
//! }
//!
//! /// The server's side: runs jobs, calls the client back.
//! #[derive(Default)]
//! pub struct Jobs;
//!
//! #[rmi::expose]
//! impl Jobs {
//!     pub async fn run(&self, progress: Remote<PrinterProxy>) -> Result<(), rmi::Error> {
//!         for percent in [25, 50, 75, 100] {
//!             progress.proxy().report(percent).await?;
//!         }
//!         Ok(())
//!     }
//!
//!     /// Autoproxy: a fresh object for the caller, by reference.
//!     pub fn printer(&self) -> Remote<PrinterProxy> {
//!         Remote::new(Printer)
//!     }
//! }
//!
//! # async fn demo() -> Result<(), rmi::Error> {
//! let jobs = JobsProxy::new("RMINAME:example.jobs")?;
//! jobs.run(Remote::new(Printer)).await?; // prints 25% … 100% here
//! # Ok(()) }
//! ```
//!
//! # Instance modes
//!
//! A daemon can make the instances of an object itself, from a factory, as
//! Pyro's `instance_mode` says: one for the whole daemon, one per client
//! connection, or one per call ([`InstanceMode`]).
//!
//! ```no_run
//! # #[derive(Default)]
//! # pub struct Cart { items: std::sync::Mutex<Vec<String>> }
//! # #[rmi::expose]
//! # impl Cart {
//! #     pub fn add(&self, item: String) { self.items.lock().unwrap().push(item) }
//! # }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
//! // Each client connection gets a cart of its own, dropped when it leaves.
//! daemon.register_factory(rmi::InstanceMode::Session, Cart::default, Some("cart"))?;
//! # Ok(()) }
//! ```
//!
//! # Streams
//!
//! A method that returns a [`Stream`] sends its items as they come; the
//! caller reads them from a [`Streaming`], under credit its reading grants
//! (a slow consumer bounds the producer). Dropping the `Streaming` stops
//! the producer.
//!
//! ```no_run
//! use futures::StreamExt;
//!
//! # #[derive(Default)]
//! pub struct Numbers;
//!
//! #[rmi::expose]
//! impl Numbers {
//!     /// `0..n`, streamed.
//!     #[rmi::nonblocking]
//!     pub fn count(&self, n: u64) -> rmi::Stream<u64> {
//!         rmi::Stream::iter(0..n)
//!     }
//! }
//!
//! # async fn demo() -> Result<(), rmi::Error> {
//! let numbers = NumbersProxy::new("RMINAME:example.numbers")?;
//! let mut items = numbers.count(1_000_000).await?;
//! while let Some(n) = items.next().await {
//!     if n? == 10 {
//!         break; // dropping `items` stops the producer
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Into a method, an [`Upload`] argument carries a stream of items after
//! the call, under the same flow control (the method's reading grants
//! credit):
//!
//! ```no_run
//! use futures::StreamExt;
//!
//! # #[derive(Default)]
//! pub struct Store;
//!
//! #[rmi::expose]
//! impl Store {
//!     /// Counts the bytes it is sent.
//!     pub async fn put(&self, mut data: rmi::Upload<rmi::Blob>) -> Result<u64, rmi::Error> {
//!         let mut bytes = 0;
//!         while let Some(chunk) = data.next().await {
//!             bytes += chunk?.len() as u64;
//!         }
//!         Ok(bytes)
//!     }
//! }
//!
//! # async fn demo() -> Result<(), rmi::Error> {
//! let store = StoreProxy::new("RMINAME:example.store")?.with_timeout(None);
//! let chunks = (0..16).map(|_| rmi::Blob::from(vec![0u8; 64 * 1024]));
//! assert_eq!(store.put(rmi::Upload::iter(chunks)).await?, 16 * 64 * 1024);
//! # Ok(()) }
//! ```
//!
//! # The caller's context, hooks and tracing
//!
//! Inside a method, [`context()`] tells the connection, the peer, the
//! deadline and the caller's correlation id; [`correlate`] sets the id a
//! client's calls (and every call they lead to) carry, [`annotate`] small
//! annotations for the called method. [`DaemonBuilder::hooks`] takes the
//! application's [`Hooks`]: connection validation, connect and disconnect,
//! and every call before (refusable) and after (outcome, elapsed). Every
//! call is a `tracing` span on both sides at debug level.
//!
//! ```no_run
//! # async fn demo(proxy: rmi::Proxy) -> Result<(), rmi::Error> {
//! // Client: one id for the whole request, through every server it reaches.
//! let n: u64 = rmi::correlate("req-42", proxy.call("work", ())).await??;
//! # Ok(()) }
//! // Server, inside an exposed method:
//! fn who_called() -> String {
//!     let c = rmi::context().expect("inside a method");
//!     format!("{:?} from {:?}", c.correlation_id(), c.peer())
//! }
//! ```
//!
//! Large binary arguments and results travel without copies as [`Blob`].
//!
//! # TLS
//!
//! `RMI_TLS=on` with the `RMI_TLS_*` files turns TLS on for every
//! connection of a process, or in code:
//!
//! ```no_run
//! # use std::path::Path;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rmi::tls::{ClientTls, ServerTls};
//! let server = ServerTls::from_pem_files(Path::new("server.pem"), Path::new("server.key"), Some(Path::new("ca.pem")), true)?;
//! let daemon = rmi::Daemon::builder()?.tls(Some(server)).bind("127.0.0.1:9100").await?;
//! let client = ClientTls::from_pem_files(Path::new("ca.pem"), Some((Path::new("client.pem"), Path::new("client.key"))))?;
//! let proxy = rmi::Proxy::builder("RMI:calc@127.0.0.1:9100")?.tls(Some(client)).build()?;
//! # Ok(()) }
//! // Inside a method: who called, by certificate.
//! fn caller() -> Option<String> {
//!     Some(rmi::context()?.identity()?.subject.clone())
//! }
//! ```
//!
//! # Layout
//!
//! This crate re-exports rmi's member crates: `rmi-core` (URIs, wire,
//! authentication, errors, configuration), `rmi-daemon` ([`Daemon`]),
//! `rmi-proxy` ([`Proxy`]) and `rmi-macros` ([`expose`], [`oneway`],
//! [`nonblocking`]).
//!
//! # Features
//!
//! - `tarpc` (off by default): `rmi::tarpc` (the `rmi-tarpc` crate), tarpc services served on rmi
//!   daemons (behind their TLS and key), registered in `rmi-naming` and
//!   reached by `RMINAME:`.

pub use rmi_core::config::{NsHost, Pyro5Mode, TlsSettings};
pub use rmi_core::context::{CallContext, ConnectionInfo, annotate, context, correlate};
pub use rmi_core::object::{MethodDescription, ObjectDescription};
pub use rmi_core::stream::{Stream, Upload};
/// TLS: [`tls::ServerTls`] for daemons, [`tls::ClientTls`] for proxies,
/// [`tls::PeerIdentity`] for who a caller is.
pub use rmi_core::tls;
pub use rmi_core::{
    AuthError, Blob, Config, ConfigError, Error, Host, HostPort, Key, Location, MetaUri, NameUri, ObjectUri,
    RemoteError, RemoteErrorKind, Uri, UriError,
};
pub use rmi_daemon::{CallInfo, CallOutcome, Daemon, DaemonBuilder, DaemonError, Hooks, InstanceMode};
pub use rmi_macros::{expose, nonblocking, oneway};
pub use rmi_proxy::{
    Batch, BatchCall, BatchResults, DEFAULT_LEASE_TTL, Implements, Interface, IntoUri, Lease, MetaMatch,
    NameFilter, NameServerProxy, NamingError, Proxy, ProxyBuilder, Registration, Remote, Streaming,
    locate_ns, locate_ns_with,
};
/// tarpc services carried by rmi (the `tarpc` feature): the `rmi-tarpc` crate.
#[cfg(feature = "tarpc")]
pub use rmi_tarpc as tarpc;

/// What generated code needs; not part of the API.
#[doc(hidden)]
pub use rmi_proxy::__private;
