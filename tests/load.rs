//! Load: a thousand clients, each with its own connection, calling one
//! daemon for ten seconds. Every client must be served and no call fail.
//! (Pyro5's threaded daemon, with 200 clients: 7.75k calls/s, 120 clients
//! never served.)

mod common;

use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, TestDaemon, builder};

const CLIENTS: usize = 1_000;
const RUN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_for_ten_seconds() {
    let limit = rlimit::increase_nofile_limit(8192).unwrap();
    assert!(limit >= 2 * CLIENTS as u64 + 200, "could not raise the open-file limit (got {limit})");
    let d = TestDaemon::start(builder()).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let proxies: Vec<CalculatorProxy> = (0..CLIENTS).map(|_| CalculatorProxy::new(&uri).unwrap()).collect();
    let started = Instant::now();
    let end = started + RUN;
    let clients: Vec<_> = proxies
        .into_iter()
        .enumerate()
        .map(|(c, calc)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0i64;
                while Instant::now() < end {
                    let t = Instant::now();
                    let sum = calc.add(c as i64, i).await;
                    latencies.push(t.elapsed());
                    assert_eq!(sum.unwrap_or_else(|e| panic!("client {c}: {e}")), c as i64 + i);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut served = 0;
    for client in clients {
        let latencies = client.await.unwrap();
        if !latencies.is_empty() {
            served += 1;
        }
        all.extend(latencies);
    }
    let elapsed = started.elapsed();
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    let p50 = all[all.len() / 2];
    println!(
        "{CLIENTS} clients, {:.1} s: {} calls, {:.0} calls/s, p50 {p50:?}, p99 {p99:?}, {served} clients served",
        elapsed.as_secs_f64(),
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(served, CLIENTS, "every client was served");
}
