//! A worker process of the process pool: hosts a counter object and serves
//! it until its stdin closes.

use crate::count_times;

/// What the worker's first stdout line starts with, before its URI.
pub(crate) const URI_PREFIX: &str = "URI = ";

/// The remote interface of one pool worker.
#[rmi::expose]
pub(crate) trait Counter {
    /// Counts `count` steps for `item`, as the sequential loop does; returns
    /// the count times `item`. A plain `fn` that keeps its thread busy: the
    /// daemon runs it on tokio's blocking pool, so it answers other calls
    /// meanwhile.
    fn evaluate(&self, item: u64, count: u64) -> u64;
}

/// The worker's implementation.
struct Counting;

impl Counter for Counting {
    fn evaluate(&self, item: u64, count: u64) -> u64 {
        count_times(item, count)
    }
}

/// The worker's `main`: binds a daemon on a free loopback port, prints the
/// counter's URI, and serves until the parent closes our stdin (or kills
/// us).
pub(crate) async fn serve() -> anyhow::Result<()> {
    let daemon = rmi::Daemon::bind("127.0.0.1:0").await?;
    let uri = daemon.register(CounterObject(Counting), Some("counter"))?;
    println!("{URI_PREFIX}{uri}");
    let watcher = daemon.clone();
    std::thread::spawn(move || {
        // Read until end of file: the parent is gone, or done with us.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        watcher.shutdown();
    });
    daemon.serve().await?;
    Ok(())
}
