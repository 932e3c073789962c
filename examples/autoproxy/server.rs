//! The autoproxy server: a factory whose `create` returns new objects by
//! reference, each living in this process for as long as its client holds
//! it, and released when the client drops it (or goes away).
//!
//! ```text
//! cargo run -p rmi-naming                                     # terminal 1 (optional)
//! cargo run --example autoproxy_server [-- <bind-address>]    # terminal 2; default 127.0.0.1:0
//! cargo run --example autoproxy_client [-- <URI>]             # terminal 3
//! ```

mod interface;
#[path = "../common/serve.rs"]
mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use clap::Parser;
use interface::{Factory, FactoryObject, Thingy, ThingyObject, ThingyProxy};
use rmi::Remote;

/// The name clients look up.
const NAME: &str = "example.autoproxy";

/// A thingy; counts itself alive.
struct Thing {
    name: String,
    value: AtomicI64,
    alive: Arc<AtomicU64>,
}

impl Thingy for Thing {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    fn set_value(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst);
    }
}

impl Drop for Thing {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
        println!("Released thingy {:?}", self.name);
    }
}

/// Makes them.
#[derive(Default)]
struct Maker {
    alive: Arc<AtomicU64>,
}

impl Factory for Maker {
    fn create(&self, name: String) -> Remote<ThingyProxy> {
        self.alive.fetch_add(1, Ordering::SeqCst);
        println!("Created thingy {name:?}");
        Remote::new(ThingyObject(Thing { name, value: AtomicI64::new(42), alive: self.alive.clone() }))
    }

    fn alive(&self) -> u64 {
        self.alive.load(Ordering::SeqCst)
    }
}

/// Hosts a factory whose create returns new objects by reference (Pyro's
/// autoproxy), each released when its client drops it or goes away.
/// Registers example.autoproxy with the name server when there is one. Stop
/// it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "autoproxy_server")]
struct Cli {
    #[command(flatten)]
    listen: serve::Listen,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve::serve_named(&cli.listen.bind, NAME, |daemon| {
        daemon.register(FactoryObject(Maker::default()), Some(NAME))
    })
    .await
}
