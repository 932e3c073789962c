//! The time client: connects to the time server, reads what it sends (up to
//! 1024 bytes, until the server closes) and prints it.
//!
//! ```text
//! cargo run --example time_server                 # terminal 1
//! cargo run --example time_client [-- <address>]  # terminal 2; default 127.0.0.1:9999
//! Time connection server:Mon Nov 24 22:17:03 2025 UTC
//! ```

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The seed's port.
const DEFAULT_ADDRESS: &str = "127.0.0.1:9999";

/// The most the client reads, as the seed's `recv(1024)`.
const MAX_REPLY: u64 = 1024;

/// How long the client waits for the server.
const PATIENCE: Duration = Duration::from_secs(10);

/// Connects to the time server, reads what it sends (up to 1024 bytes, until
/// it closes) and prints it.
#[derive(Debug, Parser)]
#[command(name = "time_client")]
struct Cli {
    /// The time server's address.
    #[arg(value_name = "HOST:PORT", default_value = DEFAULT_ADDRESS)]
    address: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { address } = Cli::parse();
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
