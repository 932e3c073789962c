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
use interface::GreetingProxy;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (uri, name) = match args.as_slice() {
        [uri, name] => (uri.clone(), name.clone()),
        [] => {
            print!("What is your name? ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading your name")?;
            ("RMINAME:example.greeting".to_owned(), line.trim().to_owned())
        }
        _ => anyhow::bail!("usage: greeting_client [<URI> <name>]"),
    };
    let greeting = GreetingProxy::new(uri.as_str())?;
    println!("{}", greeting.welcome_message(name).await?);
    Ok(())
}
