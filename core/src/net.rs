//! Connections and listeners over TCP or Unix sockets, chosen by a
//! [`Location`].
//!
//! Every TCP connection gets `TCP_NODELAY`: calls are small and latency
//! matters more than packet count (writes are coalesced by the transport).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream, tcp, unix};

use crate::uri::{HostPort, Location};

/// A connected socket, TCP or Unix.
#[derive(Debug)]
pub enum Connection {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
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
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Unix(s) => Pin::new(s).poll_read(cx, buf),
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
        }
    }

    /// Shuts the socket down both ways, at once: the peer sees the end, and
    /// so does this side's reading half. Errors (a socket already gone) are
    /// ignored.
    pub fn shutdown(&self) {
        let _ = match self {
            WriteHalf::Tcp(s) => socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Both),
            WriteHalf::Unix(s) => socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Both),
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
