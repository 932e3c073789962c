//! A connection as a stream and sink of messages: tarpc's transport shape.
//!
//! [`Transport`] reads frames (see [`crate::frame`]), checks each run's seal
//! when the connection is authenticated, and decodes postcard messages; it
//! encodes and queues messages, coalescing small ones, and writes them with
//! vectored writes. It implements `Stream<Item = Result<In, _>>` and
//! `Sink<Out>`, so it plugs into tarpc's client and `BaseChannel` as it is.
//!
//! [`connect`] and [`accept`] run the handshake on a fresh connection and
//! return the transport.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{Sink, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Key, Session};
use crate::frame::{FrameReader, FrameWriter, TransportError, decode_frame};
use crate::handshake::{client_handshake, server_handshake};

/// Queued bytes beyond which `poll_ready` writes before taking more: enough
/// to coalesce many small frames into one write, small enough to bound the
/// memory a slow peer can pin.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// A message stream and sink over one connection. `In` is what arrives,
/// `Out` what is sent.
pub struct Transport<IO, In, Out> {
    io: IO,
    reader: FrameReader,
    writer: FrameWriter,
    max_message: usize,
    /// Set once reading ended (end of stream or an error): a broken stream
    /// is not read again.
    read_done: bool,
    _types: PhantomData<fn(Out) -> In>,
}

impl<IO, In, Out> fmt::Debug for Transport<IO, In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("authenticated", &self.writer.is_sealed())
            .field("max_message", &self.max_message)
            .field("queued", &self.writer.queued())
            .finish_non_exhaustive()
    }
}

impl<IO, In, Out> Transport<IO, In, Out> {
    /// A transport over a connection whose handshake is done: `session` is
    /// what the handshake returned; messages over `max_message_size` bytes
    /// are refused both ways.
    pub fn new(io: IO, session: Option<Session>, max_message_size: usize) -> Self {
        let (sealer, opener) = session.map(Session::split).unzip();
        Self {
            io,
            reader: FrameReader::new(max_message_size, opener),
            writer: FrameWriter::new(max_message_size, sealer),
            max_message: max_message_size,
            read_done: false,
            _types: PhantomData,
        }
    }

    /// The underlying connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Whether frames are authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.writer.is_sealed()
    }
}

/// Runs the client's handshake on `io` and returns the transport.
///
/// # Errors
///
/// The handshake's [`TransportError`]: authentication, version, I/O.
pub async fn connect<IO, In, Out>(
    mut io: IO,
    key: Option<&Key>,
    max_message_size: usize,
) -> Result<Transport<IO, In, Out>, TransportError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let session = client_handshake(&mut io, key).await?;
    Ok(Transport::new(io, session, max_message_size))
}

/// Runs the server's handshake on `io` and returns the transport.
///
/// # Errors
///
/// The handshake's [`TransportError`]: authentication, version, I/O.
pub async fn accept<IO, In, Out>(
    mut io: IO,
    key: Option<&Key>,
    max_message_size: usize,
) -> Result<Transport<IO, In, Out>, TransportError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let session = server_handshake(&mut io, key).await?;
    Ok(Transport::new(io, session, max_message_size))
}

impl<IO, In, Out> Stream for Transport<IO, In, Out>
where
    IO: AsyncRead + Unpin,
    In: DeserializeOwned,
{
    type Item = Result<In, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.read_done {
            return Poll::Ready(None);
        }
        let item = match ready!(this.reader.poll_frame(Pin::new(&mut this.io), cx)) {
            None => None,
            Some(Ok(payload)) => Some(decode_frame(payload)),
            Some(Err(e)) => Some(Err(e)),
        };
        this.read_done = !matches!(item, Some(Ok(_)));
        Poll::Ready(item)
    }
}

impl<IO, In, Out> Sink<Out> for Transport<IO, In, Out>
where
    IO: AsyncWrite + Unpin,
    Out: Serialize,
{
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let this = self.get_mut();
        if this.writer.queued() >= WRITE_HIGH_WATER {
            ready!(this.writer.poll_flush(Pin::new(&mut this.io), cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Out) -> Result<(), TransportError> {
        let this = self.get_mut();
        this.writer.push(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let this = self.get_mut();
        this.writer.poll_flush(Pin::new(&mut this.io), cx).map_err(Into::into)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let this = self.get_mut();
        ready!(this.writer.poll_flush(Pin::new(&mut this.io), cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests;
