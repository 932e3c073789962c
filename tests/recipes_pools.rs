//! The pool recipe: sequential, thread pool and process pool (worker
//! processes over rmi) give the same results, and the worker processes do
//! not outlive the run.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{PATIENCE, spawn_example};

/// The workload in the tests: small, so that a debug build is quick.
const COUNT: u64 = 20_000;

/// The `Item i, result r` lines of each mode, by the mode's heading.
fn sections(out: &str) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut sections = BTreeMap::<String, Vec<(u64, u64)>>::new();
    let mut current = None;
    for line in out.lines() {
        if let Some(item) = line.strip_prefix("Item ") {
            let (item, result) = item.split_once(", result ").unwrap_or_else(|| panic!("{line:?}"));
            let section = sections.get_mut(current.as_ref().expect("a heading first")).unwrap();
            section.push((item.parse().unwrap(), result.parse().unwrap()));
        } else if line.ends_with(" execution") {
            current = Some(line.to_owned());
            sections.insert(line.to_owned(), Vec::new());
        } else {
            let (mode, seconds) =
                line.split_once(" in ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
            assert_eq!(current.as_deref(), Some(mode), "{line:?} ends another mode");
            let seconds = seconds.strip_suffix(" seconds").unwrap().parse::<f64>().unwrap();
            assert!(seconds >= 0.0);
            current = None;
        }
    }
    sections
}

/// The processes that are running `path --worker`, other than this test
/// binary's own children.
#[cfg(target_os = "linux")]
fn workers_of(path: &std::path::Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(std::process::id().to_string().as_str()) {
            continue;
        }
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first() == Some(&path.as_os_str().as_encoded_bytes())
            && args.get(1) == Some(&&b"--worker"[..])
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn the_three_modes_give_the_same_results() {
    let count = COUNT.to_string();
    let (status, out) = spawn_example("pools", &["--count", &count], &[]).output().await;
    assert!(status.success(), "{status}: {out}");
    let sections = sections(&out);
    let modes: Vec<&str> = sections.keys().map(String::as_str).collect();
    assert_eq!(modes, ["Process pool execution", "Sequential execution", "Thread pool execution"]);
    let expected: Vec<(u64, u64)> = (1..=10).map(|i| (i, i * COUNT)).collect();
    // Sequentially the items come in order; the pools print in completion
    // order, so compare them sorted.
    assert_eq!(sections["Sequential execution"], expected);
    for mode in ["Thread pool execution", "Process pool execution"] {
        let mut results = sections[mode].clone();
        results.sort_unstable();
        assert_eq!(results, expected, "{mode}");
    }

    // The pool's worker processes are gone.
    #[cfg(target_os = "linux")]
    {
        let exe = common::example("pools");
        let started = std::time::Instant::now();
        while !workers_of(&exe).is_empty() {
            assert!(
                started.elapsed() < PATIENCE,
                "worker processes outlived the pool: {:?}",
                workers_of(&exe)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_worker_process_counts_over_rmi_and_exits_when_its_stdin_closes() {
    let mut worker = spawn_example("pools", &["--worker"], &[]);
    let mut lines = worker.lines();
    let line = worker.wait_for_line(&mut lines, |l| l.starts_with("URI = ")).await;
    let uri = line.trim_start_matches("URI = ");
    let proxy = rmi::Proxy::builder_with_config(uri, &rmi::Config::default()).build().unwrap();
    let result: u64 = proxy.call("evaluate", (7u64, 1000u64)).await.unwrap();
    assert_eq!(result, 7000);
    let description = proxy.describe().await.unwrap();
    assert!(description.methods.iter().any(|m| m.name == "evaluate"), "{description:?}");

    drop(worker.child.stdin.take());
    let status =
        tokio::time::timeout(PATIENCE, worker.child.wait()).await.expect("the worker exits").unwrap();
    assert!(status.success(), "{status}");
    assert!(tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().is_none());
}
