//! The limit: raw tokio TCP. An echo server for 8-byte ping-pong (one at a
//! time, or 64 in flight), and a sink that reads length-prefixed payloads
//! and answers each with 8 bytes, and a source that streams items or chunks
//! as fast as the client reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::measure::{
    CHUNK, Gate, Outcome, PAYLOAD, Plan, concurrent, sequential, sequential_in_task, transfers,
};

/// Echoes every byte back, in whatever pieces it arrives.
pub(crate) async fn serve_echo(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Reads `len:u32le payload` frames; answers each with its length as 8 bytes.
pub(crate) async fn serve_sink(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let Ok(len) = stream.read_u32_le().await else { return };
                buf.resize(len as usize, 0);
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                if stream.write_all(&u64::from(len).to_le_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Streams to each client as fast as it reads: after the client's first
/// byte (0: 8-byte items, numbered; 1: 64 KiB chunks), writes 64 KiB at a
/// time until the client goes.
pub(crate) async fn serve_source(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(mode) = stream.read_u8().await else { return };
            let mut buf = vec![3u8; CHUNK];
            let mut next = 0u64;
            loop {
                if mode == 0 {
                    // Numbered items, as rmi's stream numbers them.
                    for item in buf.chunks_exact_mut(8) {
                        item.copy_from_slice(&next.to_le_bytes());
                        next += 1;
                    }
                }
                if stream.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Reads what the source streams, counting 8-byte items (`chunks` false)
/// or 64 KiB chunks.
pub(crate) async fn stream(addr: &str, chunks: bool, plan: Plan) -> anyhow::Result<Outcome> {
    let gate = Gate::new();
    let mut stream = connect(addr).await?;
    stream.write_u8(u8::from(chunks)).await?;
    let reading = tokio::spawn({
        let gate = gate.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let mut partial = 0usize;
            let unit = if chunks { CHUNK } else { 8 };
            while gate.running() {
                let n = stream.read(&mut buf).await?;
                anyhow::ensure!(n > 0, "the source closed the connection");
                gate.done(((partial + n) / unit) as u64);
                partial = (partial + n) % unit;
            }
            Ok(())
        }
    });
    let outcome = gate.measure(plan.warmup, plan.window, vec![reading]).await?;
    let bytes = chunks.then(|| outcome.ops * CHUNK as u64);
    Ok(Outcome { bytes, ..outcome })
}

async fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One 8-byte ping-pong at a time.
pub(crate) async fn seq(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let mut stream = connect(addr).await?;
    let mut answer = [0u8; 8];
    sequential(plan.calls / 10, plan.calls, async |i| {
        stream.write_all(&i.to_le_bytes()).await?;
        stream.read_exact(&mut answer).await?;
        Ok(())
    })
    .await
}

/// `plan.calls` 8-byte ping-pongs one at a time, untimed: the floor of
/// `rmi-bench --count-instructions`'s one-at-a-time rows.
pub(crate) async fn seq_count(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let mut stream = connect(addr).await?;
    let mut answer = [0u8; 8];
    let started = std::time::Instant::now();
    for i in 0..plan.calls {
        stream.write_all(&i.to_le_bytes()).await?;
        stream.read_exact(&mut answer).await?;
        anyhow::ensure!(u64::from_le_bytes(answer) == i, "the echo server answered {answer:?} to {i}");
    }
    Ok(Outcome { ops: plan.calls, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// `window` 8-byte frames kept in flight from one loop until `calls` have
/// come back, untimed: the floor of the 64-in-flight rows (each read's
/// frames are written back at once, as the echo server does).
pub(crate) async fn pipelined_count(addr: &str, window: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let mut stream = connect(addr).await?;
    let calls = plan.calls.max(window as u64);
    let started = std::time::Instant::now();
    stream.write_all(&vec![7u8; 8 * window]).await?;
    let (mut sent, mut done) = (window as u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial = 0usize;
    while done < calls {
        let n = stream.read(&mut buf[partial..]).await?;
        anyhow::ensure!(n > 0, "the echo server closed the connection");
        let frames = (partial + n) / 8;
        partial = (partial + n) % 8;
        done += frames as u64;
        // As many again, but no more than `calls` in all.
        let again = (frames as u64).min(calls - sent) as usize;
        sent += again as u64;
        if again > 0 {
            stream.write_all(&buf[..again * 8]).await?;
        }
        buf.copy_within(frames * 8..frames * 8 + partial, 0);
    }
    Ok(Outcome { ops: done, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// [`seq`] from a spawned task.
pub(crate) async fn seq_in_task(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let stream = connect(addr).await?;
    sequential_in_task(stream, plan.calls / 10, plan.calls, |mut stream: TcpStream, i: u64| async move {
        let mut answer = [0u8; 8];
        stream.write_all(&i.to_le_bytes()).await?;
        stream.read_exact(&mut answer).await?;
        Ok(stream)
    })
    .await
}

/// `window` 8-byte frames in flight on one connection.
pub(crate) async fn pipelined(addr: &str, window: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let gate = Gate::new();
    let mut stream = connect(addr).await?;
    let looping = tokio::spawn({
        let gate = gate.clone();
        async move {
            stream.write_all(&vec![7u8; 8 * window]).await?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut partial = 0usize;
            while gate.running() {
                let n = stream.read(&mut buf).await?;
                anyhow::ensure!(n > 0, "the echo server closed the connection");
                let frames = (partial + n) / 8;
                partial = (partial + n) % 8;
                gate.done(frames as u64);
                stream.write_all(&buf[..frames * 8]).await?;
            }
            Ok(())
        }
    });
    gate.measure(plan.warmup, plan.window, vec![looping]).await
}

/// `clients` connections, each one ping-pong at a time.
pub(crate) async fn clients(addr: &str, clients: usize, plan: Plan) -> anyhow::Result<Outcome> {
    let mut streams = Vec::new();
    for _ in 0..clients {
        streams.push(connect(addr).await?);
    }
    concurrent(streams, plan, |mut stream: TcpStream| async move {
        let mut answer = [0u8; 8];
        stream.write_all(&[1u8; 8]).await?;
        stream.read_exact(&mut answer).await?;
        Ok(stream)
    })
    .await
}

/// 10 MiB frames to the sink, one after another.
pub(crate) async fn payload(addr: &str, plan: Plan) -> anyhow::Result<Outcome> {
    let mut stream = connect(addr).await?;
    let data = vec![5u8; PAYLOAD];
    transfers(plan, async || {
        stream.write_u32_le(PAYLOAD as u32).await?;
        stream.write_all(&data).await?;
        anyhow::ensure!(stream.read_u64_le().await? == PAYLOAD as u64, "the sink miscounted");
        Ok(())
    })
    .await
}
