//! Serves the tarpc `World` service on an rmi daemon and registers it in the
//! name server as example.tarpc.world. Stop it with Ctrl-C.
//!
//! `cargo run -p rmi-tarpc-example --bin tarpc_server [ADDRESS]` (default
//! 127.0.0.1:0); the `RMI_*` variables give the name server, the key and TLS.

use anyhow::Context;
use rmi_tarpc_example::{NAME, serve_world};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let daemon = rmi::Daemon::bind(&address).await?;
    let uri = serve_world(&daemon)?;
    let ns = rmi::locate_ns(None).await.context("the example needs a name server (run rmi-naming)")?;
    ns.register(NAME, &uri).await?;
    println!("Ready. tarpc service {NAME} = {uri}");
    tokio::select! {
        served = daemon.serve() => served?,
        _ = tokio::signal::ctrl_c() => daemon.shutdown(),
    }
    let _ = ns.remove(NAME).await;
    Ok(())
}
