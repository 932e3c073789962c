//! Thread pool versus process pool: the items 1 to 10 each go through a
//! CPU-bound count (a loop of `--count` steps, 100,000,000 by default, as
//! in the seed), evaluated three ways and timed: sequentially, on a pool of
//! 5 threads, and on a pool of 5 worker processes driven over rmi.
//!
//! ```text
//! cargo run --release --example pools [-- --count 100000000 --workers 5]
//! Sequential execution
//! Item 1, result 100000000
//! …
//! Item 10, result 1000000000
//! Sequential execution in 0.280 seconds
//! Thread pool execution
//! Item 2, result 200000000
//! Item 5, result 500000000
//! …
//! Thread pool execution in 0.140 seconds
//! Process pool execution
//! Item 5, result 500000000
//! …
//! Process pool execution in 0.155 seconds
//! ```
//!
//! (That is on two cores. Use `--release`: a debug build counts some 25
//! times slower.) The pools print in completion order, not item order.
//! Every mode computes item × count for each item.
//!
//! What the comparison shows in Rust is not what it shows in Python. There,
//! the thread pool is no faster than the sequential loop, because the GIL
//! lets one thread run Python code at a time, and only the process pool
//! uses several cores. Rust threads run truly in parallel, so the thread
//! pool is as fast as the process pool on one machine, and cheaper: no
//! processes to start, no messages to encode. Processes buy other things:
//! isolation (a worker that crashes or leaks takes nothing else with it)
//! and distribution (a worker is an rmi object with a URI, so it could as
//! well run on another machine).
//!
//! The process pool: the example starts itself again with the hidden flag
//! `--worker`, once per worker. Each worker process hosts a `Counter`
//! object (`worker.rs`) in an rmi daemon and prints its URI on its first stdout line;
//! the parent reads it, makes a proxy, and hands the next item to each
//! worker as soon as its previous one is done. At the end the parent kills
//! its workers; a worker also exits when its stdin closes, so none outlives
//! a parent that died.

mod worker;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::AsyncBufReadExt;
use worker::CounterProxy;

/// The seed's workload: each item counts this far.
const DEFAULT_COUNT: u64 = 100_000_000;

/// The seed's pool size.
const DEFAULT_WORKERS: NonZeroUsize = NonZeroUsize::new(5).unwrap(); // 5 is not 0

/// How long a worker process may take to start and print its URI.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Thread pool versus process pool: the items 1 to 10 each go through a
/// CPU-bound count, timed three ways: sequentially, on a pool of threads, and
/// on a pool of worker processes driven over rmi. Build it with --release: a
/// debug build counts some 25 times slower.
#[derive(Debug, Parser)]
#[command(name = "pools")]
struct Cli {
    /// How far each item counts (the CPU-bound work); each result is the
    /// item times this.
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_COUNT)]
    count: u64,

    /// How many threads, and how many worker processes, the pools have.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS)]
    workers: NonZeroUsize,

    /// Run as one worker process of the pool: host a counter object, print
    /// its URI, and serve until stdin closes (the example starts itself so).
    #[arg(long, hide = true)]
    worker: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.worker {
        return tokio::runtime::Runtime::new()?.block_on(worker::serve());
    }
    let (count, workers) = (cli.count, cli.workers.get());
    let items: Vec<u64> = (1..=10).collect();

    println!("Sequential execution");
    let started = Instant::now();
    for &item in &items {
        evaluate(item, count);
    }
    println!("Sequential execution in {:.3} seconds", started.elapsed().as_secs_f64());

    println!("Thread pool execution");
    let started = Instant::now();
    thread_pool(&items, workers, count)?;
    println!("Thread pool execution in {:.3} seconds", started.elapsed().as_secs_f64());

    println!("Process pool execution");
    let started = Instant::now();
    tokio::runtime::Runtime::new()?.block_on(process_pool(&items, workers, count))?;
    println!("Process pool execution in {:.3} seconds", started.elapsed().as_secs_f64());
    Ok(())
}

/// The CPU-bound work: counts to `count` one step at a time, and returns
/// the count times `item`. `black_box` keeps the compiler from replacing
/// the loop by its result.
pub(crate) fn count_times(item: u64, count: u64) -> u64 {
    let mut counter = 0u64;
    for _ in 0..count {
        counter = std::hint::black_box(counter + 1);
    }
    counter.wrapping_mul(item)
}

/// Evaluates one item and prints it, as the seed's `evaluate`.
fn evaluate(item: u64, count: u64) {
    let result = count_times(item, count);
    println!("Item {item}, result {result}");
}

/// Evaluates `items` on `workers` threads, each taking the next item when
/// it is free (as `ThreadPoolExecutor.submit` does).
fn thread_pool(items: &[u64], workers: usize, count: u64) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    while let Some(&item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                        evaluate(item, count);
                    }
                })
            })
            .collect();
        for thread in threads {
            if thread.join().is_err() {
                bail!("a pool thread panicked");
            }
        }
        Ok(())
    })
}

/// Evaluates `items` on `workers` worker processes, each hosting a
/// `worker::Counter` over rmi.
async fn process_pool(items: &[u64], workers: usize, count: u64) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this program to start its workers")?;
    let mut children = Vec::new();
    for _ in 0..workers {
        let child = tokio::process::Command::new(&exe)
            .arg("--worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        children.push(child);
    }
    // All workers start at once; then each one's URI is read in turn.
    let mut proxies = Vec::new();
    for child in &mut children {
        let stdout = child.stdout.take().context("the worker's stdout is piped")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WORKER_START_TIMEOUT, lines.next_line())
            .await
            .context("a worker did not start in time")?
            .context("reading a worker's URI")?
            .context("a worker exited before printing its URI")?;
        let uri = line.strip_prefix(worker::URI_PREFIX).with_context(|| format!("a worker said {line:?}"))?;
        // The workload's size is the user's choice: no timeout on its calls.
        proxies.push(CounterProxy::new(uri)?.with_timeout(None));
    }

    let items: Arc<[u64]> = items.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut feeders = tokio::task::JoinSet::new();
    for proxy in proxies {
        let (items, next) = (items.clone(), next.clone());
        feeders.spawn(async move {
            while let Some(&item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                let result = proxy.evaluate(item, count).await?;
                println!("Item {item}, result {result}");
            }
            anyhow::Ok(())
        });
    }
    let mut outcome = Ok(());
    while let Some(fed) = feeders.join_next().await {
        if let Err(e) = fed.context("a feeder task failed").and_then(|r| r) {
            outcome = Err(e);
        }
    }
    for mut child in children {
        // The worker may have exited already; either way it is reaped here.
        let _ = child.kill().await;
    }
    outcome
}
