//! rmi doing the same work: an exposed object with the same methods, called
//! through its generated typed proxy, and name-server lookups.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rmi::tls::ClientTls;
use rmi::{Blob, Config, Key, NameServerProxy, Proxy, Remote};

use crate::measure::{
    Gate, Outcome, PAYLOAD, Plan, concurrent, sequential, sequential_in_task, transfers, with_percentiles,
};

/// Names the name server holds in the lookup workloads.
pub(crate) const NAMES: usize = 10_000;

/// The work.
#[derive(Debug, Default)]
pub struct Bench {
    ticks: AtomicU64,
}

// The methods never block: they take the fast path (`#[rmi::nonblocking]`),
// but for `echo_blocking`, the same work as a plain `fn` on the blocking pool.
#[rmi::expose]
impl Bench {
    /// Returns `x`.
    #[rmi::nonblocking]
    pub fn echo(&self, x: u64) -> u64 {
        x
    }

    /// Returns `x`, as a plain `fn`: on tokio's blocking pool.
    pub fn echo_blocking(&self, x: u64) -> u64 {
        x
    }

    /// Counts a oneway call.
    #[rmi::oneway]
    #[rmi::nonblocking]
    pub fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// How many oneway calls ran.
    #[rmi::nonblocking]
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Forgets the oneway calls counted so far.
    #[rmi::nonblocking]
    pub fn reset(&self) {
        self.ticks.store(0, Ordering::Relaxed);
    }

    /// Returns the payload's length.
    #[rmi::nonblocking]
    pub fn blob_len(&self, payload: Blob) -> u64 {
        payload.len() as u64
    }

    /// Calls `target.echo` back `n` times, one after another, over the
    /// caller's connection; returns how long they took, in nanoseconds.
    pub async fn callbacks(&self, n: u64, target: Remote<BenchProxy>) -> Result<u64, rmi::Error> {
        let target = target.proxy();
        let started = Instant::now();
        for i in 0..n {
            if target.echo(i).await? != i {
                return Err(rmi::Error::Protocol("a callback came back wrong".into()));
            }
        }
        Ok(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// `0..n`, streamed.
    #[rmi::nonblocking]
    pub fn numbers(&self, n: u64) -> rmi::Stream<u64> {
        rmi::Stream::iter(0..n)
    }

    /// `n` chunks of 64 KiB, streamed (the same bytes each time, as the raw
    /// TCP source writes them).
    #[rmi::nonblocking]
    pub fn chunks(&self, n: u64) -> rmi::Stream<Blob> {
        let chunk = Blob::from(vec![3u8; crate::measure::CHUNK]);
        rmi::Stream::iter((0..n).map(move |_| chunk.clone()))
    }

    /// Drops the reference it is given and returns a fresh one: a reference
    /// exported each way, and each released.
    #[rmi::nonblocking]
    pub fn swap(&self, given: Remote<BenchProxy>) -> Remote<BenchProxy> {
        drop(given);
        Remote::new(Bench::default())
    }
}

/// This process's TLS: none but in the processes of the suite's TLS runs,
/// which it gives `RMI_TLS_*` variables (see [`init_tls`]).
static TLS: OnceLock<Option<Tls>> = OnceLock::new();

/// TLS as a process's `RMI_TLS_*` variables set it up.
#[derive(Debug)]
pub(crate) struct Tls {
    /// `RMI_TLS_CA`: what a fresh `ClientTls` is made from.
    ca: PathBuf,
    /// The configuration those variables make; its `tls` is what every
    /// daemon and proxy of this process gets (the proxies share its one
    /// `ClientTls`, and so its session cache).
    config: Config,
}

/// Reads this process's `RMI_TLS_*` variables, as `Config::from_env` does
/// (the other `RMI_*` variables are left out: the benchmark sets its own
/// key and timeout).
pub(crate) fn init_tls() -> anyhow::Result<()> {
    set_tls(tls_from(|var| if var.starts_with("RMI_TLS") { std::env::var(var).ok() } else { None })?)
}

/// Sets this process's TLS, once.
pub(crate) fn set_tls(tls: Option<Tls>) -> anyhow::Result<()> {
    TLS.set(tls).map_err(|_| anyhow::anyhow!("this process's TLS is set already"))
}

/// The TLS `lookup` (a variable's name to its value) sets up, if it is on.
pub(crate) fn tls_from(lookup: impl Fn(&'static str) -> Option<String>) -> anyhow::Result<Option<Tls>> {
    let config = Config::from_lookup(&lookup).context("the RMI_TLS_* variables")?;
    Ok(match (&config.tls, lookup("RMI_TLS_CA")) {
        (Some(_), Some(ca)) => Some(Tls { ca: PathBuf::from(ca.trim()), config }),
        _ => None,
    })
}

fn tls() -> Option<&'static Tls> {
    TLS.get().and_then(Option::as_ref)
}

fn config(key: Option<&str>) -> Config {
    let mut config = Config::default();
    config.hmac_key = key.map(Key::from);
    config.call_timeout = Some(Duration::from_secs(60));
    config.tls = tls().and_then(|t| t.config.tls.clone());
    config
}

/// Serves a `Bench` as `bench` until killed; reports its URI through `ready`.
pub(crate) async fn serve(addr: &str, key: Option<&str>, ready: impl FnOnce(String)) -> anyhow::Result<()> {
    // The Pyro5 runs (benches/pyro5) call this daemon through its Pyro5 door.
    let pyro5 = rmi::Config::from_env()?.pyro5;
    let daemon = rmi::Daemon::builder_with_config(&config(key)).pyro5(pyro5).bind(addr).await?;
    let uri = daemon.register(Bench::default(), Some("bench"))?;
    ready(uri.to_string());
    daemon.serve().await?;
    Ok(())
}

/// Serves a name server with a storage file (every registration on disk
/// before it is acknowledged); reports its URI.
pub(crate) async fn serve_durable_names(key: Option<&str>, ready: impl FnOnce(String)) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("rmi-bench-names-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut options = rmi_naming::NameServerOptions::from_config(&config(key));
    options.port = 0;
    options.broadcast_port = None;
    options.storage = Some(path);
    let ns = rmi_naming::start(options).await?;
    ready(ns.uri().to_string());
    std::future::pending::<()>().await;
    Ok(())
}

/// Durable registrations of new names, `tasks` at a time on one connection.
pub(crate) async fn registrations(
    uri: &str,
    key: Option<&str>,
    tasks: usize,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let ns = Arc::new(NameServerProxy::from_proxy(Proxy::builder_with_config(uri, &config(key)).build()?));
    let target: rmi::ObjectUri = "RMI:obj@127.0.0.1:9999".parse()?;
    let gate = Gate::new();
    let loops = (0..tasks)
        .map(|t| {
            let (ns, gate, target) = (ns.clone(), gate.clone(), target.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while gate.running() {
                    ns.register(&format!("durable.{t}.{i}"), &target).await?;
                    gate.done(1);
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    gate.measure(plan.warmup, plan.window, loops).await
}

/// Where the suite's etcd cluster is (`RMI_BENCH_ETCD`) and the key prefix
/// of this run (`RMI_BENCH_ETCD_PREFIX`).
fn etcd_options() -> anyhow::Result<rmi_naming::EtcdOptions> {
    let endpoints = std::env::var("RMI_BENCH_ETCD").context("RMI_BENCH_ETCD (the suite sets it)")?;
    let mut options = rmi_naming::EtcdOptions::new(endpoints.split(',').map(str::to_owned).collect());
    if let Ok(prefix) = std::env::var("RMI_BENCH_ETCD_PREFIX") {
        options.prefix = prefix;
    }
    Ok(options)
}

/// Serves a name server replica on the suite's etcd cluster, first
/// registering `NAMES` names (64 at a time) when `fill`; reports its URI.
pub(crate) async fn serve_etcd_names(
    key: Option<&str>,
    fill: bool,
    ready: impl FnOnce(String),
) -> anyhow::Result<()> {
    let mut options = rmi_naming::NameServerOptions::from_config(&config(key));
    options.port = 0;
    options.broadcast_port = None;
    options.etcd = Some(etcd_options()?);
    let ns = rmi_naming::start(options).await?;
    if fill {
        let client = Arc::new(NameServerProxy::from_proxy(
            Proxy::builder_with_config(ns.uri(), &config(key)).build()?,
        ));
        let fills: Vec<_> = (0..64)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in (t..NAMES).step_by(64) {
                        let uri: rmi::ObjectUri =
                            format!("RMI:obj{i}@127.0.0.1:{}", 1 + i % 60_000).parse()?;
                        client.register(&format!("bench.name.{i}"), &uri).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for fill in fills {
            fill.await??;
        }
    }
    ready(ns.uri().to_string());
    std::future::pending::<()>().await;
    Ok(())
}

/// A replica's failover time: a client of two replicas on etcd (one it
/// starts as a process of its own, then the suite's at `uri`) looks names
/// up through the first; the first is SIGKILLed; the next lookup, which
/// goes to the other, is timed. Its median over the rounds.
pub(crate) async fn failovers(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let port_of = |uri: &str| -> anyhow::Result<u16> {
        match uri.parse::<rmi::ObjectUri>()?.location {
            rmi::Location::Tcp(hp) => Ok(hp.port),
            rmi::Location::Unix(_) => anyhow::bail!("{uri}: not TCP"),
        }
    };
    let survivor = port_of(uri)?;
    let rounds = if plan.calls < 10_000 { 3 } else { 10 };
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut first = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", "etcd-durable-names"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let stdout = first.stdout.take().context("replica stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let first_uri =
            line.trim().strip_prefix("READY ").with_context(|| format!("replica said {line:?}"))?;
        let mut config = config(key);
        config.ns_hosts = [port_of(first_uri)?, survivor]
            .into_iter()
            .map(|port| rmi::NsHost { host: rmi::Host::V4(std::net::Ipv4Addr::LOCALHOST), port: Some(port) })
            .collect();
        let ns = rmi::locate_ns_with(&config, None).await?;
        for i in 0..10 {
            ns.lookup(&format!("bench.name.{i}")).await?;
        }
        anyhow::ensure!(ns.uri().to_string() == first_uri, "the lookups went to {}", ns.uri());
        first.kill()?;
        first.wait()?;
        let started = Instant::now();
        ns.lookup("bench.name.1").await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(ns.uri().to_string() != first_uri, "no failover");
    }
    Ok(with_percentiles(latencies))
}

/// Serves a name server holding `NAMES` names; reports its URI.
pub(crate) async fn serve_names(key: Option<&str>, ready: impl FnOnce(String)) -> anyhow::Result<()> {
    let mut options = rmi_naming::NameServerOptions::from_config(&config(key));
    options.port = 0;
    options.broadcast_port = None;
    let ns = rmi_naming::start(options).await?;
    let client = NameServerProxy::from_proxy(Proxy::builder_with_config(ns.uri(), &config(key)).build()?);
    for i in 0..NAMES {
        let uri: rmi::ObjectUri = format!("RMI:obj{i}@127.0.0.1:{}", 1 + i % 60_000).parse()?;
        client.register(&format!("bench.name.{i}"), &uri).await?;
    }
    ready(ns.uri().to_string());
    std::future::pending::<()>().await;
    Ok(())
}

fn proxy(uri: &str, key: Option<&str>) -> anyhow::Result<BenchProxy> {
    Ok(BenchProxy::from_proxy(Proxy::builder_with_config(uri, &config(key)).build()?))
}

/// One call at a time: of the `#[nonblocking]` echo, or with `blocking` of
/// the plain `fn` one, which the daemon runs on tokio's blocking pool.
pub(crate) async fn seq(uri: &str, key: Option<&str>, blocking: bool, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    sequential(plan.calls / 10, plan.calls, async |i| {
        let back = if blocking { bench.echo_blocking(i).await? } else { bench.echo(i).await? };
        anyhow::ensure!(back == i);
        Ok(())
    })
    .await
}

/// [`seq`] (of the `#[nonblocking]` echo) from a spawned task.
pub(crate) async fn seq_in_task(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    sequential_in_task(bench, plan.calls / 10, plan.calls, |bench: BenchProxy, i: u64| async move {
        anyhow::ensure!(bench.echo(i).await? == i);
        Ok(bench)
    })
    .await
}

/// One call at a time, a fixed number of them, untimed one by one: what
/// `--count-instructions` counts, without the latency bookkeeping of `seq`
/// (two clock reads and a sample per call, then a sort) in the client's
/// figure.
pub(crate) async fn seq_count(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    let started = Instant::now();
    for i in 0..plan.calls {
        anyhow::ensure!(bench.echo(i).await? == i);
    }
    Ok(Outcome { ops: plan.calls, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// Connections opened one after another, each closed after its first
/// call: connecting, the TLS handshake (in a process with TLS), rmi's own
/// handshake and one `echo` are timed together; building the proxy (and,
/// with `fresh`, its `ClientTls`) and closing the connection are not. With
/// TLS, every proxy shares the process's `ClientTls`, whose session cache
/// resumes the session of the connection before; with `fresh`, each has
/// one of its own: a full handshake every time. `plan.calls / 10`
/// connections, after a tenth as many to warm up.
pub(crate) async fn connects(
    uri: &str,
    key: Option<&str>,
    fresh: bool,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let ca = match (fresh, tls()) {
        (false, _) => None,
        (true, Some(tls)) => Some(&tls.ca),
        (true, None) => anyhow::bail!("--fresh-tls needs TLS (RMI_TLS=on, RMI_TLS_CA)"),
    };
    let open = || -> anyhow::Result<BenchProxy> {
        let mut builder = Proxy::builder_with_config(uri, &config(key));
        if let Some(ca) = ca {
            builder = builder.tls(Some(ClientTls::from_pem_files(ca, None)?));
        }
        Ok(BenchProxy::from_proxy(builder.build()?))
    };
    let count = (plan.calls / 10).max(1);
    let warmup = count / 10;
    let mut latencies = Vec::with_capacity(count as usize);
    for i in 0..warmup + count {
        let bench = open()?;
        let started = Instant::now();
        anyhow::ensure!(bench.echo(i).await? == i);
        let took = started.elapsed();
        drop(bench);
        if i >= warmup {
            latencies.push(took);
        }
    }
    Ok(with_percentiles(latencies))
}

/// Callbacks: the daemon calls an object of this client back, one call at a
/// time, over the connection the client opened; the daemon times them.
pub(crate) async fn callbacks(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    let target = Remote::new(Bench::default());
    bench.callbacks(plan.calls / 10, target.clone()).await?;
    let nanos = bench.callbacks(plan.calls, target).await?;
    Ok(Outcome { ops: plan.calls, secs: nanos as f64 / 1e9, ..Outcome::default() })
}

/// One call at a time, each passing a fresh reference and getting one
/// back, both dropped: what references cost on the call path.
pub(crate) async fn refs(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    sequential(plan.calls / 10, plan.calls, async |_| {
        let back = bench.swap(Remote::new(Bench::default())).await?;
        anyhow::ensure!(back.interface() == "Bench");
        Ok(())
    })
    .await
}

/// `tasks` tasks calling through clones of one proxy: one connection.
pub(crate) async fn pipelined(
    uri: &str,
    key: Option<&str>,
    tasks: usize,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    bench.echo(0).await?;
    concurrent(vec![bench; tasks], plan, |bench: BenchProxy| async move {
        bench.echo(1).await?;
        Ok(bench)
    })
    .await
}

/// `clients` proxies with their own connections, one call at a time each.
pub(crate) async fn clients(
    uri: &str,
    key: Option<&str>,
    clients: usize,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let mut proxies = Vec::new();
    for _ in 0..clients {
        let bench = proxy(uri, key)?;
        bench.echo(0).await?;
        proxies.push(bench);
    }
    concurrent(proxies, plan, |bench: BenchProxy| async move {
        bench.echo(1).await?;
        Ok(bench)
    })
    .await
}

/// Oneway calls sent as fast as they go; the rate is of calls *completed*
/// on the server, from the first sent to the last counted there.
pub(crate) async fn oneway(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    bench.reset().await?;
    let started = Instant::now();
    for _ in 0..plan.oneways {
        bench.tick().await?;
    }
    let patience = Instant::now() + Duration::from_secs(60);
    while bench.ticks().await? < plan.oneways {
        anyhow::ensure!(Instant::now() < patience, "oneway calls went missing");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(Outcome { ops: plan.oneways, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// Calls in one batch.
pub(crate) const BATCH: u64 = 10_000;

/// Batches of `BATCH` calls, one after another: recording the calls,
/// running the batch and reading every result are all timed.
pub(crate) async fn batch(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    let one_batch = async || {
        let mut batch = bench.proxy().batch();
        let calls = (0..BATCH).map(|i| batch.call::<u64>("echo", (i,))).collect::<Result<Vec<_>, _>>()?;
        let results = batch.run().await?;
        for (i, call) in calls.into_iter().enumerate() {
            anyhow::ensure!(results.get(call)? == i as u64, "a batched call came back wrong");
        }
        Ok(())
    };
    one_batch().await?;
    let started = Instant::now();
    for _ in 0..plan.batches {
        one_batch().await?;
    }
    Ok(Outcome { ops: plan.batches * BATCH, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// A 10 MiB argument, one call at a time.
pub(crate) async fn payload(uri: &str, key: Option<&str>, plan: Plan) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    let data = Blob::from(vec![5u8; PAYLOAD]);
    transfers(plan, async || {
        anyhow::ensure!(bench.blob_len(data.clone()).await? == PAYLOAD as u64);
        Ok(())
    })
    .await
}

/// `tasks` tasks calling on one connection, a fixed number of calls in all
/// (`plan.calls`, after one to connect): what `--count-instructions`
/// divides by.
pub(crate) async fn pipelined_count(
    uri: &str,
    key: Option<&str>,
    tasks: usize,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let bench = proxy(uri, key)?;
    bench.echo(0).await?;
    let each = plan.calls / tasks as u64;
    let started = Instant::now();
    let loops: Vec<_> = (0..tasks)
        .map(|_| {
            let bench = bench.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    anyhow::ensure!(bench.echo(i).await? == i);
                }
                Ok(())
            })
        })
        .collect();
    for l in loops {
        l.await??;
    }
    Ok(Outcome { ops: each * tasks as u64, secs: started.elapsed().as_secs_f64(), ..Outcome::default() })
}

/// A stream read as fast as it comes: 8-byte items (`chunks` false) or
/// 64 KiB chunks, counted until the measuring window ends.
pub(crate) async fn stream(
    uri: &str,
    key: Option<&str>,
    chunks: bool,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    use futures::StreamExt;
    let bench = proxy(uri, key)?;
    bench.echo(0).await?;
    let gate = Gate::new();
    let reading = tokio::spawn({
        let gate = gate.clone();
        async move {
            if chunks {
                let mut stream = bench.chunks(u64::MAX).await?;
                while gate.running() {
                    let chunk = stream.next().await.context("the stream ended")??;
                    anyhow::ensure!(chunk.len() == crate::measure::CHUNK);
                    gate.done(1);
                }
            } else {
                let mut stream = bench.numbers(u64::MAX).await?;
                let mut expected = 0u64;
                while gate.running() {
                    for _ in 0..1024 {
                        let n = stream.next().await.context("the stream ended")??;
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
    let bytes = chunks.then(|| outcome.ops * crate::measure::CHUNK as u64);
    Ok(Outcome { bytes, ..outcome })
}

/// Name-server lookups of random names, `tasks` at a time on one connection.
pub(crate) async fn lookups(
    uri: &str,
    key: Option<&str>,
    tasks: usize,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let ns = NameServerProxy::from_proxy(Proxy::builder_with_config(uri, &config(key)).build()?);
    if tasks == 1 {
        return sequential(plan.calls / 10, plan.calls, async |i| {
            ns.lookup(&format!("bench.name.{}", (i * 7919) as usize % NAMES)).await?;
            Ok(())
        })
        .await;
    }
    let gate = Gate::new();
    let ns = Arc::new(ns);
    let loops = (0..tasks)
        .map(|t| {
            let (ns, gate) = (ns.clone(), gate.clone());
            tokio::spawn(async move {
                let mut i = t;
                while gate.running() {
                    ns.lookup(&format!("bench.name.{}", (i * 7919) % NAMES)).await?;
                    gate.done(1);
                    i += tasks;
                }
                Ok(())
            })
        })
        .collect();
    gate.measure(plan.warmup, plan.window, loops).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS runs' workloads, in one process: a daemon with the
    /// certificates the suite writes, read from `RMI_TLS_*` as the suite's
    /// processes read them, and proxies sharing one `ClientTls` or each with
    /// its own. (The only test that sets this process's TLS.)
    #[test]
    fn tls_workloads_run() {
        let dir = std::env::temp_dir().join(format!("rmi-bench-tls-test-{}", std::process::id()));
        rmi_naming::devcerts::write_dev_files(&dir, &["127.0.0.1", "localhost"], 1).expect("certificates");
        let file = |name: &str| Some(dir.join(name).display().to_string());
        let vars = move |var: &'static str| match var {
            "RMI_TLS" => Some("on".to_owned()),
            "RMI_TLS_CA" => file("ca.pem"),
            "RMI_TLS_SERVER_CERT" => file("server.pem"),
            "RMI_TLS_SERVER_KEY" => file("server.key"),
            _ => None,
        };
        set_tls(tls_from(vars).expect("the TLS variables")).expect("set once");
        assert!(config(None).tls.is_some_and(|t| t.server.is_some()));
        let plan = Plan {
            calls: 100,
            warmup: Duration::from_millis(20),
            window: Duration::from_millis(50),
            transfers: 1,
            oneways: 10,
            batches: 1,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let outcomes = runtime.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let server = tokio::spawn(serve("127.0.0.1:0", None, move |uri| {
                let _ = tx.send(uri);
            }));
            let uri = rx.await.expect("the daemon's URI");
            let outcomes = [
                seq(&uri, None, false, plan).await,
                pipelined(&uri, None, 4, plan).await,
                payload(&uri, None, plan).await,
                connects(&uri, None, false, plan).await,
                connects(&uri, None, true, plan).await,
            ];
            server.abort();
            outcomes
        });
        let _ = std::fs::remove_dir_all(&dir);
        for outcome in outcomes {
            let outcome = outcome.expect("a TLS workload");
            assert!(outcome.ops > 0 && outcome.secs > 0.0, "{outcome:?}");
        }
    }
}
