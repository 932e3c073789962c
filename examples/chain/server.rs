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
//!
//! Each line a link prints for a pass ends with the call's correlation id
//! (`[correlation id chain-4242-1732488000123]`), read with
//! `rmi::context()`: the client set it with `rmi::correlate`, and every
//! server carries it on into the call it makes to the next link, so one id
//! shows in all of them.

mod interface;
#[path = "../common/logging.rs"]
mod logging;
// Only its serving until Ctrl-C.
#[allow(dead_code)]
#[path = "../common/serve.rs"]
mod serve;

use anyhow::Context;
use clap::Parser;
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
        let correlation = correlation_note();
        if message.contains(&self.name) {
            println!("Back at {}; the chain is closed!{correlation}", self.n);
            return Ok(vec![format!("complete at {}", self.n)]);
        }
        println!("{} forwarding the message to the object {}{correlation}", self.n, self.next);
        message.push(self.name.clone());
        // Called from inside this call, the next link gets its correlation id.
        let mut result = self.next_link.process(message).await?;
        result.insert(0, format!("passed on from {}", self.n));
        Ok(result)
    }
}

/// ` [correlation id <id>]` for the call being handled, or nothing when its
/// caller set none.
fn correlation_note() -> String {
    let context = rmi::context();
    match context.as_ref().and_then(rmi::CallContext::correlation_id) {
        Some(id) => format!(" [correlation id {id}]"),
        None => String::new(),
    }
}

/// One server of the chain topology: hosts the link example.chainTopology.<THIS>,
/// which passes each message on to link <NEXT> until it comes back to a link
/// that is already in it. Needs a name server (rmi-naming). Stop it with
/// Ctrl-C.
#[derive(Debug, Parser)]
#[command(
    name = "chain_server",
    after_help = "Example: chain_server 1 2; chain_server 2 3; chain_server 3 1"
)]
struct Cli {
    /// This link's number (or name): it registers as example.chainTopology.<THIS>.
    this: String,

    /// The link it passes messages on to.
    next: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let Cli { this: n, next } = Cli::parse();
    let name = link_name(&n);
    let next_link = ChainProxy::new(format!("RMINAME:{}", link_name(&next)))?;
    let ns = rmi::locate_ns(None).await.context("the chain needs a name server (run rmi-naming)")?;
    // Named with the daemon's lease: the name goes when the server stops
    // (at once) or dies (5 s later), never left pointing at nothing.
    let daemon = rmi::Daemon::builder()?.name_server(ns).bind("127.0.0.1:0").await?;
    let link = Link { n: n.clone(), next, name: name.clone(), next_link };
    let uri = daemon.register(ChainObject(link), Some(&name))?;
    daemon.lease().await?.register(&name, &uri).await?;
    println!("Server {n} ready: {name} = {uri}");
    serve::serve_until_ctrl_c(&daemon).await
}
