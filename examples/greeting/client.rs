//! The greeting client: asks your name and prints the greeting object's
//! answer.
//!
//! ```text
//! cargo run --example greeting_client               # finds example.greeting in the name server
//! cargo run --example greeting_client -- <URI> <name>   # without a name server
//! ```

// The client uses only the proxy half of the shared interface.
#[allow(dead_code)]
mod interface;

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Parser;
use interface::GreetingProxy;

/// Asks your name and prints the greeting object's answer.
///
/// Without arguments it asks for your name on stdin and finds the greeting
/// object in the name server (RMINAME:example.greeting); with a URI and a
/// name it calls that object directly, without a name server.
#[derive(Debug, Parser)]
#[command(name = "greeting_client")]
struct Cli {
    /// The greeting object's URI, as the server printed it (default:
    /// RMINAME:example.greeting, looked up in the name server).
    #[arg(requires = "name")]
    uri: Option<String>,

    /// The name to greet (default: asked on stdin).
    name: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (uri, name) = match (cli.uri, cli.name) {
        (Some(uri), Some(name)) => (uri, name),
        _ => {
            print!("What is your name? ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading your name")?;
            ("RMINAME:example.greeting".to_owned(), line.trim().to_owned())
        }
    };
    let greeting = GreetingProxy::new(uri.as_str())?;
    println!("{}", greeting.welcome_message(name).await?);
    Ok(())
}
