//! The chain topology's client: sends `["hello"]` to link 1 and prints what
//! came back around the chain.
//!
//! ```text
//! cargo run --example chain_client
//! Result=["passed on from 1", "passed on from 2", "passed on from 3", "complete at 1"]
//! ```

// The client uses only the proxy half of the shared interface.
#[allow(dead_code)]
mod interface;

use interface::{ChainProxy, link_name};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let first = ChainProxy::new(format!("RMINAME:{}", link_name("1")))?;
    let result = first.process(vec!["hello".to_owned()]).await?;
    println!("Result={result:?}");
    Ok(())
}
