//! `rmi-bench-grpc`: a tonic gRPC baseline for rmi-bench. The same
//! interface as `rmi-bench`'s internal commands, so the suite can run it as
//! one more system: a server process that prints `READY <address>`, and a
//! client process per workload that prints `RESULT <json>`.
//!
//! ```text
//! rmi-bench-grpc serve tonic [--threads N]
//! rmi-bench-grpc client tonic <workload> <address> [--threads N] [--quick]
//! ```
//!
//! Workloads: `seq`, `pipe64`, `clients8`, `payload`, `stream-items`,
//! `stream-chunks`. See README.md.

#![warn(missing_docs)]

mod client;
// rmi-bench's own timing and process helpers, so that every system is
// measured alike.
#[allow(dead_code)]
#[path = "../../src/measure.rs"]
mod measure;
#[path = "../../src/process.rs"]
mod process;
mod server;

/// The code tonic-prost-build generates from `proto/bench.proto`.
#[allow(missing_docs, clippy::all)]
mod pb {
    tonic::include_proto!("bench");
}

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use measure::{Outcome, Plan};
use process::runtime;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("client") => run_client(&args[1..]),
        Some("--help" | "-h") => {
            println!("{HELP}");
            Ok(())
        }
        _ => Err(anyhow::anyhow!("serve or client? (--help)")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmi-bench-grpc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `--help` prints.
const HELP: &str = "\
rmi-bench-grpc serve tonic [--threads N]
rmi-bench-grpc client tonic <workload> <address> [--threads N] [--quick]

A tonic gRPC baseline for rmi-bench. The server prints `READY <address>` and
serves on 127.0.0.1 until killed; the client runs one workload (seq, pipe64,
clients8, payload, stream-items, stream-chunks) and prints `RESULT <json>`.
--threads 1 (the default): a current-thread runtime; 0: tokio's default
multi-thread runtime; N: a multi-thread runtime with N workers.
--quick: rmi-bench's quick plan instead of the full one.";

/// `serve tonic`: prints `READY <address>`, then serves until killed.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let system = args.first().context("serve what?")?;
    anyhow::ensure!(system == "tonic", "no such system {system:?}");
    runtime(args)?.block_on(server::serve("127.0.0.1:0", |addr| {
        println!("READY {addr}");
        let _ = std::io::stdout().flush();
    }))
}

/// `client tonic <workload> <address>`: prints `RESULT <json>`.
fn run_client(args: &[String]) -> anyhow::Result<()> {
    let [system, workload, target, ..] = args else { anyhow::bail!("client <system> <workload> <address>") };
    let plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    let outcome: Outcome = runtime(args)?.block_on(async {
        match (system.as_str(), workload.as_str()) {
            ("tonic", "seq") => client::seq(target, plan).await,
            ("tonic", "pipe64") => client::pipelined(target, 64, plan).await,
            ("tonic", "clients8") => client::clients(target, 8, plan).await,
            ("tonic", "payload") => client::payload(target, plan).await,
            ("tonic", "stream-items") => client::stream(target, false, plan).await,
            ("tonic", "stream-chunks") => client::stream(target, true, plan).await,
            (s, w) => anyhow::bail!("no workload {w:?} for {s:?}"),
        }
    })?;
    println!("RESULT {}", serde_json::to_string(&outcome)?);
    Ok(())
}
