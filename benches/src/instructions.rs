//! `rmi-bench --count-instructions`: instructions per call, counted by
//! callgrind rather than timed, so that the figure does not move with the
//! machine's load.
//!
//! For each workload and each side, that side runs under callgrind and the
//! other natively, twice: a short run (the quick plan) and a long one (the
//! full plan). The difference of the two runs' instruction counts over the
//! difference of their calls is the side's cost per call: start-up,
//! connecting and the warm-up cancel out.

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

/// One side's run under callgrind: its instruction count, and the calls
/// the client made.
fn run(side: &str, workload: &str, threads: &str, quick: bool, out: &Path) -> anyhow::Result<(u64, u64)> {
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
    server.args(["serve", "rmi", "--threads", threads]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut server =
        server.spawn().context("starting the server (is valgrind installed? apt-get install valgrind)")?;
    let stdout = server.stdout.take().context("server stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let target =
        line.trim().strip_prefix("READY ").with_context(|| format!("server said {line:?}"))?.to_owned();
    let mut client = command(side == "client");
    client.args(["client", "rmi", workload, &target, "--threads", threads]);
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

/// Counts and prints the instructions per call of each side, per workload.
pub(crate) fn run_all() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rmi-bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("| workload | runtime | daemon, per call | client, per call |");
    println!("| --- | --- | ---: | ---: |");
    for workload in WORKLOADS {
        for (threads, runtime) in RUNTIMES {
            let mut per_call = Vec::new();
            for side in ["daemon", "client"] {
                let out: PathBuf = dir.join(format!("{workload}.{threads}.{side}.out"));
                eprintln!("counting {workload} on the {runtime} runtime, {side} side, under callgrind…");
                let (short, short_calls) = run(side, workload, threads, true, &out)?;
                let (long, long_calls) = run(side, workload, threads, false, &out)?;
                anyhow::ensure!(
                    long_calls > short_calls,
                    "{workload}: the long run made no more calls than the short one"
                );
                per_call.push(long.saturating_sub(short) as f64 / (long_calls - short_calls) as f64);
            }
            let name = if workload == "seq-count" { "`echo`, one at a time" } else { "`echo`, 64 in flight" };
            println!("| {name} | {runtime} | {:.0} | {:.0} |", per_call[0], per_call[1]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
