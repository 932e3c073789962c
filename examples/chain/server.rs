//! One server of the chain topology: hosts link `<n>`, which passes messages
//! on to link `<next>`.
//!
//! ```text
//! rmi-naming                              # terminal 1
//! cargo run --example chain_server -- 1 2 # terminal 2
//! cargo run --example chain_server -- 2 3 # terminal 3
//! cargo run --example chain_server -- 3 1 # terminal 4
//! cargo run --example chain_client        # terminal 5
//! ```
//!
//! Server 1 is called again by server 3 while its own call is still
//! waiting: the daemon serves calls concurrently, so the chain closes.

mod interface;

use anyhow::Context;
use interface::{Chain, ChainObject, ChainProxy, link_name};

struct Link {
    n: String,
    next: String,
    name: String,
    /// The next link, resolved through the name server on first use.
    next_link: ChainProxy,
}

impl Chain for Link {
    async fn process(&self, mut message: Vec<String>) -> Result<Vec<String>, rmi::Error> {
        if message.contains(&self.name) {
            println!("Back at {}; the chain is closed!", self.n);
            return Ok(vec![format!("complete at {}", self.n)]);
        }
        println!("{} forwarding the message to the object {}", self.n, self.next);
        message.push(self.name.clone());
        let mut result = self.next_link.process(message).await?;
        result.insert(0, format!("passed on from {}", self.n));
        Ok(result)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: chain_server <this> <next>, as chain_server 1 2";
    let n = args.next().context(usage)?;
    let next = args.next().context(usage)?;
    let name = link_name(&n);
    let next_link = ChainProxy::new(format!("RMINAME:{}", link_name(&next)))?;
    let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
    let link = Link { n: n.clone(), next, name: name.clone(), next_link };
    let uri = daemon.register(ChainObject(link), Some(&name))?;
    let ns = rmi::locate_ns(None).await.context("the chain needs a name server (run rmi-naming)")?;
    ns.register(&name, &uri).await?;
    println!("Server {n} ready: {name} = {uri}");
    tokio::select! {
        served = daemon.serve() => served?,
        _ = tokio::signal::ctrl_c() => daemon.shutdown(),
    }
    let _ = ns.remove(&name).await;
    Ok(())
}
