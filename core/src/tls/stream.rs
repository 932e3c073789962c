//! A TLS connection that one task reads while any task writes.
//!
//! tokio-rustls's stream is one object behind `&mut`; rmi's link reads on one
//! task and writes from many through `&self` (see [`crate::link`]). So once
//! tokio-rustls has done the handshake, the rustls state moves here, behind
//! a mutex, beside the socket: the reader decrypts what the socket has under
//! the lock, and a writer encrypts what it sends under the lock and hands
//! the records to the socket at once. The lock is held for one record's
//! work and one system call, never across an await.
//!
//! What rustls has encrypted and the socket did not take yet stays in
//! rustls's buffer (at most [`SEND_BUFFER`] bytes): [`TlsStream::flush_pending`]
//! says whether any is left, so that the link's flusher waits for the socket
//! rather than leaving records unsent.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::PeerIdentity;
use crate::net::Socket;

/// Ciphertext rustls may hold for the socket before a write takes no more
/// plaintext: enough for a burst of replies, bounded for a peer that stops
/// reading. Four records: a large write is sealed and handed to the socket
/// four records at a time. Measured, not derived: with 256 KiB (or 1 MiB) a
/// 10 MiB argument took a fifth to a half longer than with 16–64 KiB, the
/// sender being the bound (benches/README, "TLS").
pub(crate) const SEND_BUFFER: usize = 64 * 1024;

/// Rounds of reading records before a read returns what it has, so that a
/// large frame is read in few calls and a busy socket cannot hold the
/// reader forever.
const READ_ROUNDS: usize = 16;

/// Ciphertext read from the socket at once when the caller has room for
/// much plaintext. rustls reads at most 4 KiB per system call; a large frame
/// read that way costs a `recvfrom` and a wake-up per 4 KiB, so large reads
/// go through an inbox of this size (held while reads are large).
const INBOX: usize = 64 * 1024;
/// Room the caller must have for the inbox to be used: enough that the
/// plaintext of what fills it, and of a record rustls holds half of, fits.
const INBOX_WHEN_ROOM: usize = 32 * 1024;

/// A TLS connection whose handshake is done. Its reading half and its
/// writing half (see [`crate::net::Connection::into_split`]) share it.
#[derive(Clone)]
pub struct TlsStream {
    shared: Arc<Shared>,
}

struct Shared {
    socket: Socket,
    tls: Mutex<Session>,
    identity: Option<Arc<PeerIdentity>>,
    resumed: bool,
    /// Ciphertext rustls holds for the socket, about (the records' overhead
    /// is estimated): what the link counts as still queued.
    pending: AtomicUsize,
    /// Set when a read failed after it had returned data: the next read
    /// returns the error kept in `failure`.
    broken: AtomicBool,
    failure: Mutex<Option<io::Error>>,
}

/// rustls's state and the ciphertext read for it and not handed to it yet.
struct Session {
    conn: rustls::Connection,
    inbox: Inbox,
}

/// Ciphertext read from the socket ahead of rustls: `buf[start..end]` is
/// still to be handed over.
#[derive(Default)]
struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Hands what rustls takes of the inbox to it; how much it took.
    fn feed(&mut self, conn: &mut rustls::Connection) -> io::Result<usize> {
        let mut rest = self.buf.get(self.start..self.end).unwrap_or_default();
        let n = conn.read_tls(&mut rest)?;
        self.start += n;
        Ok(n)
    }

    /// Reads what the socket has now (up to `room` bytes, at most the
    /// inbox's size); `Ok(0)` at the end of the stream.
    fn fill(&mut self, socket: &Socket, room: usize) -> io::Result<usize> {
        debug_assert!(self.is_empty());
        if self.buf.is_empty() {
            self.buf = vec![0; INBOX];
        }
        let want = room.min(self.buf.len());
        let n = socket.try_read(self.buf.get_mut(..want).unwrap_or_default())?;
        self.start = 0;
        self.end = n;
        Ok(n)
    }

    /// Gives the memory back while the connection is idle.
    fn release(&mut self) {
        if self.is_empty() && !self.buf.is_empty() {
            *self = Inbox::default();
        }
    }

    /// Drops what is left to hand over, and the memory.
    fn release_all(&mut self) {
        *self = Inbox::default();
    }
}

/// Bytes a TLS record adds to its plaintext, at most (TLS 1.2's AES-GCM:
/// header, explicit nonce, tag).
const RECORD_OVERHEAD: usize = 29;
/// The most plaintext one record carries.
const RECORD_PAYLOAD: usize = 16 * 1024;

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("socket", &self.shared.socket)
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

/// Reads what the socket holds now, without waiting.
struct TryRead<'a>(&'a Socket);

impl Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

/// Writes what the socket takes now, without waiting.
struct TryWrite<'a>(&'a Socket);

impl Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    pub(crate) fn new(socket: Socket, mut tls: rustls::Connection) -> Self {
        tls.set_buffer_limit(Some(SEND_BUFFER));
        let identity = tls
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| Arc::new(PeerIdentity::from_der(leaf)));
        let resumed = tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        TlsStream {
            shared: Arc::new(Shared {
                socket,
                tls: Mutex::new(Session { conn: tls, inbox: Inbox::default() }),
                identity,
                resumed,
                pending: AtomicUsize::new(0),
                broken: AtomicBool::new(false),
                failure: Mutex::new(None),
            }),
        }
    }

    /// Whether the handshake resumed an earlier session (no certificate
    /// exchange: a [`super::ClientTls`] reconnecting to a server it knows).
    pub fn resumed(&self) -> bool {
        self.shared.resumed
    }

    /// The peer's verified identity, when it presented a certificate.
    pub fn identity(&self) -> Option<&Arc<PeerIdentity>> {
        self.shared.identity.as_ref()
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.shared.socket
    }

    /// The reading half and the writing half (both share the TLS state).
    pub(crate) fn split(self) -> (TlsStream, TlsStream) {
        (self.clone(), self)
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        // rustls's state is changed by whole operations; a panic elsewhere
        // while the lock was held leaves it usable.
        self.shared.tls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads plaintext into `buf`, reading and decrypting records as needed.
    pub(crate) fn poll_read_plain(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let socket = &self.shared.socket;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.shared.broken.load(Ordering::Relaxed) {
            let kept = self.shared.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            return Poll::Ready(Err(kept.unwrap_or_else(|| io::ErrorKind::BrokenPipe.into())));
        }
        loop {
            let mut session = self.lock();
            let Session { conn, inbox } = &mut *session;
            let mut read_any = false;
            let mut reads = 0;
            // Each turn hands rustls at least a byte or reads the socket once
            // (at most READ_ROUNDS times), so this ends; the bound is for safety.
            for _ in 0..READ_ROUNDS * (INBOX / 1024) {
                match take_plaintext(conn, buf) {
                    Taken::Some => read_any = true,
                    Taken::End => return Poll::Ready(Ok(())),
                    Taken::Failed(e) => return Poll::Ready(Err(e)),
                    Taken::None => {}
                }
                if buf.remaining() == 0 {
                    break;
                }
                let handed = if !inbox.is_empty() {
                    match inbox.feed(conn) {
                        // rustls takes nothing more (close_notify came): what
                        // followed it is dropped.
                        Ok(0) => {
                            inbox.release_all();
                            Ok(0)
                        }
                        other => other,
                    }
                } else if reads == READ_ROUNDS {
                    break;
                } else {
                    reads += 1;
                    if buf.remaining() >= INBOX_WHEN_ROOM {
                        match inbox.fill(socket, buf.remaining()) {
                            // The end: rustls is told, the next turn says whether it was clean.
                            Ok(0) => conn.read_tls(&mut io::empty()),
                            Ok(_) => inbox.feed(conn),
                            Err(e) => Err(e),
                        }
                    } else {
                        // Small reads: frames are small now, the inbox's memory goes back.
                        inbox.release();
                        conn.read_tls(&mut TryRead(socket))
                    }
                };
                match handed {
                    Ok(0) => {}
                    Ok(_) => {
                        if let Err(e) = conn.process_new_packets() {
                            // Tell the peer why (an alert), as far as the socket takes it.
                            let _ = self.push(conn);
                            return Poll::Ready(Err(tls_error(e)));
                        }
                        // An alert rustls answers with: sent now if the socket
                        // takes it (rustls holds a key update's answer until
                        // the next write).
                        let _ = self.push(conn);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Hand over what was read first; the error is the next read's.
                    Err(e) if read_any => {
                        *self.shared.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(e);
                        self.shared.broken.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if read_any {
                return Poll::Ready(Ok(()));
            }
            if let Taken::Some | Taken::End = take_plaintext(conn, buf) {
                return Poll::Ready(Ok(()));
            }
            if !inbox.is_empty() {
                // Bytes still to hand over: another turn, without waiting.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            drop(session);
            ready!(socket.poll_read_ready(cx))?;
        }
    }

    /// Encrypts what of `bufs` rustls takes now and writes what the socket
    /// takes now. `WouldBlock` when the socket holds earlier records still.
    pub(crate) fn try_write_plain(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut session = self.lock();
        let tls = &mut session.conn;
        if !self.push(tls)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = tls.writer().write_vectored(bufs)?;
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // Its buffer is empty (pushed above), and still rustls takes nothing.
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the TLS session takes no more data"));
        }
        let records = taken.div_ceil(RECORD_PAYLOAD);
        self.shared.pending.fetch_add(taken + records * RECORD_OVERHEAD, Ordering::Relaxed);
        self.push(tls)?;
        Ok(taken)
    }

    /// Writes records rustls holds; whether none is left.
    pub(crate) fn flush_pending(&self) -> io::Result<bool> {
        self.push(&mut self.lock().conn)
    }

    /// Ciphertext rustls holds for the socket, about.
    #[inline]
    pub(crate) fn pending_bytes(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Hands the records rustls holds to the socket: whether all were taken
    /// (`false`: the socket is full). Keeps [`TlsStream::pending_bytes`].
    fn push(&self, tls: &mut rustls::Connection) -> io::Result<bool> {
        let pending = &self.shared.pending;
        while tls.wants_write() {
            match tls.write_tls(&mut TryWrite(&self.shared.socket)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let left = pending.load(Ordering::Relaxed).saturating_sub(n);
                    pending.store(left, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        pending.store(0, Ordering::Relaxed);
        Ok(true)
    }

    /// Queues TLS's `close_notify` and writes it if the socket takes it.
    pub(crate) fn send_close_notify(&self) {
        let tls = &mut self.lock().conn;
        tls.send_close_notify();
        let _ = self.push(tls);
    }
}

enum Taken {
    Some,
    None,
    End,
    Failed(io::Error),
}

/// Moves decrypted plaintext into `buf`, copied straight from rustls's
/// buffer (no zeroing of `buf` first).
fn take_plaintext(tls: &mut rustls::Connection, buf: &mut ReadBuf<'_>) -> Taken {
    use std::io::BufRead;
    if buf.remaining() == 0 {
        return Taken::None;
    }
    let mut reader = tls.reader();
    let mut taken = 0;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            // What was taken first; the next read meets the same state.
            Err(_) if taken > 0 => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Taken::None,
            // The peer closed the socket without TLS's close_notify: for rmi, as
            // for plain TCP, the end (a frame cut short is caught by the framing).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Taken::End,
            Err(e) => return Taken::Failed(e),
        };
        if chunk.is_empty() {
            // close_notify: the end, once what came before it is taken.
            return if taken > 0 { Taken::Some } else { Taken::End };
        }
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(chunk.get(..n).unwrap_or_default());
        reader.consume(n);
        taken += n;
        if buf.remaining() == 0 {
            break;
        }
    }
    Taken::Some
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.poll_read_plain(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write_plain(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.shared.socket.poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.flush_pending()? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.shared.socket.poll_write_ready(cx))?;
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.send_close_notify();
        ready!(self.as_mut().poll_flush(cx))?;
        self.shared.socket.shutdown_write();
        Poll::Ready(Ok(()))
    }
}
