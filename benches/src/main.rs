//! `rmi-bench`: rmi against the limit (raw tokio TCP), its peer (plain
//! tarpc) and Pyro5, on loopback, every server and client in a process of its
//! own (and tonic's gRPC, from benches/grpc, with `--grpc`); prints each rmi figure with its ratio to the matching baseline from
//! the same run. See `benches/README.md`.
//!
//! ```text
//! cargo run --release -p rmi-bench                 # the whole suite (~2 minutes)
//! cargo run --release -p rmi-bench -- --pyro       # with Pyro5 (makes a virtualenv on first use)
//! cargo run --release -p rmi-bench -- --quick      # a fast, rougher run
//! cargo bench -p rmi-bench                         # the quick suite
//! ```

// A benchmark binary: its `pub` items are for the generated proxy only.
#![allow(unreachable_pub)]

mod chart;
mod instructions;
mod measure;
mod process;
mod report;
mod suite;
mod systems {
    pub(crate) mod rmi_calls;
    pub(crate) mod tarpc_plain;
    pub(crate) mod tcp;
}

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use measure::{Outcome, Plan};
pub(crate) use process::flag;
use process::runtime;
use systems::{rmi_calls, tarpc_plain, tcp};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("client") => client(&args[1..]),
        Some("--count-instructions") => instructions::run_all(),
        Some("--chart") => chart::run(&args[1..]),
        Some("--help" | "-h") => {
            println!("{}", HELP);
            Ok(())
        }
        _ => suite::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmi-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "\
rmi-bench [--quick] [--repeat N] [--pyro] [--grpc] [--only NAMES] [--tls] [--rmi-threads N] [--save FILE]
rmi-bench --count-instructions
rmi-bench --chart FROM.json OUT.svg [--rmi-threads N]

Runs every benchmark: raw TCP, plain tarpc and rmi (and Pyro5 with --pyro),
each server and client in its own process, unpinned and pinned to CPU 0;
prints each figure with its ratio to the matching baseline.

  --quick          shorter runs, one round (rougher figures)
  --repeat N       rounds (default 3; 1 with --quick); each figure is the median
  --pyro           also run benches/pyro5 (creates benches/pyro5/.venv with Pyro5 from PyPI)
  --grpc           also run tonic (gRPC), built by benches/grpc/build.sh (installs protoc with apt-get)
  --only NAMES     comma-separated run names to keep (see the table's first column)
  --tls            only the TLS runs (rmi.tls.*) and the runs they are compared with
                   (every run takes the RMI_TLS_* variables of certificates written to a
                   temporary directory at the start)
  --rmi-threads N  worker threads of rmi's processes (1: current-thread runtime; default 1);
                   the rmi.mt.* runs always use tokio's default multi-thread runtime
  --save FILE      write every outcome as JSON

--count-instructions counts the instructions per call of each side (daemon, client) with
callgrind (valgrind must be installed), for `echo` one at a time and 64 in flight, with both
processes on a current-thread runtime and on tokio's default multi-thread one: each side runs
under callgrind twice, a short run and a long one; the difference over the calls between them
is the cost per call, whatever the machine's load. Raw tokio TCP (its echo server and a client
of 8-byte round trips) is counted the same way beside it: what rmi executes above that floor
is its own.

--chart draws a file that --save wrote as an SVG bar chart: one group of bars per workload
(rmi, rmi.mt, raw TCP, tarpc, tonic, Pyro5, those that ran it), each bar that system's calls/s
(MB/s for payloads) divided by rmi's, on a log scale; --rmi-threads N says what the saved run
had, for the legend (default 1: a current-thread runtime).

Internal: rmi-bench serve <system> [--key K] [--threads N]
          rmi-bench client <system> <workload> <target> [--key K] [--threads N] [--quick] [--fresh-tls]
          (both with TLS when RMI_TLS=on: RMI_TLS_CA, and RMI_TLS_SERVER_CERT/_KEY to serve)";

/// `serve <system>`: prints `READY <address or URI>`, then serves until killed.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let system = args.first().context("serve what?")?.clone();
    let key = flag(args, "--key").map(str::to_owned);
    rmi_calls::init_tls()?;
    let ready = |what: String| {
        println!("READY {what}");
        let _ = std::io::stdout().flush();
    };
    runtime(args)?.block_on(async move {
        match system.as_str() {
            "tcp-echo" | "tcp-sink" | "tcp-source" => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                ready(listener.local_addr()?.to_string());
                match system.as_str() {
                    "tcp-echo" => tcp::serve_echo(listener).await,
                    "tcp-sink" => tcp::serve_sink(listener).await,
                    _ => tcp::serve_source(listener).await,
                }
            }
            "tarpc" => tarpc_plain::serve("127.0.0.1:0", |a| ready(a.to_string())).await,
            "rmi" => rmi_calls::serve("127.0.0.1:0", key.as_deref(), ready).await,
            "names" => rmi_calls::serve_names(key.as_deref(), ready).await,
            "durable-names" => rmi_calls::serve_durable_names(key.as_deref(), ready).await,
            "etcd-names" => rmi_calls::serve_etcd_names(key.as_deref(), true, ready).await,
            "etcd-durable-names" => rmi_calls::serve_etcd_names(key.as_deref(), false, ready).await,
            other => anyhow::bail!("no such system {other:?}"),
        }
    })
}

/// `client <system> <workload> <target>`: prints `RESULT <json>`.
fn client(args: &[String]) -> anyhow::Result<()> {
    let [system, workload, target, ..] = args else { anyhow::bail!("client <system> <workload> <target>") };
    let key = flag(args, "--key");
    rmi_calls::init_tls()?;
    let fresh_tls = args.iter().any(|a| a == "--fresh-tls");
    let plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    let outcome: Outcome = runtime(args)?.block_on(async {
        match (system.as_str(), workload.as_str()) {
            ("tcp", "seq") => tcp::seq(target, plan).await,
            ("tcp", "pipe64") => tcp::pipelined(target, 64, plan).await,
            ("tcp", "clients8") => tcp::clients(target, 8, plan).await,
            ("tcp", "payload") => tcp::payload(target, plan).await,
            ("tcp", "stream-items") => tcp::stream(target, false, plan).await,
            ("tcp", "stream-chunks") => tcp::stream(target, true, plan).await,
            ("tarpc", "seq") => tarpc_plain::seq(target, plan).await,
            ("tarpc", "pipe64") => tarpc_plain::pipelined(target, 64, plan).await,
            ("tarpc", "clients8") => tarpc_plain::clients(target, 8, plan).await,
            ("tarpc", "payload") => tarpc_plain::payload(target, plan).await,
            ("rmi", "seq") => rmi_calls::seq(target, key, false, plan).await,
            ("tcp", "seq-task") => tcp::seq_in_task(target, plan).await,
            ("tcp", "seq-count") => tcp::seq_count(target, plan).await,
            ("tcp", "pipe64-count") => tcp::pipelined_count(target, 64, plan).await,
            ("rmi", "seq-task") => rmi_calls::seq_in_task(target, key, plan).await,
            ("rmi", "seq-blocking") => rmi_calls::seq(target, key, true, plan).await,
            ("rmi", "seq-count") => rmi_calls::seq_count(target, key, plan).await,
            ("rmi", "callback") => rmi_calls::callbacks(target, key, plan).await,
            ("rmi", "refs") => rmi_calls::refs(target, key, plan).await,
            ("rmi", "pipe64") => rmi_calls::pipelined(target, key, 64, plan).await,
            ("rmi", "pipe64-count") => rmi_calls::pipelined_count(target, key, 64, plan).await,
            ("rmi", "clients8") => rmi_calls::clients(target, key, 8, plan).await,
            ("rmi", "oneway") => rmi_calls::oneway(target, key, plan).await,
            ("rmi", "batch") => rmi_calls::batch(target, key, plan).await,
            ("rmi", "payload") => rmi_calls::payload(target, key, plan).await,
            ("rmi", "connect") => rmi_calls::connects(target, key, fresh_tls, plan).await,
            ("rmi", "stream-items") => rmi_calls::stream(target, key, false, plan).await,
            ("rmi", "stream-chunks") => rmi_calls::stream(target, key, true, plan).await,
            ("rmi", "lookup-seq") => rmi_calls::lookups(target, key, 1, plan).await,
            ("rmi", "lookup-pipe64") => rmi_calls::lookups(target, key, 64, plan).await,
            ("rmi", "register-seq") => rmi_calls::registrations(target, key, 1, plan).await,
            ("rmi", "register-pipe64") => rmi_calls::registrations(target, key, 64, plan).await,
            ("rmi", "failover") => rmi_calls::failovers(target, key, plan).await,
            (s, w) => anyhow::bail!("no workload {w:?} for {s:?}"),
        }
    })?;
    println!("RESULT {}", serde_json::to_string(&outcome)?);
    Ok(())
}
