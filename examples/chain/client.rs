//! The chain topology's client: sends `["hello"]` to link 1 and prints what
//! came back around the chain.
//!
//! ```text
//! cargo run --example chain_client [-- --correlation-id <id>]
//! Calling link 1 with correlation id chain-4242-1732488000123
//! Result=["passed on from 1", "passed on from 2", "passed on from 3", "complete at 1"]
//! ```
//!
//! The call runs inside `rmi::correlate`, so it carries a correlation id
//! (a fresh one from the clock and the process id, unless
//! `--correlation-id` gives one); each server prints it and carries it on
//! into its call to the next link, so the whole round shows one id.

// The client uses only the proxy half of the shared interface.
#[allow(dead_code)]
mod interface;
#[path = "../common/logging.rs"]
mod logging;

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use interface::{ChainProxy, link_name};

/// Sends ["hello"] to link 1 of the chain topology (found in the name server)
/// and prints what came back around the chain. The call carries a
/// correlation id, which every server of the chain prints.
#[derive(Debug, Parser)]
#[command(name = "chain_client")]
struct Cli {
    /// The correlation id the call carries around the chain (default: a
    /// fresh one, chain-<pid>-<milliseconds since 1970>).
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let cli = Cli::parse();
    let id = cli.correlation_id.unwrap_or_else(fresh_id);
    println!("Calling link 1 with correlation id {id}");
    let first = ChainProxy::new(format!("RMINAME:{}", link_name("1")))?;
    // Every call made inside carries the id; `?` twice: the id's own check,
    // then the call.
    let result = rmi::correlate(id, async { first.process(vec!["hello".to_owned()]).await }).await??;
    println!("Result={result:?}");
    Ok(())
}

/// An id no other run has: this process's id and the time.
fn fresh_id() -> String {
    // A clock before 1970 is a misconfigured machine: the pid still tells
    // runs apart.
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("chain-{}-{millis}", std::process::id())
}
