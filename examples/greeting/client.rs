//! The greeting client: calls the greeting object and prints its answer.
//!
//! ```text
//! cargo run --example greeting_client -- <URI> <name>
//! ```
//!
//! `<URI>` is what `greeting_server` printed, as `RMI:example.greeting@127.0.0.1:40123`.

// The client uses only the proxy half of the shared interface.
#[allow(dead_code)]
mod interface;

use anyhow::Context;
use interface::GreetingProxy;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: greeting_client <URI> <name>";
    let uri = args.next().context(usage)?;
    let name = args.next().context(usage)?;
    let greeting = GreetingProxy::new(uri.as_str())?;
    println!("{}", greeting.welcome_message(name).await?);
    Ok(())
}
