//! Calls to objects of a Pyro5 daemon (Python), named by `PYRO:` URIs:
//! Pyro5's protocol (version 502) with its json serializer.
//!
//! The arguments are serialized with serde into a JSON array (the
//! parameter tuple), the result decoded from JSON into the caller's type. A
//! Pyro5 exception arrives as a [`RemoteError`] whose message starts with
//! the Python exception's type (`ValueError: …`), with the remote traceback
//! as its chain. As a Pyro5 proxy, one connection carries one call at a
//! time (calls from several tasks take turns); a connection that failed is
//! dropped and the next call connects again.

use std::time::Duration;

use bytes::Bytes;
use rmi_core::net::Connection;
use rmi_core::pyro5::{Flags, Message, MessageType, Serializer, read_message};
use rmi_core::{Error, ObjectUri, RemoteError, RemoteErrorKind};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::proxy::Options;

/// A Pyro5 proxy's connection, made on its first call.
#[derive(Debug, Default)]
pub(crate) struct Pyro5Client {
    session: tokio::sync::Mutex<Option<Session>>,
}

#[derive(Debug)]
struct Session {
    connection: Connection,
    seq: u16,
}

fn protocol(what: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("Pyro5: {what}"))
}

/// The exception a Pyro5 daemon sent, as a remote error.
fn remote_exception(payload: &[u8]) -> Error {
    let value: Value = match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(e) => return protocol(format!("an exception that is not JSON: {e}")),
    };
    let class = value.get("__class__").and_then(Value::as_str).unwrap_or("Exception");
    let python_type = class.rsplit('.').next().unwrap_or(class);
    let message = match value.get("args").and_then(Value::as_array).map(Vec::as_slice) {
        Some([Value::String(one)]) => one.clone(),
        Some([]) | None => String::new(),
        Some(args) => args
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let traceback: Vec<String> = value
        .pointer("/attributes/_pyroTraceback")
        .and_then(Value::as_array)
        .map(|lines| lines.iter().filter_map(Value::as_str).map(|l| l.trim_end().to_owned()).collect())
        .unwrap_or_default();
    let text = if message.is_empty() { python_type.to_owned() } else { format!("{python_type}: {message}") };
    let kind = match class {
        // What a Pyro5 daemon raises for a method it does not expose.
        "builtins.AttributeError" => RemoteErrorKind::MethodNotFound,
        "Pyro5.errors.DaemonError" if message.contains("unknown object") => RemoteErrorKind::ObjectNotFound,
        _ => RemoteErrorKind::Application,
    };
    let error = RemoteError::with_chain(kind, text, traceback);
    match kind {
        RemoteErrorKind::MethodNotFound => Error::MethodNotFound(error),
        RemoteErrorKind::ObjectNotFound => Error::ObjectNotFound(error),
        _ => Error::Remote(error),
    }
}

impl Session {
    async fn open(target: &ObjectUri, options: &Options) -> Result<Session, Error> {
        let location = &target.location;
        let connection = tokio::time::timeout(options.connect_timeout, Connection::connect(location))
            .await
            .map_err(|_| Error::Timeout(options.connect_timeout))?
            .map_err(|source| Error::Connect {
                address: location.to_string(),
                source: std::sync::Arc::new(source),
            })?;
        let mut connection = match &options.tls {
            Some(tls) => tls.connect(connection, location).await.map_err(Error::from)?,
            None => connection,
        };
        let hello = json!({ "handshake": "hello", "object": target.object });
        let connect =
            Message::new(MessageType::Connect, Serializer::Json, Flags::default(), 0, json_bytes(&hello));
        send(&mut connection, &connect, options.max_message_size).await?;
        let limit = options.max_message_size.min(rmi_core::pyro5::PYRO5_MAX_MESSAGE);
        let answer = read_message(&mut connection, limit).await.map_err(protocol)?;
        match answer.header.kind {
            MessageType::ConnectOk => Ok(Session { connection, seq: 0 }),
            MessageType::ConnectFail => {
                let why: String = serde_json::from_slice(&answer.payload)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&answer.payload).into_owned());
                let error =
                    RemoteError::new(RemoteErrorKind::Refused, format!("the Pyro5 daemon refused: {why}"));
                Err(if why.contains("unknown object") {
                    Error::ObjectNotFound(error)
                } else {
                    Error::Remote(error)
                })
            }
            other => Err(protocol(format!("expected CONNECTOK, got {other:?}"))),
        }
    }

    async fn invoke(
        &mut self,
        object: &str,
        method: &str,
        params: Vec<Value>,
        oneway: bool,
        max: usize,
    ) -> Result<Value, Error> {
        self.seq = self.seq.wrapping_add(1);
        let call = json!({ "object": object, "method": method, "params": params, "kwargs": {} });
        let flags = if oneway { Flags::ONEWAY } else { Flags::default() };
        let request = Message::new(MessageType::Invoke, Serializer::Json, flags, self.seq, json_bytes(&call));
        send(&mut self.connection, &request, max).await?;
        if oneway {
            return Ok(Value::Null);
        }
        let reply = read_message(&mut self.connection, max.min(rmi_core::pyro5::PYRO5_MAX_MESSAGE))
            .await
            .map_err(protocol)?;
        if reply.header.kind != MessageType::Result {
            return Err(protocol(format!("expected RESULT, got {:?}", reply.header.kind)));
        }
        if reply.header.seq != self.seq {
            return Err(protocol(format!(
                "a reply to call {} where {} was awaited",
                reply.header.seq, self.seq
            )));
        }
        if reply.header.serializer != Serializer::Json as u8 {
            return Err(protocol(format!("a reply in serializer {}, not json", reply.header.serializer)));
        }
        if reply.header.flags.contains(Flags::EXCEPTION) {
            return Err(remote_exception(&reply.payload));
        }
        serde_json::from_slice(&reply.payload)
            .map_err(|e| protocol(format!("a result that is not JSON: {e}")))
    }
}

fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string().into_bytes())
}

async fn send(connection: &mut Connection, message: &Message, max: usize) -> Result<(), Error> {
    let bytes = message.encode(max).map_err(|e| Error::MessageTooLarge { size: e.to_string().len(), max })?;
    connection.write_all(&bytes).await.map_err(|e| Error::ConnectionLost(e.to_string()))?;
    connection.flush().await.map_err(|e| Error::ConnectionLost(e.to_string()))
}

/// The arguments as Pyro5's positional parameters: the tuple as a JSON
/// array (`()` none, a lone value one).
pub(crate) fn params(args: &impl serde::Serialize) -> Result<Vec<Value>, Error> {
    match serde_json::to_value(args) {
        Ok(Value::Array(params)) => Ok(params),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(one) => Ok(vec![one]),
        Err(e) => Err(Error::Serialization(format!("the arguments as JSON: {e}"))),
    }
}

impl Pyro5Client {
    /// Calls `method` of `target` with `params`, within `timeout`.
    pub(crate) async fn call(
        &self,
        target: &ObjectUri,
        options: &Options,
        (method, params, oneway): (&str, Vec<Value>, bool),
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let work = async {
            let mut session = self.session.lock().await;
            if session.is_none() {
                *session = Some(Session::open(target, options).await?);
            }
            let Some(open) = session.as_mut() else { return Err(protocol("no connection")) };
            let outcome = open.invoke(&target.object, method, params, oneway, options.max_message_size).await;
            if matches!(
                outcome,
                Err(Error::Protocol(_) | Error::ConnectionLost(_) | Error::MessageTooLarge { .. })
            ) {
                // The connection's state is unknown now: the next call starts afresh.
                *session = None;
            }
            outcome
        };
        match timeout {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Its reply may still come on that connection: the next call
                    // connects afresh.
                    *self.session.lock().await = None;
                    Err(Error::Timeout(limit))
                }
            },
            None => work.await,
        }
    }
}
