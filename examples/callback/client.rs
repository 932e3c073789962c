//! The callback client: starts a job on the server and prints its progress
//! as the server reports it. It passes the server a local object; the
//! server calls it back over the connection this client opened: no daemon,
//! no listener, no open port here (it works behind NAT).
//!
//! ```text
//! cargo run --example callback_client              # finds example.callback in the name server
//! cargo run --example callback_client -- <URI>     # without a name server
//! ```

#[allow(dead_code)]
mod interface;

use clap::Parser;
use interface::{JobsProxy, Progress, ProgressObject};
use rmi::Remote;

/// Prints what it hears.
struct Printer;

impl Progress for Printer {
    async fn report(&self, percent: u32, note: String) {
        println!("Progress: {percent:>3}% ({note})");
    }
}

/// Starts a job of 4 steps on the callback server and prints its progress as
/// the server reports it, through a local object passed with the call (no
/// daemon and no open port here).
#[derive(Debug, Parser)]
#[command(name = "callback_client")]
struct Cli {
    /// The server's URI, as it printed it; the default is looked up in the
    /// name server.
    #[arg(default_value = "RMINAME:example.callback")]
    uri: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let jobs = JobsProxy::new(cli.uri.as_str())?;
    println!("Starting a job of 4 steps");
    let summary = jobs.run(4, Remote::new(ProgressObject(Printer))).await?;
    println!("Job done: {summary}");
    Ok(())
}
