//! Helpers for rmi's own tests (and anyone testing rmi's defences): a man
//! in the middle that can replay, reorder, drop or alter frames, or whole
//! runs of frames on an authenticated connection. Not part of the API.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, tcp};

/// Largest frame the relay passes on (it is for honest clients' frames).
const MAX_RELAYED: usize = 64 << 20;

/// Relays the next connection made to the returned address on to `server`,
/// flipping the bits of the byte at `offset` of what the client sends (as
/// a line would, or an attacker who cannot read it): under TLS, a record
/// that fails its check.
///
/// # Errors
///
/// When the relay cannot listen.
pub async fn bit_flipper(server: SocketAddr, offset: usize) -> std::io::Result<SocketAddr> {
    relay(server, move |mut client_read, mut server_write| async move {
        let mut seen = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(byte) = offset.checked_sub(seen).and_then(|at| buf.get_mut(..n)?.get_mut(at)) {
                *byte ^= 0xff;
            }
            seen += n;
            if server_write.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                break;
            }
        }
    })
    .await
}

/// Relays the next connection made to the returned address on to `server`:
/// what the server sends goes back untouched, and `forward` carries what
/// the client sends (from the client's reading half to the server's writing
/// half).
async fn relay<F, Fut>(server: SocketAddr, forward: F) -> std::io::Result<SocketAddr>
where
    F: FnOnce(tcp::OwnedReadHalf, tcp::OwnedWriteHalf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let Ok(upstream) = TcpStream::connect(server).await else { return };
        let (client_read, mut client_write) = client.into_split();
        let (mut server_read, server_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        forward(client_read, server_write).await;
    });
    Ok(addr)
}

/// Relays the next connection made to the returned address on to `server`,
/// reading what the client sends frame by frame (a `u32` length, then the
/// body); `forward(index, frame)` says which frames go on in its place
/// (index 0 is the client's first frame, its hello). What the server sends
/// goes back untouched.
///
/// # Errors
///
/// When the relay cannot listen.
pub async fn man_in_the_middle(
    server: SocketAddr,
    mut forward: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    relay(server, move |mut client_read, mut server_write| async move {
        for index in 0.. {
            let mut prefix = [0; 4];
            if client_read.read_exact(&mut prefix).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes(prefix) as usize;
            if len > MAX_RELAYED {
                return;
            }
            let mut frame = prefix.to_vec();
            frame.resize(4 + len, 0);
            if client_read.read_exact(frame.get_mut(4..).unwrap_or_default()).await.is_err() {
                return;
            }
            for out in forward(index, frame) {
                if server_write.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// As [`man_in_the_middle`], for a connection with a key, a whole run at a
/// time: the client's hello and key proof go through untouched, then its
/// frames are gathered up to and including each seal (see
/// [`crate::frame`]), and `forward(index, run)` says which bytes go on in
/// the run's place (index 0 is the first run after the handshake; `run` is
/// its data frames and its seal, as they were on the wire).
///
/// # Errors
///
/// When the relay cannot listen.
pub async fn man_in_the_middle_runs(
    server: SocketAddr,
    mut forward: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let mut run = Vec::new();
    let mut runs = 0;
    man_in_the_middle(server, move |index, frame| {
        if index < 2 {
            return vec![frame];
        }
        let is_seal = frame.get(crate::frame::LENGTH_PREFIX_LEN) == Some(&crate::frame::run::KIND_SEAL);
        run.extend_from_slice(&frame);
        if !is_seal {
            return vec![];
        }
        let out = forward(runs, std::mem::take(&mut run));
        runs += 1;
        out
    })
    .await
}
