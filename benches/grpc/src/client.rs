//! The workloads, through the generated tonic client: the same work and the
//! same measurements as rmi-bench's other systems.

use anyhow::Context;
use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

use crate::measure::{CHUNK, Gate, Outcome, PAYLOAD, Plan, concurrent, sequential, transfers};
use crate::pb::bench_client::BenchClient;
use crate::pb::{Blob, Count, Number};
use crate::server::MAX_MESSAGE;

/// A client on a connection of its own to `addr` (`host:port`). Its clones
/// share that connection (one HTTP/2 connection, calls multiplexed on it).
async fn connect(addr: &str) -> anyhow::Result<BenchClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
    Ok(BenchClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// One `echo` call, checked.
async fn echo(client: &mut BenchClient<Channel>, value: u64) -> anyhow::Result<()> {
    let back = client.echo(Number { value }).await?.into_inner().value;
    anyhow::ensure!(back == value, "echo({value}) came back as {back}");
    Ok(())
}

/// One call at a time.
pub(crate) async fn seq(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let mut client = connect(addr).await?;
    sequential(plan.calls / 10, plan.calls, async |i| echo(&mut client, i).await).await
}

/// `tasks` tasks calling through clones of one client: one connection.
pub(crate) async fn pipelined(addr: &str, tasks: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let client = connect(addr).await?;
    concurrent(vec![client; tasks], plan, |mut client: BenchClient<Channel>| async move {
        echo(&mut client, 1).await?;
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
    concurrent(all, plan, |mut client: BenchClient<Channel>| async move {
        echo(&mut client, 1).await?;
        Ok(client)
    })
    .await
}

/// A 10 MiB argument, one call at a time.
pub(crate) async fn payload(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let mut client = connect(addr).await?;
    let data = Bytes::from(vec![5u8; PAYLOAD]);
    transfers(plan, async || {
        let len = client.blob_len(Blob { data: data.clone() }).await?.into_inner().len;
        anyhow::ensure!(len == PAYLOAD as u64, "the server counted {len} bytes");
        Ok(())
    })
    .await
}

/// A server stream read as fast as it comes: numbered 8-byte items
/// (`chunks` false), checked to come in order, or 64 KiB chunks, counted
/// until the measuring window ends; then the stream is dropped.
pub(crate) async fn stream(addr: &str, chunks: bool, plan: Plan) -> anyhow::Result<Outcome> {
    let mut client = connect(addr).await?;
    echo(&mut client, 0).await?;
    let gate = Gate::new();
    let reading = tokio::spawn({
        let gate = gate.clone();
        async move {
            let forever = Count { n: u64::MAX };
            if chunks {
                let mut stream = client.chunks(forever).await?.into_inner();
                while gate.running() {
                    let chunk = stream.message().await?.context("the stream ended")?;
                    anyhow::ensure!(chunk.data.len() == CHUNK, "a chunk of {} bytes", chunk.data.len());
                    gate.done(1);
                }
            } else {
                let mut stream = client.numbers(forever).await?.into_inner();
                let mut expected = 0u64;
                while gate.running() {
                    for _ in 0..1024 {
                        let n = stream.message().await?.context("the stream ended")?.value;
                        anyhow::ensure!(n == expected, "item {n} came as number {expected}");
                        expected += 1;
                    }
                    gate.done(1024);
                }
            }
            Ok(())
        }
    });
    let outcome = gate.measure(plan.warmup, plan.window, vec![reading]).await?;
    let bytes = chunks.then(|| outcome.ops * CHUNK as u64);
    Ok(Outcome { bytes, ..outcome })
}
