//! Names that follow their server's life: registers `--count` objects as
//! `<prefix>.0`, `<prefix>.1`, … with the daemon's lease, and serves them.
//!
//! ```text
//! rmi-naming                                                  # terminal 1
//! cargo run --example leased_server -- --count 100 --ttl 2    # terminal 2
//! rmi-naming list example.leased.                             # terminal 3: 100 names
//! kill -9 <pid of leased_server>; sleep 3
//! rmi-naming list example.leased.                             # none: the lease ended
//! ```
//!
//! Ctrl-C removes the names at once; a kill (or a freeze, or a lost
//! network) removes them one TTL later.

mod interface;
// Only its serving until Ctrl-C.
#[allow(dead_code)]
#[path = "../common/serve.rs"]
mod serve;

use std::time::Duration;

use clap::Parser;
use interface::{Greeting, GreetingObject};

struct GreetingMaker(usize);

impl Greeting for GreetingMaker {
    fn welcome_message(&self, name: String) -> String {
        format!("Hi welcome {name}, from object {}", self.0)
    }
}

/// Registers COUNT greeting objects with the daemon's lease, prints its
/// process id and serves until Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "leased_server")]
struct Cli {
    /// How many objects to register.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// The names' prefix: names are <PREFIX>.0, <PREFIX>.1, ...
    #[arg(long, default_value = "example.leased")]
    prefix: String,
    /// The lease's TTL in seconds (1 to 3600): how long the names outlive a
    /// killed server.
    #[arg(long, default_value_t = rmi::DEFAULT_LEASE_TTL.as_secs())]
    ttl: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let daemon = rmi::Daemon::builder()?.lease_ttl(Duration::from_secs(cli.ttl)).bind("127.0.0.1:0").await?;
    for i in 0..cli.count {
        daemon.register_named(GreetingObject(GreetingMaker(i)), &format!("{}.{i}", cli.prefix)).await?;
    }
    let lease = daemon.lease().await?;
    println!(
        "Registered {} names as {}.* with lease {:x} (TTL {} s); pid {}",
        cli.count,
        cli.prefix,
        lease.id(),
        cli.ttl,
        std::process::id()
    );
    serve::serve_until_ctrl_c(&daemon).await
}
