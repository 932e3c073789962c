//! The peer: a plain tarpc service doing the same work, over tarpc's own
//! TCP transport (length-delimited frames, bincode), as a tarpc user would
//! write it.

use futures::{StreamExt, future};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

use crate::measure::{Outcome, PAYLOAD, Plan, concurrent, sequential, transfers};

/// The work: echo a number, count a payload.
#[tarpc::service]
pub(crate) trait BenchService {
    /// Returns `x`.
    async fn echo(x: u64) -> u64;
    /// Returns the payload's length.
    async fn blob_len(payload: serde_bytes::ByteBuf) -> u64;
}

#[derive(Clone)]
struct Server;

impl BenchService for Server {
    async fn echo(self, _: context::Context, x: u64) -> u64 {
        x
    }

    async fn blob_len(self, _: context::Context, payload: serde_bytes::ByteBuf) -> u64 {
        payload.len() as u64
    }
}

/// Serves until killed; prints its address through `ready`.
pub(crate) async fn serve(addr: &str, ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    let mut listener = tarpc::serde_transport::tcp::listen(addr, Bincode::default).await?;
    listener.config_mut().max_frame_length(usize::MAX);
    ready(listener.local_addr());
    listener
        .filter_map(|r| future::ready(r.ok()))
        .for_each(|transport| async move {
            let _ = transport.get_ref().set_nodelay(true);
            tokio::spawn(BaseChannel::with_defaults(transport).execute(Server.serve()).for_each(
                |call| async {
                    tokio::spawn(call);
                },
            ));
        })
        .await;
    Ok(())
}

async fn connect(addr: &str) -> anyhow::Result<BenchServiceClient> {
    let mut connecting = tarpc::serde_transport::tcp::connect(addr, Bincode::default);
    connecting.config_mut().max_frame_length(usize::MAX);
    let transport = connecting.await?;
    transport.get_ref().set_nodelay(true)?;
    Ok(BenchServiceClient::new(client::Config::default(), transport).spawn())
}

/// One call at a time.
pub(crate) async fn seq(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let client = connect(addr).await?;
    sequential(plan.calls / 10, plan.calls, async |i| {
        anyhow::ensure!(client.echo(context::current(), i).await? == i);
        Ok(())
    })
    .await
}

/// `tasks` tasks calling on one client (one connection).
pub(crate) async fn pipelined(addr: &str, tasks: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let client = connect(addr).await?;
    concurrent(vec![client; tasks], plan, |client: BenchServiceClient| async move {
        client.echo(context::current(), 1).await?;
        Ok(client)
    })
    .await
}

/// `clients` clients with their own connections, one call at a time each.
pub(crate) async fn clients(addr: &str, clients: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let mut all = Vec::new();
    for _ in 0..clients {
        all.push(connect(addr).await?);
    }
    concurrent(all, plan, |client: BenchServiceClient| async move {
        client.echo(context::current(), 1).await?;
        Ok(client)
    })
    .await
}

/// A 10 MiB argument, one call at a time.
pub(crate) async fn payload(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let client = connect(addr).await?;
    let data = serde_bytes::ByteBuf::from(vec![5u8; PAYLOAD]);
    transfers(plan, async || {
        anyhow::ensure!(client.blob_len(context::current(), data.clone()).await? == PAYLOAD as u64);
        Ok(())
    })
    .await
}
