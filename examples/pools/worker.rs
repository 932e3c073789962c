//! A worker process of the process pool: hosts a counter object and serves
//! it until its stdin closes.

use crate::count_times;

/// What the worker's first stdout line starts with, before its URI.
pub(crate) const URI_PREFIX: &str = "URI = ";

/// The remote interface of one pool worker.
#[rmi::expose]
pub(crate) trait Counter {
    /// Counts `count` steps for `item`, as the sequential loop does; returns
    /// the count times `item`.
    async fn evaluate(&self, item: u64, count: u64) -> Result<u64, String>;
}

/// The worker's implementation.
struct Counting;

impl Counter for Counting {
    async fn evaluate(&self, item: u64, count: u64) -> Result<u64, String> {
        // On a blocking thread, so the daemon stays responsive meanwhile.
        tokio::task::spawn_blocking(move || count_times(item, count)).await.map_err(|e| e.to_string())
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
