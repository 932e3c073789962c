//! The greeting server: hosts a greeting object and registers it with the
//! name server as `example.greeting`.
//!
//! ```text
//! rmi-naming                                                # terminal 1 (cargo run -p rmi-naming)
//! cargo run --example greeting_server [-- <bind-address>]   # terminal 2; default 127.0.0.1:0
//! cargo run --example greeting_client                       # terminal 3
//! ```
//!
//! The name server is found as `rmi::locate_ns` finds it (RMI_NS_HOST /
//! RMI_NS_PORT, else a discovery broadcast). Without one, the server still
//! runs and prints its URI, which `greeting_client -- <URI> <name>` takes.
//! Stop it with Ctrl-C: it removes its name from the name server.

mod interface;
#[path = "../common/serve.rs"]
mod serve;

use clap::Parser;
use interface::{Greeting, GreetingObject};

/// The name clients look up.
const NAME: &str = "example.greeting";

/// The implementation: it lives only in the server.
struct GreetingMaker;

impl Greeting for GreetingMaker {
    fn welcome_message(&self, name: String) -> String {
        format!("Hi welcome {name}")
    }
}

/// Hosts a greeting object and registers it with the name server as
/// example.greeting (without a name server, clients need the URI it prints).
/// Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "greeting_server")]
struct Cli {
    #[command(flatten)]
    listen: serve::Listen,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve::serve_named(&cli.listen.bind, NAME, |daemon| {
        daemon.register(GreetingObject(GreetingMaker), Some(NAME))
    })
    .await
}
