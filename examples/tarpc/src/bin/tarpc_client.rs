//! Calls the tarpc `World` service through rmi: found by
//! `RMINAME:example.tarpc.world`, called with tarpc's generated client.
//!
//! `cargo run -p rmi-tarpc-example --bin tarpc_client [NAME]` prints the
//! greeting and a sum.

use rmi_tarpc_example::{NAME, WorldClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let who = std::env::args().nth(1).unwrap_or_else(|| "Ruvika".to_owned());
    let transport = rmi_tarpc::connect(format!("RMINAME:{NAME}")).await?;
    let client = WorldClient::new(tarpc::client::Config::default(), transport).spawn();
    println!("{}", client.hello(tarpc::context::current(), who).await?);
    println!("2 + 40 = {}", client.add(tarpc::context::current(), 2, 40).await?);
    Ok(())
}
