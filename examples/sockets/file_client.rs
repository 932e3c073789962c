//! The file client: greets the file server, receives the file, checks its
//! SHA-256 digest, and writes it to a file (`received.txt` by default).
//!
//! ```text
//! cargo run --example file_server -- <file>    # terminal 1
//! cargo run --example file_client [-- --connect 127.0.0.1:60000 --out received.txt]   # terminal 2
//! Received received.txt: 1048576 bytes, SHA-256 2b3c…
//! ```
//!
//! The bytes go to `<out>.part` while they arrive, which is renamed to
//! `<out>` only when the size and the digest match: a broken transfer never
//! leaves a file that looks complete. A mismatch or a connection that
//! closes early is an error (exit status 1).

mod transfer;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::block_in_place;

/// The seed's port.
const DEFAULT_ADDRESS: &str = "127.0.0.1:60000";

/// How long the client waits for a connection or for the next bytes.
const PATIENCE: Duration = Duration::from_secs(30);

/// Greets the file server, receives its file, checks its size and SHA-256,
/// and writes it to --out. The bytes go to <OUT>.part while they arrive,
/// renamed to <OUT> only when both match; a mismatch or a transfer cut short
/// is an error (exit status 1).
#[derive(Debug, Parser)]
#[command(name = "file_client")]
struct Cli {
    /// The file server's address.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDRESS)]
    connect: String,

    /// Where to write the file.
    #[arg(long, value_name = "FILE", default_value = "received.txt")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { connect: address, out } = Cli::parse();
    let partial = PathBuf::from(format!("{}.part", out.display()));
    let received = receive(&address, &partial).await;
    let (size, digest) = match received {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &out).with_context(|| format!("renaming to {}", out.display()))?;
    println!("Received {}: {size} bytes, SHA-256 {}", out.display(), transfer::hex(&digest));
    Ok(())
}

/// Receives the file into `path`; returns its size and its checked digest.
async fn receive(address: &str, path: &std::path::Path) -> anyhow::Result<(u64, [u8; transfer::DIGEST_LEN])> {
    let mut stream = tokio::time::timeout(PATIENCE, TcpStream::connect(address))
        .await
        .with_context(|| format!("{address} did not answer in {PATIENCE:?}"))?
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.write_all(transfer::GREETING).await.context("sending the greeting")?;
    let mut stream = BufReader::with_capacity(transfer::CHUNK, stream);
    let mut header = [0; 8];
    patiently(stream.read_exact(&mut header)).await.context("reading the size")?;
    let size = u64::from_be_bytes(header);
    // Disk writes block: they run with `block_in_place`, which lets the
    // runtime move its other tasks to another thread meanwhile.
    let mut file = block_in_place(|| std::fs::File::create(path))
        .with_context(|| format!("creating {}", path.display()))?;
    let mut hasher = transfer::hasher();
    let mut chunk = vec![0; transfer::CHUNK];
    let mut left = size;
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = patiently(stream.read(&mut chunk[..want])).await?;
        if n == 0 {
            bail!("the server closed the connection {} bytes before the end of the file", left);
        }
        hasher.update(&chunk[..n]);
        block_in_place(|| file.write_all(&chunk[..n]))
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    let mut expected = [0; transfer::DIGEST_LEN];
    patiently(stream.read_exact(&mut expected)).await.context("reading the digest")?;
    let digest = transfer::finish(hasher);
    if digest != expected {
        bail!(
            "SHA-256 mismatch: the server sent {}, the bytes hash to {}",
            transfer::hex(&expected),
            transfer::hex(&digest)
        );
    }
    Ok((size, digest))
}

/// `io`, or an error if it takes longer than [`PATIENCE`].
async fn patiently<T>(io: impl Future<Output = std::io::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(PATIENCE, io).await.context("the server stopped sending")?.context("receiving")
}
