//! The Celery-style task queue on rmi, as real processes: a name server, the
//! broker, workers and clients. A task comes back with its result; a worker
//! killed mid-task loses nothing; a thousand tasks all come back, spread
//! over the workers.

mod common;

use std::collections::BTreeMap;

use common::{OutputLog, env_refs, name_server_env, spawn_example, spawn_name_server};
use rmi::{Config, NameServerProxy, Proxy};

/// What a worker's control object reports (the same fields, in order, as
/// the example's `WorkerStats`).
#[derive(Debug, serde::Deserialize)]
struct WorkerStats {
    name: String,
    completed: u64,
    running: Option<u64>,
}

/// Starts the broker with `args`; waits until it is registered.
async fn start_broker(env: &[(&'static str, String)], args: &[&str]) -> (common::Child, OutputLog) {
    let mut broker = spawn_example("task_broker", args, &env_refs(env));
    let log = OutputLog::start(&mut broker);
    log.wait_for(|l| l.starts_with("Ready. Object uri = ")).await;
    (broker, log)
}

/// Starts a worker named `name`; waits until it is registered.
async fn start_worker(
    env: &[(&'static str, String)],
    name: &str,
    extra: &[&str],
) -> (common::Child, OutputLog) {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    let mut worker = spawn_example("task_worker", &args, &env_refs(env));
    let log = OutputLog::start(&mut worker);
    log.wait_for(|l| l.starts_with(&format!("Worker {name} ready"))).await;
    (worker, log)
}

fn ns_client(uri: &str) -> NameServerProxy {
    NameServerProxy::from_proxy(Proxy::builder_with_config(uri, &Config::default()).build().unwrap())
}

#[tokio::test]
async fn add_5_5_comes_back_as_10_from_a_registered_worker() {
    let ns = spawn_name_server(&[]).await;
    let env = name_server_env(ns.port);
    let (_broker, _) = start_broker(&env, &[]).await;
    let (_worker, worker_log) = start_worker(&env, "w1", &[]).await;

    let (status, out) = spawn_example("task_client", &[], &env_refs(&env)).output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "Sent add(5, 5) as task add[1]\nadd(5, 5) = 10 (task add[1], run by w1, attempts 1)\n");
    worker_log.wait_for(|l| l == "Received task: add[1]").await;
    let done = worker_log.wait_for(|l| l.starts_with("Task add[1] succeeded in ")).await;
    assert!(done.ends_with("s: 10"), "{done}");

    // The broker and the worker are in the name server; the worker's control
    // object reports the task.
    let names = ns_client(&ns.uri);
    names.lookup("example.tasks.broker").await.unwrap();
    let worker = names.lookup_registration("example.tasks.worker.w1").await.unwrap();
    assert!(worker.metadata.contains("example.tasks.worker"), "{worker:?}");
    let control = Proxy::builder_with_config(&worker.uri, &Config::default()).build().unwrap();
    let stats: WorkerStats = control.call("stats", ()).await.unwrap();
    assert_eq!((stats.name.as_str(), stats.completed, stats.running), ("w1", 1, None));

    // Other arguments, and a task that fails, travel too.
    let (status, out) = spawn_example("task_client", &["add", "-7", "3"], &env_refs(&env)).output().await;
    assert!(status.success(), "{status}: {out}");
    assert!(out.ends_with("add(-7, 3) = -4 (task add[2], run by w1, attempts 1)\n"), "{out}");
    let max = i64::MAX.to_string();
    let (status, out) = spawn_example("task_client", &["add", &max, "1"], &env_refs(&env)).output().await;
    assert!(!status.success(), "an overflowing add must fail: {out}");
}

#[tokio::test]
async fn a_task_of_a_killed_worker_runs_on_another_worker() {
    let ns = spawn_name_server(&[]).await;
    let env = name_server_env(ns.port);
    // Leases of 1 s; the first worker's task would take a minute.
    let (_broker, broker_log) = start_broker(&env, &["--lease", "1"]).await;
    let (mut slow, slow_log) = start_worker(&env, "slow", &["--task-time", "60"]).await;
    let client = spawn_example("task_client", &[], &env_refs(&env));
    slow_log.wait_for(|l| l == "Received task: add[1]").await;

    // While the worker lives, it renews its lease: twice the lease timeout
    // later, the task is still its own.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !broker_log.lines().iter().any(|l| l.contains("ran out")),
        "the lease of a live worker ran out: {:?}",
        broker_log.lines()
    );
    slow.child.start_kill().unwrap();
    slow.child.wait().await.unwrap();

    let (_fast, fast_log) = start_worker(&env, "fast", &[]).await;
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert!(out.ends_with("add(5, 5) = 10 (task add[1], run by fast, attempts 2)\n"), "{out}");
    broker_log.wait_for(|l| l == "Lease of task add[1] by slow ran out: back in the queue").await;
    fast_log.wait_for(|l| l == "Received task: add[1] (attempt 2)").await;
    assert!(!slow_log.lines().iter().any(|l| l.starts_with("Task add[1] succeeded")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_all_come_back_spread_over_three_workers() {
    const TASKS: usize = 1000;
    let ns = spawn_name_server(&[]).await;
    let env = name_server_env(ns.port);
    let (_broker, _) = start_broker(&env, &[]).await;
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        workers.push(start_worker(&env, name, &[]).await);
    }

    let many = TASKS.to_string();
    let (status, out) = spawn_example("task_client", &["--many", &many], &env_refs(&env)).output().await;
    assert!(status.success(), "{status}: {out}");
    let mut seen = vec![false; TASKS];
    let mut by_worker = BTreeMap::<String, usize>::new();
    for line in out.lines().filter(|l| l.starts_with("add(")) {
        // add(i, i) = v (task add[k], run by w)
        let (call, rest) = line.split_once(" = ").unwrap();
        let (i, j) = call.trim_start_matches("add(").trim_end_matches(')').split_once(", ").unwrap();
        let (i, j): (usize, usize) = (i.parse().unwrap(), j.parse().unwrap());
        let (value, worker) = rest.split_once(" (task ").unwrap();
        assert_eq!(i, j, "{line}");
        assert_eq!(value.parse::<usize>().unwrap(), i + j, "{line}");
        assert!(!std::mem::replace(&mut seen[i], true), "{line} came back twice");
        let worker = worker.rsplit_once(", run by ").unwrap().1.trim_end_matches(')');
        *by_worker.entry(worker.to_owned()).or_default() += 1;
    }
    assert!(
        seen.iter().all(|s| *s),
        "missing results: {:?}",
        (0..TASKS).filter(|&i| !seen[i]).collect::<Vec<_>>()
    );
    assert!(by_worker.keys().all(|w| ["w1", "w2", "w3"].contains(&w.as_str())), "{by_worker:?}");
    assert!(by_worker.len() > 1, "one worker did all the work: {by_worker:?}");
    let summary = out.lines().last().unwrap();
    assert!(summary.starts_with(&format!("{TASKS} results in ")), "{summary}");

    // The workers' own logs agree with what the client saw.
    for ((worker, log), name) in workers.iter().zip(["w1", "w2", "w3"]) {
        let expected = by_worker.get(name).copied().unwrap_or(0);
        let succeeded = |l: &str| l.starts_with("Task add[") && l.contains("] succeeded in ");
        if expected > 0 {
            log.wait_for_count(expected, succeeded).await;
        }
        assert_eq!(log.lines().iter().filter(|l| succeeded(l)).count(), expected, "{}", worker.name);
    }
}
