//! The autoproxy client: asks the factory for two thingies, uses them
//! through the proxies their references give, and drops them: the server
//! releases them at once.
//!
//! ```text
//! cargo run --example autoproxy_client              # finds example.autoproxy in the name server
//! cargo run --example autoproxy_client -- <URI>     # without a name server
//! ```

#[allow(dead_code)]
mod interface;

use std::time::{Duration, Instant};

use clap::Parser;
use interface::FactoryProxy;

/// Asks the autoproxy server's factory for two thingies, uses them through
/// their proxies, and drops them: the server releases them at once.
#[derive(Debug, Parser)]
#[command(name = "autoproxy_client")]
struct Cli {
    /// The factory's URI, as the server printed it; the default is looked up
    /// in the name server.
    #[arg(default_value = "RMINAME:example.autoproxy")]
    uri: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let factory = FactoryProxy::new(cli.uri.as_str())?;
    let first = factory.create("first".into()).await?.proxy();
    let second = factory.create("second".into()).await?.proxy();
    second.set_value(99).await?;
    for thingy in [&first, &second] {
        println!("Thingy {:?} has value {}", thingy.name().await?, thingy.value().await?);
    }
    println!("Alive in the server: {}", factory.alive().await?);
    drop((first, second));
    // The releases go out at once; the server drops the objects on reading them.
    let patience = Instant::now() + Duration::from_secs(5);
    let mut alive = factory.alive().await?;
    while alive > 0 && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(10)).await;
        alive = factory.alive().await?;
    }
    println!("Alive in the server after dropping them: {alive}");
    Ok(())
}
