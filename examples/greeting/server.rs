//! The greeting server: hosts a greeting object and prints its URI.
//!
//! ```text
//! cargo run --example greeting_server [-- <bind-address>]   # default 127.0.0.1:0
//! ```
//!
//! Then, in another terminal, `cargo run --example greeting_client -- <URI> <name>`.
//! Stop it with Ctrl-C.

mod interface;

use interface::{Greeting, GreetingObject};

/// The implementation: it lives only in the server.
struct GreetingMaker;

impl Greeting for GreetingMaker {
    fn welcome_message(&self, name: String) -> String {
        format!("Hi welcome {name}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let daemon = rmi::Daemon::bind(&bind).await?;
    let uri = daemon.register(GreetingObject(GreetingMaker), Some("example.greeting"))?;
    println!("Ready. Object uri = {uri}");
    tokio::select! {
        served = daemon.serve() => served?,
        _ = tokio::signal::ctrl_c() => daemon.shutdown(),
    }
    Ok(())
}
