//! Runs every benchmark: for each, starts the server process, runs the
//! client process, stops the server, and keeps the outcome.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::flag;
use crate::measure::Outcome;
use crate::report;

/// One benchmark: a server, a client workload, and how they run.
#[derive(Debug, Clone)]
struct Bench {
    name: String,
    server: &'static str,
    client: &'static str,
    workload: &'static str,
    wire: Wire,
    pinned: bool,
    threads: usize,
    /// Run by the tonic baseline's own binary (benches/grpc), not this one.
    grpc: bool,
}

/// How a benchmark's connections are protected (rmi's runs; every other
/// system's are plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Plaintext.
    Plain,
    /// A shared key (`--key`): every write sealed with HMAC-SHA256.
    Key,
    /// TLS, from the `RMI_TLS_*` variables the suite gives both processes
    /// (certificates it wrote at the start of the run): the client's
    /// proxies share one `ClientTls`, and so its session cache.
    Tls,
    /// TLS with a fresh `ClientTls` for each connection the client opens
    /// (`--fresh-tls`): no session to resume, a full handshake every time.
    TlsFresh,
}

/// What each system's processes run on: tarpc as its users run it (tokio's
/// multi-thread runtime, one worker per core); raw TCP on a current-thread
/// runtime (the limit); rmi as `--rmi-threads` says, and `rmi.mt.*` on
/// tokio's default multi-thread runtime.
fn benches(rmi_threads: usize, grpc: bool) -> Vec<Bench> {
    let mut all = Vec::new();
    let mut add = |name: &str, server: &'static str, client, workload, wire, pinned, threads| {
        let grpc = server == "tonic";
        all.push(Bench { name: name.to_owned(), server, client, workload, wire, pinned, threads, grpc });
    };
    use Wire::{Key, Plain, Tls, TlsFresh};
    // Grouped by workload, so that each figure and its baselines are measured
    // within seconds of each other on a shared machine.
    // rmi.mt.*: rmi on tokio's default multi-thread runtime (`--threads 0`),
    // as `#[tokio::main]` users run it, beside its current-thread figures.
    // tonic (with --grpc) on tokio's default multi-thread runtime, as its
    // users run it.
    let all_systems = [
        ("tcp", "tcp", "tcp-echo", 1),
        ("tarpc", "tarpc", "tarpc", 2),
        ("tonic", "tonic", "tonic", 0),
        ("rmi", "rmi", "rmi", rmi_threads),
        ("rmi.mt", "rmi", "rmi", 0),
    ];
    let systems: Vec<_> = all_systems.into_iter().filter(|(name, ..)| grpc || *name != "tonic").collect();
    let systems = systems.as_slice();
    for (workload, suffix, pinned) in
        [("seq", "seq", false), ("seq", "seq.pinned", true), ("pipe64", "pipe64", false)]
    {
        for &(name, system, server, threads) in systems {
            add(&format!("{name}.{suffix}"), server, system, workload, Plain, pinned, threads);
        }
        // Raw TCP on the multi-thread runtime too: what tokio's scheduler
        // itself costs a client that calls from `block_on` (`#[tokio::main]`'s
        // body), apart from what rmi adds.
        add(&format!("tcp.mt.{suffix}"), "tcp-echo", "tcp", workload, Plain, pinned, 0);
        if workload == "seq" {
            // Called from a spawned task, as a server's handlers call, rather
            // than from `#[tokio::main]`'s body.
            let task = if pinned { "seq.task.pinned" } else { "seq.task" };
            add(&format!("tcp.mt.{task}"), "tcp-echo", "tcp", "seq-task", Plain, pinned, 0);
            add(&format!("rmi.mt.{task}"), "rmi", "rmi", "seq-task", Plain, pinned, 0);
        }
        add(&format!("rmi.hmac.{suffix}"), "rmi", "rmi", workload, Key, pinned, rmi_threads);
        add(&format!("rmi.tls.{suffix}"), "rmi", "rmi", workload, Tls, pinned, rmi_threads);
        if workload == "seq" {
            // The same call to a plain `fn`, which runs on the blocking pool.
            let name = if pinned { "rmi.seq.blocking.pinned" } else { "rmi.seq.blocking" };
            add(name, "rmi", "rmi", "seq-blocking", Plain, pinned, rmi_threads);
            let name = if pinned { "rmi.mt.seq.blocking.pinned" } else { "rmi.mt.seq.blocking" };
            add(name, "rmi", "rmi", "seq-blocking", Plain, pinned, 0);
            // The daemon calling the client back, and references passed.
            let name = if pinned { "rmi.callback.pinned" } else { "rmi.callback" };
            add(name, "rmi", "rmi", "callback", Plain, pinned, rmi_threads);
            let name = if pinned { "rmi.refs.pinned" } else { "rmi.refs" };
            add(name, "rmi", "rmi", "refs", Plain, pinned, rmi_threads);
        }
    }
    for &(name, system, server, threads) in systems {
        add(&format!("{name}.clients8"), server, system, "clients8", Plain, false, threads);
    }
    for &(name, system, server, threads) in systems {
        let server = if system == "tcp" { "tcp-sink" } else { server };
        add(&format!("{name}.payload"), server, system, "payload", Plain, false, threads);
    }
    add("rmi.hmac.payload", "rmi", "rmi", "payload", Key, false, rmi_threads);
    add("rmi.tls.payload", "rmi", "rmi", "payload", Tls, false, rmi_threads);
    // Connection setup: connecting, the handshakes and a first call, over
    // plaintext, over TLS resuming the session of the connection before,
    // and over TLS with a full handshake each time.
    add("rmi.connect", "rmi", "rmi", "connect", Plain, false, rmi_threads);
    add("rmi.tls.connect.resumed", "rmi", "rmi", "connect", Tls, false, rmi_threads);
    add("rmi.tls.connect.full", "rmi", "rmi", "connect", TlsFresh, false, rmi_threads);
    // Streams: 8-byte items and 64 KiB chunks, read as fast as they come.
    for (workload, suffix) in [("stream-items", "stream.items"), ("stream-chunks", "stream.chunks")] {
        add(&format!("tcp.{suffix}"), "tcp-source", "tcp", workload, Plain, false, 1);
        if grpc {
            add(&format!("tonic.{suffix}"), "tonic", "tonic", workload, Plain, false, 0);
        }
        add(&format!("rmi.{suffix}"), "rmi", "rmi", workload, Plain, false, rmi_threads);
        add(&format!("rmi.mt.{suffix}"), "rmi", "rmi", workload, Plain, false, 0);
    }
    add("rmi.oneway", "rmi", "rmi", "oneway", Plain, false, rmi_threads);
    add("rmi.batch", "rmi", "rmi", "batch", Plain, false, rmi_threads);
    add("rmi.lookup.seq", "names", "rmi", "lookup-seq", Plain, false, rmi_threads);
    add("rmi.lookup.pipe64", "names", "rmi", "lookup-pipe64", Plain, false, rmi_threads);
    // rmi.etcd.*: a name server replica on a local three-member etcd cluster
    // the suite starts (skipped, said, without etcd): lookups from its
    // watched cache, registrations committed by etcd, and failing over to
    // another replica when one is SIGKILLed.
    add("rmi.etcd.lookup.pipe64", "etcd-names", "rmi", "lookup-pipe64", Plain, false, rmi_threads);
    add("rmi.register.seq", "durable-names", "rmi", "register-seq", Plain, false, rmi_threads);
    add("rmi.register.pipe64", "durable-names", "rmi", "register-pipe64", Plain, false, rmi_threads);
    add(
        "rmi.etcd.register.pipe64",
        "etcd-durable-names",
        "rmi",
        "register-pipe64",
        Plain,
        false,
        rmi_threads,
    );
    add("rmi.etcd.failover", "etcd-names", "rmi", "failover", Plain, false, rmi_threads);
    all
}

const BENCH_KEY: &str = "benchmark-key";

/// Builds the tonic baseline (benches/grpc/build.sh: protoc from the
/// system's packages, then cargo) and returns its binary.
fn build_grpc() -> anyhow::Result<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grpc").join("build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .context("running benches/grpc/build.sh")?;
    anyhow::ensure!(output.status.success(), "benches/grpc/build.sh failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout.lines().last().context("benches/grpc/build.sh printed no binary")?;
    Ok(PathBuf::from(path.trim()))
}

fn command(bench: &Bench, grpc: Option<&PathBuf>) -> anyhow::Result<Command> {
    let exe = match (bench.grpc, grpc) {
        (true, Some(path)) => path.clone(),
        (true, None) => anyhow::bail!("{} needs the tonic baseline (--grpc)", bench.name),
        (false, _) => std::env::current_exe()?,
    };
    let pinned = bench.pinned;
    Ok(if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(exe);
        c
    } else {
        Command::new(exe)
    })
}

/// Kills the server when dropped, whatever happened.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The throwaway certificates of the TLS runs, written at the start of a
/// run into a directory of their own, removed at its end.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// A CA, a certificate for the server (`127.0.0.1` and `localhost`, the
    /// addresses the servers print) and one for a client, valid for a day.
    fn write() -> anyhow::Result<Certs> {
        let dir = std::env::temp_dir().join(format!("rmi-bench-tls-{}", std::process::id()));
        let certs = Certs { dir };
        rmi_naming::devcerts::write_dev_files(&certs.dir, &["127.0.0.1", "localhost"], 1)
            .context("writing the TLS runs' certificates")?;
        Ok(certs)
    }

    fn file(&self, var: &str) -> anyhow::Result<PathBuf> {
        let (_, name) = rmi_naming::devcerts::DEV_FILES
            .iter()
            .find(|(v, _)| *v == var)
            .with_context(|| format!("devcerts writes no file for {var}"))?;
        Ok(self.dir.join(name))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every `RMI_TLS_*` variable: none reaches a benchmark process but those
/// its run sets, whatever the suite's own environment holds.
const TLS_VARS: [&str; 7] = [
    "RMI_TLS",
    "RMI_TLS_CA",
    "RMI_TLS_SERVER_CERT",
    "RMI_TLS_SERVER_KEY",
    "RMI_TLS_REQUIRE_CLIENT_CERT",
    "RMI_TLS_CLIENT_CERT",
    "RMI_TLS_CLIENT_KEY",
];

/// What `bench`'s server (`server`) or client process is told: its key,
/// its TLS variables (the server's certificate and key for the server, the
/// CA for both: clients without a certificate of their own, the daemon
/// asking for none it requires), and `--fresh-tls` for the client of a
/// full-handshake run.
fn protect(c: &mut Command, bench: &Bench, server: bool, certs: Option<&Certs>) -> anyhow::Result<()> {
    for var in TLS_VARS {
        c.env_remove(var);
    }
    match bench.wire {
        Wire::Plain => {}
        Wire::Key => {
            c.args(["--key", BENCH_KEY]);
        }
        Wire::Tls | Wire::TlsFresh => {
            let certs = certs.with_context(|| format!("{} needs the run's certificates", bench.name))?;
            c.env("RMI_TLS", "on").env("RMI_TLS_CA", certs.file("RMI_TLS_CA")?);
            if server {
                c.env("RMI_TLS_SERVER_CERT", certs.file("RMI_TLS_SERVER_CERT")?);
                c.env("RMI_TLS_SERVER_KEY", certs.file("RMI_TLS_SERVER_KEY")?);
            } else if bench.wire == Wire::TlsFresh {
                c.arg("--fresh-tls");
            }
        }
    }
    Ok(())
}

/// The local etcd cluster of the `rmi.etcd.*` runs, and its data.
struct Etcd {
    cluster: rmi_naming::devetcd::DevCluster,
    dir: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl Etcd {
    /// Three members, if etcd is installed.
    fn start() -> anyhow::Result<Option<Etcd>> {
        let Some(etcd) = rmi_naming::devetcd::etcd_binary() else { return Ok(None) };
        let dir = std::env::temp_dir().join(format!("rmi-bench-etcd-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let cluster = rmi_naming::devetcd::DevCluster::start(&etcd, &dir, 3).context("starting etcd")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(cluster.wait_for_leader(std::time::Duration::from_secs(30)))
            .context("etcd elected no leader in 30 s")?;
        Ok(Some(Etcd { cluster, dir, runs: std::cell::Cell::new(0) }))
    }

    /// What a run's processes are told: the members, and a key prefix of
    /// the run's own (so that no run sees another's names).
    fn tell(&self, c: &mut Command, run: u32) {
        c.env("RMI_BENCH_ETCD", self.cluster.endpoints());
        c.env("RMI_BENCH_ETCD_PREFIX", format!("/rmi-bench/{}/{run}/", std::process::id()));
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.cluster.members.len() {
            self.cluster.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(
    bench: &Bench,
    grpc: Option<&PathBuf>,
    certs: Option<&Certs>,
    etcd: Option<&Etcd>,
) -> anyhow::Result<(Server, String)> {
    let mut c = command(bench, grpc)?;
    c.args(["serve", bench.server, "--threads", &bench.threads.to_string()]);
    protect(&mut c, bench, true, certs)?;
    if let Some(etcd) = etcd.filter(|_| bench.server.starts_with("etcd-")) {
        etcd.runs.set(etcd.runs.get() + 1);
        etcd.tell(&mut c, etcd.runs.get());
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("starting a server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let target =
        line.trim().strip_prefix("READY ").with_context(|| format!("server said {line:?}"))?.to_owned();
    Ok((server, target))
}

fn run_client(
    bench: &Bench,
    target: &str,
    quick: bool,
    grpc: Option<&PathBuf>,
    certs: Option<&Certs>,
    etcd: Option<&Etcd>,
) -> anyhow::Result<Outcome> {
    let mut c = command(bench, grpc)?;
    c.args(["client", bench.client, bench.workload, target, "--threads", &bench.threads.to_string()]);
    protect(&mut c, bench, false, certs)?;
    if let Some(etcd) = etcd.filter(|_| bench.server.starts_with("etcd-")) {
        etcd.tell(&mut c, etcd.runs.get());
    }
    if quick {
        c.arg("--quick");
    }
    let output = c.stderr(Stdio::inherit()).output().context("running a client")?;
    anyhow::ensure!(output.status.success(), "{} failed: {}", bench.name, output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json =
        stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).context("the client printed no result")?;
    Ok(serde_json::from_str(json)?)
}

/// The Pyro5 runs (`benches/pyro5/run.sh`): its json pairs (the same Python
/// client calling a Pyro5 daemon and rmi's) in `rounds` rounds of their own.
fn pyro(quick: bool, rounds: usize) -> anyhow::Result<BTreeMap<String, Outcome>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pyro5").join("run.sh");
    let mut c = Command::new("bash");
    c.arg(&script).arg("--json").arg("--rounds").arg(rounds.to_string());
    // Its json runs also call this binary's rmi daemon through its Pyro5 door.
    c.env("RMI_BENCH_BIN", std::env::current_exe()?);
    if quick {
        c.arg("--quick");
    }
    let output = c.stderr(Stdio::inherit()).output().context("running benches/pyro5/run.sh")?;
    anyhow::ensure!(output.status.success(), "benches/pyro5/run.sh failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout.lines().rev().find(|l| l.starts_with('{')).context("the Pyro5 run printed no JSON")?;
    Ok(serde_json::from_str(json)?)
}

/// Whether two benchmarks next to each other are of one group: one
/// workload (`seq-task` counts as `seq`, whose baselines it is read
/// against) and one pinning.
fn same_group(a: &Bench, b: &Bench) -> bool {
    let kind = |w: &'static str| if w == "seq-task" { "seq" } else { w };
    kind(a.workload) == kind(b.workload) && a.pinned == b.pinned
}

/// The benchmarks in their order, or with each run of benchmarks of one
/// workload (and pinning) reversed.
fn in_order(chosen: &[Bench], reversed: bool) -> Vec<&Bench> {
    let mut order: Vec<&Bench> = Vec::with_capacity(chosen.len());
    for group in chosen.chunk_by(same_group) {
        if reversed {
            order.extend(group.iter().rev());
        } else {
            order.extend(group);
        }
    }
    order
}

/// The outcome with the median rate.
fn median(mut samples: Vec<Outcome>) -> Option<Outcome> {
    samples.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let middle = samples.len() / 2;
    samples.into_iter().nth(middle)
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let rmi_threads: usize = flag(args, "--rmi-threads").unwrap_or("1").parse().context("--rmi-threads")?;
    let repeat: usize =
        flag(args, "--repeat").unwrap_or(if quick { "1" } else { "3" }).parse().context("--repeat")?;
    let only: Option<Vec<&str>> = flag(args, "--only").map(|o| o.split(',').collect());
    // --tls: the TLS runs and the runs they are compared with, alone.
    let tls_only = args.iter().any(|a| a == "--tls").then(report::tls_runs);
    let grpc = if args.iter().any(|a| a == "--grpc") {
        eprintln!("building the tonic baseline (benches/grpc/build.sh)…");
        Some(build_grpc()?)
    } else {
        None
    };
    let mut chosen: Vec<Bench> = benches(rmi_threads, grpc.is_some())
        .into_iter()
        .filter(|b| only.as_ref().is_none_or(|o| o.iter().any(|n| b.name.starts_with(n))))
        .filter(|b| tls_only.as_ref().is_none_or(|t| t.contains(&b.name.as_str())))
        .collect();
    let etcd = if chosen.iter().any(|b| b.server.starts_with("etcd-")) {
        let etcd = Etcd::start()?;
        if etcd.is_none() {
            eprintln!(
                "!!! etcd is not installed (apt-get install etcd-server): the rmi.etcd.* runs are skipped"
            );
            chosen.retain(|b| !b.server.starts_with("etcd-"));
        }
        etcd
    } else {
        None
    };
    let certs = if chosen.iter().any(|b| matches!(b.wire, Wire::Tls | Wire::TlsFresh)) {
        Some(Certs::write()?)
    } else {
        None
    };
    // Rounds run every benchmark once, so that the baselines and rmi meet
    // the same moments of a shared, noisy machine; each figure is the
    // median of its rounds, and each ratio the median of the ratios of its
    // rounds. Every other round runs each group of benchmarks of one
    // workload in the reverse order, so that a machine growing busier or
    // quieter favours neither side.
    let mut samples: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    let mut rounds: Vec<BTreeMap<String, Outcome>> = Vec::new();
    for round in 1..=repeat {
        if repeat > 1 {
            eprintln!("round {round} of {repeat}");
        }
        let mut this_round = BTreeMap::new();
        for bench in in_order(&chosen, round % 2 == 0) {
            eprint!("{:<24}", bench.name);
            let (server, target) = start_server(bench, grpc.as_ref(), certs.as_ref(), etcd.as_ref())?;
            let outcome = run_client(bench, &target, quick, grpc.as_ref(), certs.as_ref(), etcd.as_ref())?;
            drop(server);
            eprintln!("{}", report::summary(&outcome));
            samples.entry(bench.name.clone()).or_default().push(outcome.clone());
            this_round.insert(bench.name.clone(), outcome);
        }
        rounds.push(this_round);
    }
    let mut results: BTreeMap<String, Outcome> =
        samples.into_iter().filter_map(|(name, runs)| median(runs).map(|m| (name, m))).collect();
    if args.iter().any(|a| a == "--pyro") {
        eprintln!("Pyro5 (benches/pyro5/run.sh)…");
        for (name, outcome) in pyro(quick, repeat)? {
            // A paired run's rounds join the suite's rounds, so that its
            // ratio is the median of its rounds' ratios as the others' are.
            match name.split_once('@').and_then(|(n, r)| Some((n, r.parse::<usize>().ok()?))) {
                Some((name, round)) => {
                    if rounds.len() <= round {
                        rounds.resize_with(round + 1, BTreeMap::new);
                    }
                    rounds[round].insert(format!("pyro.{name}"), outcome);
                }
                None => {
                    results.insert(format!("pyro.{name}"), outcome);
                }
            }
        }
    }
    report::print(&results, &rounds, quick, rmi_threads, repeat);
    if let Some(path) = flag(args, "--save") {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_comparison_is_of_runs_the_suite_has() {
        let names: Vec<String> = benches(1, true).into_iter().map(|b| b.name).collect();
        for (rmi, base) in report::comparisons() {
            for run in [rmi, base] {
                assert!(
                    run.starts_with("pyro.") || names.iter().any(|n| n == run),
                    "{run} is compared but not run"
                );
            }
        }
    }

    #[test]
    fn each_tls_run_is_measured_beside_its_baseline() {
        let all = benches(1, false);
        let order = in_order(&all, false);
        // The group (a run of one workload and pinning) each run is in.
        let mut group = BTreeMap::new();
        for (i, chunk) in order.chunk_by(|a, b| same_group(a, b)).enumerate() {
            for bench in chunk {
                group.insert(bench.name.as_str(), i);
            }
        }
        let tls = report::tls_runs();
        assert!(tls.len() >= 8, "{tls:?}");
        for (rmi, base) in report::comparisons().into_iter().filter(|(r, _)| r.starts_with("rmi.tls.")) {
            assert_eq!(group.get(rmi), group.get(base), "{rmi} and {base} are measured apart");
            assert!(tls.contains(&rmi) && tls.contains(&base));
        }
        for bench in &all {
            let is_tls = matches!(bench.wire, Wire::Tls | Wire::TlsFresh);
            assert_eq!(is_tls, bench.name.starts_with("rmi.tls."), "{}", bench.name);
        }
    }

    #[test]
    fn tls_runs_get_their_files_and_no_other_run_does() {
        let certs = Certs::write().expect("certificates");
        for name in ["ca.pem", "server.pem", "server.key"] {
            assert!(certs.dir.join(name).is_file(), "{name}");
        }
        let all = benches(1, false);
        let find = |name: &str| all.iter().find(|b| b.name == name).expect(name).clone();
        let env = |bench: &Bench, server: bool| {
            let mut c = Command::new("true");
            protect(&mut c, bench, server, Some(&certs)).expect("protect");
            let vars: BTreeMap<String, Option<String>> = c
                .get_envs()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned())))
                .collect();
            let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            (vars, args)
        };
        let (vars, args) = env(&find("rmi.tls.payload"), true);
        assert_eq!(vars["RMI_TLS"].as_deref(), Some("on"));
        assert!(vars["RMI_TLS_SERVER_KEY"].as_deref().is_some_and(|k| k.ends_with("server.key")));
        assert!(args.is_empty());
        let (vars, args) = env(&find("rmi.tls.connect.full"), false);
        assert_eq!(vars["RMI_TLS_SERVER_KEY"], None, "a client gets no server key");
        assert!(vars["RMI_TLS_CA"].is_some());
        assert_eq!(args, ["--fresh-tls"]);
        // Plaintext runs: every TLS variable removed, whatever the suite's own
        // environment holds.
        let (vars, args) = env(&find("rmi.payload"), true);
        assert!(TLS_VARS.iter().all(|v| vars[*v].is_none()), "{vars:?}");
        assert!(args.is_empty());
        let dir = certs.dir.clone();
        drop(certs);
        assert!(!dir.exists());
    }
}
