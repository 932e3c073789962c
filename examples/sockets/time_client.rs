//! The time client: connects to the time server, reads what it sends (up to
//! 1024 bytes, until the server closes) and prints it.
//!
//! ```text
//! cargo run --example time_server                 # terminal 1
//! cargo run --example time_client [-- <address>]  # terminal 2; default 127.0.0.1:9999
//! Time connection server:Mon Nov 24 22:17:03 2025 UTC
//! ```

#[allow(dead_code)]
#[path = "../common/flags.rs"]
mod flags;

use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The seed's port.
const DEFAULT_ADDRESS: &str = "127.0.0.1:9999";

/// The most the client reads, as the seed's `recv(1024)`.
const MAX_REPLY: u64 = 1024;

const USAGE: &str = "usage: time_client [<host:port>]   (default 127.0.0.1:9999)";

/// How long the client waits for the server.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = flags::Flags::parse(USAGE, &[], &[])?;
    let address = match flags.positional() {
        [] => DEFAULT_ADDRESS.to_owned(),
        [address] => address.clone(),
        _ => anyhow::bail!("{USAGE}"),
    };
    let exchange = async {
        let stream =
            TcpStream::connect(&address).await.with_context(|| format!("cannot connect to {address}"))?;
        let mut reply = Vec::new();
        stream.take(MAX_REPLY).read_to_end(&mut reply).await.context("reading the time")?;
        anyhow::Ok(reply)
    };
    let reply = tokio::time::timeout(PATIENCE, exchange)
        .await
        .with_context(|| format!("{address} did not answer in {PATIENCE:?}"))??;
    println!("Time connection server:{}", String::from_utf8_lossy(&reply));
    Ok(())
}
