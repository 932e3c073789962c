//! Timing helpers shared by every system's workloads, and what a workload
//! reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What one workload measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Outcome {
    /// Operations completed while measuring.
    pub(crate) ops: u64,
    /// Seconds measured.
    pub(crate) secs: f64,
    /// Median latency, microseconds (sequential workloads only).
    pub(crate) p50_us: Option<f64>,
    /// 99th percentile latency, microseconds (sequential workloads only).
    pub(crate) p99_us: Option<f64>,
    /// Bytes moved while measuring (payload workloads only).
    pub(crate) bytes: Option<u64>,
}

impl Outcome {
    /// Operations per second.
    pub(crate) fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.ops as f64 / self.secs } else { 0.0 }
    }

    /// Megabytes (10^6) per second, for payload workloads.
    pub(crate) fn mb_per_sec(&self) -> Option<f64> {
        self.bytes.map(|b| b as f64 / 1e6 / self.secs)
    }
}

/// Runs `call` `warmup` times, then `count` times one after another, and
/// reports the rate and the latency percentiles.
pub(crate) async fn sequential<F>(warmup: u64, count: u64, mut call: F) -> anyhow::Result<Outcome>
where
    F: AsyncFnMut(u64) -> anyhow::Result<()>,
{
    for i in 0..warmup {
        call(i).await?;
    }
    let mut latencies = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        call(i).await?;
        latencies.push(t.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Outcome { ops: count, secs, ..with_percentiles(latencies) })
}

/// As [`sequential`], on a spawned task (so that on a multi-thread runtime
/// the calls run on a worker, as a server's handlers do, rather than on the
/// thread in `block_on`), with the state each call needs passed through it
/// by value.
pub(crate) async fn sequential_in_task<S, F, Fut>(
    state: S,
    warmup: u64,
    count: u64,
    mut call: F,
) -> anyhow::Result<Outcome>
where
    S: Send + 'static,
    F: FnMut(S, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<S>> + Send,
{
    tokio::spawn(async move {
        let mut state = state;
        for i in 0..warmup {
            state = call(state, i).await?;
        }
        let mut latencies = Vec::with_capacity(count as usize);
        let started = Instant::now();
        for i in 0..count {
            let t = Instant::now();
            state = call(state, i).await?;
            latencies.push(t.elapsed());
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(Outcome { ops: count, secs, ..with_percentiles(latencies) })
    })
    .await?
}

/// The median and 99th percentile of `latencies`; `ops` their number and
/// `secs` their sum (what [`sequential`] replaces with the wall-clock time).
pub(crate) fn with_percentiles(mut latencies: Vec<Duration>) -> Outcome {
    latencies.sort_unstable();
    let pick = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).map(|d| d.as_secs_f64() * 1e6)
    };
    Outcome {
        ops: latencies.len() as u64,
        secs: latencies.iter().sum::<Duration>().as_secs_f64(),
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        bytes: None,
    }
}

/// Counts what concurrent loops complete in a measured window: loops run
/// `while gate.running() { …; gate.done(n) }`.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    counting: AtomicBool,
    stop: AtomicBool,
    done: AtomicU64,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Whether the loops should go on.
    pub(crate) fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Records `n` completed operations (counted only inside the window).
    pub(crate) fn done(&self, n: u64) {
        if self.counting.load(Ordering::Relaxed) {
            self.done.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Lets the loops warm up, measures for `window`, stops them, and waits
    /// for them.
    pub(crate) async fn measure(
        &self,
        warmup: Duration,
        window: Duration,
        loops: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    ) -> anyhow::Result<Outcome> {
        tokio::time::sleep(warmup).await;
        self.counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let ops = self.done.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        for l in loops {
            l.await??;
        }
        Ok(Outcome { ops, secs, ..Outcome::default() })
    }
}

/// How long a workload runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Calls of a sequential workload (after a tenth as many to warm up).
    pub(crate) calls: u64,
    /// Warm-up of a throughput workload.
    pub(crate) warmup: Duration,
    /// Measured window of a throughput workload.
    pub(crate) window: Duration,
    /// Transfers of the 10 MiB payload.
    pub(crate) transfers: u64,
    /// Oneway calls sent.
    pub(crate) oneways: u64,
    /// Batches of 10,000 calls run.
    pub(crate) batches: u64,
}

impl Plan {
    pub(crate) fn full() -> Plan {
        Plan {
            calls: 20_000,
            warmup: Duration::from_millis(300),
            window: Duration::from_secs(2),
            transfers: 40,
            oneways: 200_000,
            batches: 40,
        }
    }

    pub(crate) fn quick() -> Plan {
        Plan {
            calls: 2_000,
            warmup: Duration::from_millis(100),
            window: Duration::from_millis(500),
            transfers: 5,
            oneways: 20_000,
            batches: 5,
        }
    }
}

/// The 10 MiB payload of the payload workloads.
pub(crate) const PAYLOAD: usize = 10 << 20;

/// The size of each chunk the chunk streams carry.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Times `plan.transfers` sends of the 10 MiB payload, one after another
/// (after one to warm up).
pub(crate) async fn transfers<F>(plan: Plan, mut send: F) -> anyhow::Result<Outcome>
where
    F: AsyncFnMut() -> anyhow::Result<()>,
{
    send().await?;
    let started = Instant::now();
    for _ in 0..plan.transfers {
        send().await?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Outcome {
        ops: plan.transfers,
        secs,
        bytes: Some(plan.transfers * PAYLOAD as u64),
        ..Outcome::default()
    })
}

/// Runs one loop per state (a client, or a connection): each call takes
/// the state and gives it back, one call at a time; counts the calls
/// completed in the window.
pub(crate) async fn concurrent<S, F, Fut>(states: Vec<S>, plan: Plan, call: F) -> anyhow::Result<Outcome>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<S>> + Send,
{
    let gate = Gate::new();
    let loops = states
        .into_iter()
        .map(|state| {
            let (gate, call) = (gate.clone(), call.clone());
            tokio::spawn(async move {
                let mut state = state;
                while gate.running() {
                    state = call(state).await?;
                    gate.done(1);
                }
                Ok(())
            })
        })
        .collect();
    gate.measure(plan.warmup, plan.window, loops).await
}
