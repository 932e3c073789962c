//! The stream client: asks the stream server for the lines of a source and
//! prints them as they come, until the stream ends, `--take` lines are
//! printed, or Ctrl-C.
//!
//! ```text
//! cargo run --example stream_client                        # finds example.stream in the name server
//! cargo run --example stream_client -- --take 5            # the first five, then stop
//! cargo run --example stream_client -- --source words      # a file the server offers
//! cargo run --example stream_client -- <URI> --take 5      # without a name server
//! Prime 1: 2
//! Prime 2: 3
//! Prime 3: 5
//! Prime 4: 7
//! Prime 5: 11
//! ```
//!
//! `lines` returns an `rmi::Streaming<String>`: an async `Stream` of
//! `Result<String, rmi::Error>` that reads items as the server makes them,
//! at most a window (1 MiB) ahead of this loop. Stopping early is dropping
//! it: that cancels the call, and the server drops its producer within a
//! round trip. The client then exits with status 0; an error from the
//! server (an unknown source, a lost connection) ends it with status 1.
//! Piped into `head`, it stops when the pipe closes.

// The client uses only the proxy half of the shared interface.
#[allow(dead_code)]
mod interface;

use std::io::Write;

use clap::Parser;
use futures::StreamExt;
use interface::{LinesProxy, PRIMES};

/// Asks the stream server for the lines of a source and prints them as they
/// come, until the stream ends, --take lines are printed, or Ctrl-C; stopping
/// early drops the stream, which stops the server's producer.
#[derive(Debug, Parser)]
#[command(name = "stream_client")]
struct Cli {
    /// The stream server's URI, as it printed it; the default is looked up
    /// in the name server.
    #[arg(default_value = "RMINAME:example.stream")]
    uri: String,

    /// What to stream: "primes", or the name of a file the server offers
    /// (started with --file).
    #[arg(long, default_value = PRIMES)]
    source: String,

    /// Stop after N lines (default: read to the end).
    #[arg(long, value_name = "N")]
    take: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = LinesProxy::new(cli.uri.as_str())?;
    let mut lines = server.lines(cli.source).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut printed = 0u64;
    while cli.take.is_none_or(|take| printed < take) {
        let next = tokio::select! {
            next = lines.next() => next,
            _ = &mut ctrl_c => {
                eprintln!("Interrupted after {printed} lines");
                break;
            }
        };
        let Some(line) = next else { break };
        match writeln!(std::io::stdout(), "{}", line?) {
            Ok(()) => printed += 1,
            // Piped into `head`, which has had enough.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Dropping the stream cancels the call: the server stops producing.
    drop(lines);
    Ok(())
}
