//! Connections and listeners over TCP or Unix sockets, chosen by a
//! [`Location`], in plaintext or under TLS (see [`crate::tls`]).
//!
//! Every TCP connection gets `TCP_NODELAY`: calls are small and latency
//! matters more than packet count (writes are coalesced by the transport).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream, tcp, unix};

use crate::tls::TlsStream;
use crate::uri::{HostPort, Location};

/// A connection, TCP or Unix, plaintext or TLS.
#[derive(Debug)]
pub enum Connection {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
    /// A TCP or Unix connection under TLS, its handshake done.
    Tls(TlsStream),
}

/// A plaintext socket used through `&self`: what a TLS connection runs on.
#[derive(Debug)]
pub enum Socket {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
}

macro_rules! on_socket {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Socket::Tcp($s) => $e,
            Socket::Unix($s) => $e,
        }
    };
}

impl Socket {
    /// Reads what the socket holds now, without waiting. A read that
    /// fills less than `buf` took all there was: the socket's readiness is
    /// cleared then (as tokio's own reads do, with the readiness seen
    /// before the read, so that data arriving meanwhile still wakes the
    /// reader), which saves the read that would only say `WouldBlock`.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let mut short = None;
        let read = on_socket!(self, s => s.try_io(tokio::io::Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(s)).read(buf)?;
            if n > 0 && n < buf.len() {
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }));
        match short {
            Some(n) => Ok(n),
            None => read,
        }
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // One piece goes out with send(2), as in `poll_write_vectored`.
        match bufs {
            [one] => on_socket!(self, s => s.try_write(one)),
            _ => on_socket!(self, s => s.try_write_vectored(bufs)),
        }
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket!(self, s => s.poll_read_ready(cx))
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket!(self, s => s.poll_write_ready(cx))
    }

    async fn writable(&self) -> io::Result<()> {
        on_socket!(self, s => s.writable().await)
    }

    fn ready_now(&self) -> Option<io::Result<tokio::io::Ready>> {
        use futures::FutureExt;
        on_socket!(self, s => s.ready(tokio::io::Interest::READABLE).now_or_never())
    }

    fn shutdown(&self, how: std::net::Shutdown) {
        let _ = on_socket!(self, s => socket2::SockRef::from(s).shutdown(how));
    }

    /// Ends the sending direction; errors (a socket already gone) are ignored.
    pub(crate) fn shutdown_write(&self) {
        self.shutdown(std::net::Shutdown::Write);
    }

    fn peer(&self) -> String {
        match self {
            Socket::Tcp(s) => s.peer_addr().map_or_else(|_| "unknown peer".into(), |a| a.to_string()),
            Socket::Unix(_) => "unix socket peer".into(),
        }
    }
}

impl Connection {
    /// Connects to `location`, trying each address a host name resolves to.
    ///
    /// # Errors
    ///
    /// The last connection error, or a resolution error.
    pub async fn connect(location: &Location) -> io::Result<Self> {
        match location {
            Location::Tcp(HostPort { host, port }) => {
                let stream = TcpStream::connect((host.to_lookup_string(), *port)).await?;
                stream.set_nodelay(true)?;
                Ok(Connection::Tcp(stream))
            }
            Location::Unix(path) => Ok(Connection::Unix(UnixStream::connect(path).await?)),
        }
    }

    /// Splits the connection into halves that separate tasks can own.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Connection::Tls(s) => {
                let (r, w) = s.split();
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
            Connection::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Connection::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }

    /// A short description of the peer, for logs.
    pub fn peer(&self) -> String {
        match self {
            Connection::Tcp(s) => s.peer_addr().map_or_else(|_| "unknown peer".into(), |a| a.to_string()),
            Connection::Unix(_) => "unix socket peer".into(),
            Connection::Tls(s) => s.socket().peer(),
        }
    }

    /// The peer's verified certificate identity, on a TLS connection whose
    /// peer presented one.
    pub fn peer_identity(&self) -> Option<&std::sync::Arc<crate::tls::PeerIdentity>> {
        match self {
            Connection::Tls(s) => s.identity(),
            _ => None,
        }
    }

    /// Whether the connection runs under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Connection::Tls(_))
    }

    /// The plaintext socket, for TLS to run on; a TLS connection gives
    /// itself back.
    pub(crate) fn into_socket(self) -> Result<Socket, Self> {
        match self {
            Connection::Tcp(s) => Ok(Socket::Tcp(s)),
            Connection::Unix(s) => Ok(Socket::Unix(s)),
            tls @ Connection::Tls(_) => Err(tls),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Connection::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Connection::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Connection::Tls($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One piece goes out with send(2): cheaper in the kernel than
        // writev(2), which imports an iovec through the VFS layer.
        match bufs {
            [one] => delegate!(self, s => s.poll_write(cx, one)),
            _ => delegate!(self, s => s.poll_write_vectored(cx, bufs)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The reading half of a [`Connection`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Of a TCP connection.
    Tcp(tcp::OwnedReadHalf),
    /// Of a Unix socket connection.
    Unix(unix::OwnedReadHalf),
    /// Of a TLS connection.
    Tls(TlsStream),
}

impl ReadHalf {
    /// The readiness the runtime has already recorded for the socket, if it
    /// is ready now; no system call.
    pub fn ready_now(&self) -> Option<io::Result<tokio::io::Ready>> {
        use futures::FutureExt;
        let interest = tokio::io::Interest::READABLE;
        match self {
            ReadHalf::Tcp(s) => s.ready(interest).now_or_never(),
            ReadHalf::Unix(s) => s.ready(interest).now_or_never(),
            ReadHalf::Tls(s) => s.socket().ready_now(),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Unix(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Tls(s) => s.poll_read_plain(cx, buf),
        }
    }
}

/// The writing half of a [`Connection`], written through `&self` so that
/// many tasks can share it.
#[derive(Debug)]
pub enum WriteHalf {
    /// Of a TCP connection.
    Tcp(tcp::OwnedWriteHalf),
    /// Of a Unix socket connection.
    Unix(unix::OwnedWriteHalf),
    /// Of a TLS connection.
    Tls(TlsStream),
}

impl WriteHalf {
    /// Writes what the socket takes now, without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the socket is full, or the socket's error.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // One piece goes out with send(2), as in `poll_write_vectored`.
        match (self, bufs) {
            (WriteHalf::Tcp(s), [one]) => s.try_write(one),
            (WriteHalf::Unix(s), [one]) => s.try_write(one),
            (WriteHalf::Tcp(s), _) => s.try_write_vectored(bufs),
            (WriteHalf::Unix(s), _) => s.try_write_vectored(bufs),
            (WriteHalf::Tls(s), _) => s.try_write_plain(bufs),
        }
    }

    /// Writes what the connection holds below the caller's bytes (TLS
    /// records encrypted and not yet taken by the socket); whether nothing
    /// is left. Plaintext sockets hold nothing.
    ///
    /// # Errors
    ///
    /// The socket's error.
    #[inline]
    pub fn flush_pending(&self) -> io::Result<bool> {
        match self {
            WriteHalf::Tls(s) => s.flush_pending(),
            _ => Ok(true),
        }
    }

    /// Bytes the connection holds below the caller's (TLS records not yet
    /// taken by the socket; about, with their overhead); 0 for plaintext.
    #[inline]
    pub fn pending_bytes(&self) -> usize {
        match self {
            WriteHalf::Tls(s) => s.pending_bytes(),
            _ => 0,
        }
    }

    /// Queues TLS's `close_notify` (the peer then sees a clean end); nothing
    /// for plaintext.
    pub fn close_notify(&self) {
        if let WriteHalf::Tls(s) = self {
            s.send_close_notify();
        }
    }

    /// Shuts the socket down both ways, at once: the peer sees the end, and
    /// so does this side's reading half. Errors (a socket already gone) are
    /// ignored.
    pub fn shutdown(&self) {
        let _ = match self {
            WriteHalf::Tcp(s) => socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Both),
            WriteHalf::Unix(s) => socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Both),
            WriteHalf::Tls(s) => {
                s.socket().shutdown(std::net::Shutdown::Both);
                Ok(())
            }
        };
    }

    /// Waits until the socket may take more bytes.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            WriteHalf::Tcp(s) => s.writable().await,
            WriteHalf::Unix(s) => s.writable().await,
            WriteHalf::Tls(s) => s.socket().writable().await,
        }
    }
}

/// Connections the kernel may hold for a listener before `accept` takes
/// them (capped by `net.core.somaxconn`): a burst of a thousand connects
/// must not wait on a short queue.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr`, with address reuse and [`LISTEN_BACKLOG`].
fn listen_tcp(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A listening socket, TCP or Unix.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix domain socket listener, with its path (removed on drop).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `location`. A TCP port of 0 picks a free port; a Unix socket
    /// file left over from an earlier run is replaced.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn bind(location: &Location) -> io::Result<Self> {
        match location {
            Location::Tcp(HostPort { host, port }) => Self::bind_tcp((host.to_lookup_string(), *port)).await,
            Location::Unix(path) => Self::bind_unix(path),
        }
    }

    /// Binds a TCP listener on `host:port` (port 0 for a free one).
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn bind_tcp(address: impl tokio::net::ToSocketAddrs) -> io::Result<Self> {
        let mut last = None;
        for addr in tokio::net::lookup_host(address).await? {
            match listen_tcp(addr) {
                Ok(listener) => return Ok(Listener::Tcp(listener)),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing")))
    }

    /// Binds a Unix socket at `path`, replacing a stale socket file.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub fn bind_unix(path: &Path) -> io::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if is_socket(&meta) => std::fs::remove_file(path)?,
            _ => {}
        }
        Ok(Listener::Unix(UnixListener::bind(path)?, path.to_path_buf()))
    }

    /// Where the listener is bound: with the real port when 0 was asked.
    ///
    /// # Errors
    ///
    /// When the socket cannot say.
    pub fn location(&self) -> io::Result<Location> {
        match self {
            Listener::Tcp(l) => Ok(Location::Tcp(l.local_addr()?.into())),
            Listener::Unix(_, path) => Ok(Location::Unix(path.clone())),
        }
    }

    /// Accepts the next connection (with `TCP_NODELAY` set).
    ///
    /// # Errors
    ///
    /// The accept error; most are transient (out of file descriptors, a
    /// connection reset before it was accepted).
    pub async fn accept(&self) -> io::Result<Connection> {
        match self {
            Listener::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                stream.set_nodelay(true)?;
                Ok(Connection::Tcp(stream))
            }
            Listener::Unix(l, _) => Ok(Connection::Unix(l.accept().await?.0)),
        }
    }
}

fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
