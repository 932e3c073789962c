//! Helpers for rmi's own tests (and anyone testing rmi's defences): a man
//! in the middle that can replay, reorder, drop or alter frames. Not part
//! of the API.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest frame the relay passes on (it is for honest clients' frames).
const MAX_RELAYED: usize = 64 << 20;

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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let Ok(upstream) = TcpStream::connect(server).await else { return };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
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
    });
    Ok(addr)
}
