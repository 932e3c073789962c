//! The file server: a plain TCP server (no rmi) that sends a file to every
//! client that greets it, framed so the client can check it (see
//! `transfer.rs`: a size header, the bytes in chunks, a SHA-256 digest).
//!
//! ```text
//! cargo run --example file_server -- <file> [--bind 127.0.0.1:60000]   # terminal 1
//! cargo run --example file_client [-- --connect 127.0.0.1:60000 --out received.txt]  # terminal 2
//! ```
//!
//! It prints `File server listening on <address>` first (with the real port
//! when bound to port 0), then for each client `Got a connection from
//! <peer>` and, once sent, `Sent <file> to <peer>: <size> bytes, SHA-256
//! <hex>`. Each client is served on a task of its own, so several download
//! at once; a client that goes away mid-transfer ends only its own task
//! (logged on stderr). The file is opened afresh for each client, so it may
//! be replaced between transfers. Stop it with Ctrl-C.

mod transfer;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::block_in_place;

/// The seed's port.
const DEFAULT_ADDRESS: &str = "127.0.0.1:60000";

/// How long a client may take to greet the server.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain TCP server (no rmi) that sends FILE to every client that greets
/// it, framed so that the client can check it: its size, its bytes in 64 KiB
/// chunks, then its SHA-256. Each client is served on a task of its own; the
/// file is opened afresh for each. Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "file_server")]
struct Cli {
    /// The file to send.
    file: PathBuf,

    /// Where to listen, as host:port; port 0 picks a free one (the first line
    /// says which).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDRESS)]
    bind: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file: Arc<Path> = cli.file.into();
    let size = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?.len();
    let address = cli.bind.as_str();
    let listener = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    println!("File server listening on {}", listener.local_addr()?);
    println!("Serving {} ({size} bytes)", file.display());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    println!("Got a connection from {peer}");
                    let file = file.clone();
                    tokio::spawn(async move {
                        match serve(stream, peer, &file).await {
                            Ok((size, digest)) => println!(
                                "Sent {} to {peer}: {size} bytes, SHA-256 {}",
                                file.display(),
                                transfer::hex(&digest)
                            ),
                            Err(e) => eprintln!("transfer to {peer} failed: {e:#}"),
                        }
                    });
                }
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

/// One client: checks its greeting, sends the file; returns its size and
/// digest.
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    file: &Path,
) -> anyhow::Result<(u64, [u8; transfer::DIGEST_LEN])> {
    let mut greeting = [0; transfer::GREETING.len()];
    tokio::time::timeout(GREETING_TIMEOUT, stream.read_exact(&mut greeting))
        .await
        .context("no greeting in time")?
        .context("reading the greeting")?;
    if greeting != transfer::GREETING {
        bail!("{peer} said {:?}, not {:?}", String::from_utf8_lossy(&greeting), "HelloServer!");
    }
    // Disk reads block: they run with `block_in_place`, which lets the
    // runtime move its other tasks to another thread meanwhile.
    let mut source = block_in_place(|| std::fs::File::open(file))
        .with_context(|| format!("opening {}", file.display()))?;
    let size = source.metadata()?.len();
    let mut out = BufWriter::with_capacity(transfer::CHUNK, stream);
    out.write_all(&size.to_be_bytes()).await?;
    let mut hasher = transfer::hasher();
    let mut chunk = vec![0; transfer::CHUNK];
    let mut left = size;
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = block_in_place(|| source.read(&mut chunk[..want]))?;
        if n == 0 {
            bail!("{} shrank while it was being sent", file.display());
        }
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n]).await.context("sending")?;
        left -= n as u64;
    }
    let digest = transfer::finish(hasher);
    out.write_all(&digest).await.context("sending the digest")?;
    out.shutdown().await.context("closing")?;
    Ok((size, digest))
}
