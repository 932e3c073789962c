//! `rmi-bench --count-instructions`: instructions per call, counted by
//! callgrind rather than timed, so that the figure does not move with the
//! machine's load.
//!
//! For each workload and each side, that side runs under callgrind and the
//! other natively, twice: a short run (the quick plan) and a long one (the
//! full plan). The difference of the two runs' instruction counts over the
//! difference of their calls is the side's cost per call: start-up,
//! connecting and the warm-up cancel out.
//!
//! Raw tokio TCP is counted the same way beside it, on the same runtime
//! (its echo server, 8-byte frames one at a time, or 64 kept in flight
//! from one loop): what is left of rmi's figure above it is rmi's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::measure::Outcome;

/// The workloads counted: one call at a time, and 64 in flight, each a
/// fixed number of calls made without timing each (the latency samples of
/// `seq` would count in the client's figure).
const WORKLOADS: [&str; 2] = ["seq-count", "pipe64-count"];

/// The runtimes both processes run on, as `--threads` names them: a
/// current-thread one, and tokio's default multi-thread one (what
/// `#[tokio::main]` gives; its workers' instructions count too).
const RUNTIMES: [(&str, &str); 2] = [("1", "current-thread"), ("0", "multi-thread")];

/// The systems counted, as `serve` and `client` name them: rmi, and raw
/// TCP's echo (the floor).
const SYSTEMS: [(&str, &str); 2] = [("rmi", "rmi"), ("tcp-echo", "tcp")];

/// One side's run under callgrind: its instruction count, and the calls
/// the client made.
fn run(
    (server_system, client_system): (&str, &str),
    side: &str,
    workload: &str,
    threads: &str,
    quick: bool,
    out: &Path,
) -> anyhow::Result<(u64, u64)> {
    let exe = std::env::current_exe()?;
    // This binary, under callgrind for the side being counted.
    let command = |counted: bool| {
        if !counted {
            return Command::new(&exe);
        }
        let mut c = Command::new("valgrind");
        c.arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", out.display())).arg(&exe);
        c
    };
    let mut server = command(side == "daemon");
    server.args(["serve", server_system, "--threads", threads]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut server =
        server.spawn().context("starting the server (is valgrind installed? apt-get install valgrind)")?;
    let stdout = server.stdout.take().context("server stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let target =
        line.trim().strip_prefix("READY ").with_context(|| format!("server said {line:?}"))?.to_owned();
    let mut client = command(side == "client");
    client.args(["client", client_system, workload, &target, "--threads", threads]);
    if quick {
        client.arg("--quick");
    }
    let output = client.stderr(Stdio::null()).output().context("running the client")?;
    // SIGTERM, not SIGKILL: callgrind writes its counts as the process ends.
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    let _ = server.wait();
    anyhow::ensure!(output.status.success(), "the client failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json =
        stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).context("the client printed no result")?;
    let outcome: Outcome = serde_json::from_str(json)?;
    Ok((instructions(out)?, outcome.ops))
}

/// The total instruction count of a callgrind output file.
fn instructions(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no instruction total in {}", path.display()))
}

/// One side's instructions per call: a short run and a long one.
fn per_call(
    system: (&str, &str),
    side: &str,
    workload: &str,
    threads: &str,
    out: &Path,
) -> anyhow::Result<f64> {
    let (short, short_calls) = run(system, side, workload, threads, true, out)?;
    let (long, long_calls) = run(system, side, workload, threads, false, out)?;
    anyhow::ensure!(
        long_calls > short_calls,
        "{workload}: the long run made no more calls than the short one"
    );
    Ok(long.saturating_sub(short) as f64 / (long_calls - short_calls) as f64)
}

/// Counts and prints the instructions per call of each side, per workload,
/// rmi's beside raw TCP's.
pub(crate) fn run_all() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rmi-bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "| workload | runtime | rmi daemon | rmi client | raw TCP server | raw TCP client | rmi's own, daemon | rmi's own, client |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for workload in WORKLOADS {
        for (threads, runtime) in RUNTIMES {
            let mut counts = Vec::new();
            for system in SYSTEMS {
                for side in ["daemon", "client"] {
                    let out: PathBuf = dir.join(format!("{workload}.{threads}.{}.{side}.out", system.1));
                    eprintln!(
                        "counting {} {workload} on the {runtime} runtime, {side} side, under callgrind…",
                        system.1
                    );
                    counts.push(per_call(system, side, workload, threads, &out)?);
                }
            }
            let name = if workload == "seq-count" { "`echo`, one at a time" } else { "`echo`, 64 in flight" };
            println!(
                "| {name} | {runtime} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                counts[0],
                counts[1],
                counts[2],
                counts[3],
                counts[0] - counts[2],
                counts[1] - counts[3]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
