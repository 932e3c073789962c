//! Batches: many calls to one object sent in one message, their results
//! back in one reply, as with Pyro's `BatchProxy`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rmi_proxy::Error> {
//! let calc = rmi_proxy::Proxy::new("RMINAME:example.calculator")?;
//! let mut batch = calc.batch();
//! let sum = batch.call::<i64>("add", (1, 2))?;
//! let product = batch.call::<i64>("multiply", (3, 4))?;
//! let results = batch.run().await?; // one round trip
//! assert_eq!(results.get(sum)?, 3);
//! assert_eq!(results.get(product)?, 12);
//! # Ok(()) }
//! ```
//!
//! From a typed proxy, `#[rmi::expose]` generates `<Type>Batch`, whose
//! methods record calls with their own argument and result types; awaiting
//! it runs it (a compiled example is in the `rmi` crate's documentation):
//!
//! ```text
//! let mut batch = CalculatorBatch::new(&calculator);
//! let sum = batch.add(1, 2)?;
//! let results = batch.await?;
//! assert_eq!(results.get(sum)?, 3);
//! ```
//!
//! The daemon runs the calls one after another, in order, and stops at the
//! first that fails: that call's result is its error, and every later call
//! gives [`Error::NotRun`]. The calls share one timeout, the proxy's.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use rmi_core::{Encoded, Error, Reply, Text};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Proxy;

/// The daemon's method that runs a batch.
const BATCH_METHOD: &str = "batch";

/// Tells batches apart, so that a [`BatchCall`] is only read from the
/// results of its own batch.
static NEXT_BATCH: AtomicU64 = AtomicU64::new(0);

/// Calls recorded on a [`Proxy`] to be sent together; made by
/// [`Proxy::batch`].
#[derive(Debug)]
#[must_use = "a batch sends nothing until it runs"]
pub struct Batch {
    proxy: Proxy,
    serial: u64,
    calls: Vec<(Text, Encoded)>,
    /// What the calls take on the wire so far, near enough.
    wire_len: usize,
}

/// Where one call's result will be in its batch's [`BatchResults`]; `R` is
/// the type its reply decodes as.
#[must_use = "the result of a batched call is read with BatchResults::get"]
pub struct BatchCall<R> {
    serial: u64,
    index: usize,
    returns: PhantomData<fn() -> R>,
}

impl<R> Clone for BatchCall<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for BatchCall<R> {}

impl<R> std::fmt::Debug for BatchCall<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCall")
            .field("index", &self.index)
            .field("returns", &std::any::type_name::<R>())
            .finish()
    }
}

/// The replies of a batch that ran.
#[derive(Debug)]
pub struct BatchResults {
    serial: u64,
    methods: Vec<Text>,
    replies: Vec<Reply>,
}

impl Proxy {
    /// An empty batch of calls to this proxy's object: record calls with
    /// [`Batch::call`], then send them all in one message with
    /// [`Batch::run`].
    pub fn batch(&self) -> Batch {
        Batch {
            proxy: self.clone(),
            serial: NEXT_BATCH.fetch_add(1, Ordering::Relaxed),
            calls: Vec::new(),
            wire_len: 0,
        }
    }
}

impl Batch {
    /// Records a call of `method` with `args` (a tuple, as for
    /// [`Proxy::call`]); its reply will decode as `R`. Nothing is sent yet.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the arguments do not encode;
    /// [`Error::MessageTooLarge`] when the batch would exceed the message
    /// size limit (nothing is recorded then).
    pub fn call<R: DeserializeOwned>(
        &mut self,
        method: &str,
        args: impl Serialize,
    ) -> Result<BatchCall<R>, Error> {
        self.call_named(Text::from(method), args)
    }

    /// As [`Batch::call`], with the method name as [`Text`] (generated
    /// batches pass static names).
    ///
    /// # Errors
    ///
    /// As [`Batch::call`].
    #[doc(hidden)]
    pub fn call_named<R: DeserializeOwned>(
        &mut self,
        method: Text,
        args: impl Serialize,
    ) -> Result<BatchCall<R>, Error> {
        let args = self.proxy.encode(&args)?;
        // A method name and an argument list cost a few bytes of framing.
        let wire_len = self.wire_len + args.wire_len() + method.as_str().len() + 10;
        let max = self.proxy.max_message_size();
        if wire_len > max {
            return Err(Error::MessageTooLarge { size: wire_len, max });
        }
        self.wire_len = wire_len;
        self.calls.push((method, args));
        Ok(BatchCall { serial: self.serial, index: self.calls.len() - 1, returns: PhantomData })
    }

    /// How many calls are recorded.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is recorded.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Sends the calls in one message and waits for all their replies, which
    /// come back in one message. An empty batch sends nothing.
    ///
    /// # Errors
    ///
    /// As [`Proxy::call`], for the batch as a whole (connecting, the
    /// timeout, a broken connection, an unknown object). The calls' own
    /// errors are read from the results.
    pub async fn run(self) -> Result<BatchResults, Error> {
        let methods: Vec<Text> = self.calls.iter().map(|(method, _)| method.clone()).collect();
        if self.calls.is_empty() {
            return Ok(BatchResults { serial: self.serial, methods, replies: Vec::new() });
        }
        let (daemon, args) = self.request().await?;
        let reply = daemon.call_encoded(Text::from_static(BATCH_METHOD), args, self.proxy.timeout()).await?;
        let replies: Vec<Reply> = reply
            .decode()
            .map_err(|e| Error::Protocol(format!("the daemon's reply to a batch does not decode: {e}")))?;
        let complete = replies.len() == methods.len() || replies.last().is_some_and(Result::is_err);
        if replies.len() > methods.len() || !complete {
            return Err(Error::Protocol(format!(
                "the daemon answered {} of the {} calls of a batch, and none failed",
                replies.len(),
                methods.len()
            )));
        }
        Ok(BatchResults { serial: self.serial, methods, replies })
    }

    /// Sends the calls in one message without waiting for them: the daemon
    /// runs them in order, stopping at the first that fails (it logs the
    /// failure).
    ///
    /// # Errors
    ///
    /// As [`Proxy::call_oneway`].
    pub async fn run_oneway(self) -> Result<(), Error> {
        if self.calls.is_empty() {
            return Ok(());
        }
        let (daemon, args) = self.request().await?;
        daemon.call_oneway_encoded(Text::from_static(BATCH_METHOD), args).await
    }

    /// The daemon's own object where the proxy's object lives, and the
    /// batch as the arguments of its `batch` method: the object's id there,
    /// then the calls.
    async fn request(&self) -> Result<(Proxy, Encoded), Error> {
        let (daemon, object) = self.proxy.daemon_object().await?;
        let args = self.proxy.encode(&(object, &self.calls))?;
        Ok((daemon, args))
    }
}

impl BatchResults {
    /// The result of `call`, decoded.
    ///
    /// # Errors
    ///
    /// The call's own error (as [`Proxy::call`] would return it);
    /// [`Error::NotRun`] when an earlier call of the batch failed;
    /// [`Error::Serialization`] when the reply does not decode as `R`, or
    /// `call` was recorded in another batch.
    pub fn get<R: DeserializeOwned>(&self, call: BatchCall<R>) -> Result<R, Error> {
        let method =
            self.methods.get(call.index).filter(|_| call.serial == self.serial).ok_or_else(|| {
                Error::Serialization(format!(
                    "call {} was recorded in another batch than this one",
                    call.index
                ))
            })?;
        match self.replies.get(call.index) {
            Some(Ok(encoded)) => encoded.decode::<R>().map_err(|e| {
                Error::Serialization(format!(
                    "the reply of {method:?} does not decode as {}: {e}",
                    std::any::type_name::<R>()
                ))
            }),
            Some(Err(remote)) => Err(Error::from(remote.clone())),
            None => {
                let failed_index = self.replies.len().saturating_sub(1);
                let failed_method =
                    self.methods.get(failed_index).map(|m| m.as_str().to_owned()).unwrap_or_default();
                Err(Error::NotRun {
                    index: call.index,
                    method: method.as_str().to_owned(),
                    failed_index,
                    failed_method,
                })
            }
        }
    }

    /// How many calls the batch had.
    pub fn len(&self) -> usize {
        self.methods.len()
    }

    /// Whether the batch had no calls.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// How many calls ran: all of them, unless one failed, which is then the
    /// last that ran.
    pub fn ran(&self) -> usize {
        self.replies.len()
    }

    /// Whether every call ran and succeeded.
    pub fn all_ok(&self) -> bool {
        self.replies.len() == self.methods.len() && self.replies.iter().all(Result::is_ok)
    }
}

/// What awaiting a generated `<Type>Batch` runs.
#[doc(hidden)]
pub type BatchRun = std::pin::Pin<Box<dyn std::future::Future<Output = Result<BatchResults, Error>> + Send>>;

/// Runs `batch`, boxed, for a generated `<Type>Batch`'s `IntoFuture`.
#[doc(hidden)]
pub fn run_boxed(batch: Batch) -> BatchRun {
    Box::pin(batch.run())
}
