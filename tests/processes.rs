//! The real binaries as child processes on loopback: the name server with
//! the greeting and the chain topology across processes, and its storage
//! surviving SIGKILL. (The control commands are tested in
//! `naming/tests/cli.rs`, which also makes `cargo test --workspace` build the
//! `rmi-naming` binary these tests start.)

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PATIENCE, mutual_tls_env, spawn_example, spawn_name_server, spawn_name_server_with};
use rmi::{Config, NameServerProxy, ObjectUri, Proxy};
use tokio::io::AsyncWriteExt;

fn ns_env(port: u16) -> Vec<(&'static str, String)> {
    vec![("RMI_NS_HOST", "127.0.0.1".to_owned()), ("RMI_NS_PORT", port.to_string())]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn the_greeting_across_three_processes() {
    greeting_across_three_processes(&[]).await;
}

/// The greeting and the chain run unchanged over mutual TLS, with nothing
/// but the `RMI_TLS_*` variables set for each process; a process without
/// them is refused.
#[tokio::test]
async fn the_greeting_and_the_chain_over_mutual_tls_with_only_the_variables_set() {
    let dir = tempfile::tempdir().unwrap();
    let tls = mutual_tls_env(dir.path());
    let ns = greeting_across_three_processes(&tls).await;
    // A client without the variables cannot even resolve the name.
    let env = ns_env(ns.port);
    let client = spawn_example("greeting_client", &[], &as_refs(&env));
    let (status, out) = client.output().await;
    assert!(!status.success(), "a plaintext client got through: {out}");
    chain_across_five_processes(&tls).await;
}

/// The greeting's server and client found through a name server, each
/// process with `extra` in its environment; returns the name server.
async fn greeting_across_three_processes(extra: &[(&'static str, String)]) -> common::NameServerProcess {
    let ns = spawn_name_server_with(&[], &as_refs(extra)).await;
    let mut env = ns_env(ns.port);
    env.extend(extra.iter().cloned());
    let mut server = spawn_example("greeting_server", &[], &as_refs(&env));
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l.starts_with("Registered example.greeting")).await;

    let mut client = spawn_example("greeting_client", &[], &as_refs(&env));
    let mut stdin = client.child.stdin.take().unwrap();
    stdin.write_all(b"Ruvika\n").await.unwrap();
    drop(stdin);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "What is your name? Hi welcome Ruvika\n");
    ns
}

#[tokio::test]
async fn the_chain_topology_across_five_processes() {
    chain_across_five_processes(&[]).await;
}

async fn chain_across_five_processes(extra: &[(&'static str, String)]) {
    let ns = spawn_name_server_with(&[], &as_refs(extra)).await;
    let mut env = ns_env(ns.port);
    env.extend(extra.iter().cloned());
    let mut servers = Vec::new();
    for (n, next) in [("1", "2"), ("2", "3"), ("3", "1")] {
        let mut server = spawn_example("chain_server", &[n, next], &as_refs(&env));
        let mut lines = server.lines();
        server.wait_for_line(&mut lines, |l| l.starts_with(&format!("Server {n} ready"))).await;
        servers.push((n, next, server, lines));
    }
    let client = spawn_example("chain_client", &[], &as_refs(&env));
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    let (first, result) = out.split_once('\n').unwrap_or_else(|| panic!("{out:?}"));
    let id = first
        .strip_prefix("Calling link 1 with correlation id ")
        .unwrap_or_else(|| panic!("no correlation id in {first:?}"));
    assert!(id.starts_with("chain-") && !id.contains(' '), "{id:?}");
    assert_eq!(
        result,
        "Result=[\"passed on from 1\", \"passed on from 2\", \"passed on from 3\", \"complete at 1\"]\n"
    );
    // Every server printed the client's id with its pass.
    expect_passes(&mut servers, id).await;

    // An id of the caller's choosing goes round the same way.
    let client = spawn_example("chain_client", &["--correlation-id", "req-42"], &as_refs(&env));
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert!(out.starts_with("Calling link 1 with correlation id req-42\nResult=["), "{out}");
    expect_passes(&mut servers, "req-42").await;
}

/// One chain server: its number, the next one's, the process, its output.
type ChainServer = (
    &'static str,
    &'static str,
    common::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
);

/// Waits until each chain server printed its pass of a round that carried
/// the correlation id `id`, and server 1 that the chain closed.
async fn expect_passes(servers: &mut [ChainServer], id: &str) {
    for (n, next, server, lines) in servers.iter_mut() {
        let expected = format!("{n} forwarding the message to the object {next} [correlation id {id}]");
        server.wait_for_line(lines, |l| l == expected).await;
    }
    let (_, _, server1, lines1) = &mut servers[0];
    let closed = format!("Back at 1; the chain is closed! [correlation id {id}]");
    server1.wait_for_line(lines1, |l| l == closed).await;
}

/// A registration the name server acknowledged: name, URI, tags.
type Acknowledged = (String, ObjectUri, BTreeSet<String>);

/// Registrations acknowledged before a SIGKILL are all there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("names.log");
    let storage_arg = storage.to_str().unwrap().to_owned();
    let mut ns = spawn_name_server(&["--storage", &storage_arg]).await;
    let client = |uri: &str| {
        NameServerProxy::from_proxy(
            Proxy::builder_with_config(uri, &Config::default())
                .timeout(Some(Duration::from_secs(5)))
                .build()
                .unwrap(),
        )
    };
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|task| {
            let (ns, acknowledged) = (client(&ns.uri), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0..100_000u32 {
                    let name = format!("stream.{task}.{i}");
                    let uri: ObjectUri =
                        format!("RMI:obj{i}@127.0.0.1:{}", 1 + (i % 60_000)).parse().unwrap();
                    let tags = BTreeSet::from([format!("task:{task}"), format!("i:{i}")]);
                    match ns.register_with(&name, &uri, tags.clone(), false).await {
                        Ok(()) => acknowledged.lock().unwrap().push((name, uri, tags)),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Kill it in the middle of the stream.
    let started = std::time::Instant::now();
    while acknowledged.lock().unwrap().len() < 400 {
        assert!(started.elapsed() < PATIENCE, "registrations too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ns.child.child.start_kill().unwrap();
    ns.child.child.wait().await.unwrap();
    for w in writers {
        tokio::time::timeout(PATIENCE, w).await.unwrap().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 400);

    let restarted = spawn_name_server(&["--storage", &storage_arg]).await;
    let after = client(&restarted.uri);
    let count = after.count().await.unwrap();
    assert!(
        count >= acknowledged.len() as u64,
        "{count} names after restart, {} acknowledged",
        acknowledged.len()
    );
    let everything = after.list(rmi::NameFilter::Prefix("stream.".into())).await.unwrap();
    let by_name: std::collections::HashMap<_, _> = everything.iter().map(|r| (r.name.as_str(), r)).collect();
    for (name, uri, tags) in &acknowledged {
        let found =
            by_name.get(name.as_str()).unwrap_or_else(|| panic!("{name} was acknowledged and is lost"));
        assert_eq!(&found.uri, uri);
        assert_eq!(&found.metadata, tags);
    }
    println!("{} acknowledged before SIGKILL, {count} names after restart, none lost", acknowledged.len());
}
