//! The real binaries as child processes on loopback: the name server, the
//! greeting and the chain topology across processes, the control commands,
//! and the storage surviving SIGKILL.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PATIENCE, naming_command, spawn_example, spawn_name_server};
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
    let ns = spawn_name_server(&[]).await;
    let env = ns_env(ns.port);
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
}

#[tokio::test]
async fn the_chain_topology_across_five_processes() {
    let ns = spawn_name_server(&[]).await;
    let env = ns_env(ns.port);
    let mut servers = Vec::new();
    for (n, next) in [("1", "2"), ("2", "3"), ("3", "1")] {
        let mut server = spawn_example("chain_server", &[n, next], &as_refs(&env));
        let mut lines = server.lines();
        server.wait_for_line(&mut lines, |l| l.starts_with(&format!("Server {n} ready"))).await;
        servers.push((n, server, lines));
    }
    let client = spawn_example("chain_client", &[], &as_refs(&env));
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(
        out,
        "Result=[\"passed on from 1\", \"passed on from 2\", \"passed on from 3\", \"complete at 1\"]\n"
    );
    for (n, server, lines) in &mut servers {
        let next = match *n {
            "1" => "2",
            "2" => "3",
            _ => "1",
        };
        let expected = format!("{n} forwarding the message to the object {next}");
        server.wait_for_line(lines, |l| l == expected).await;
    }
    let (_, server1, lines1) = &mut servers[0];
    server1.wait_for_line(lines1, |l| l == "Back at 1; the chain is closed!").await;
}

#[tokio::test]
async fn control_commands() {
    let ns = spawn_name_server(&[]).await;
    let port = ns.port.to_string();
    let at = ["--host", "127.0.0.1", "--port", port.as_str()];
    let run = |args: Vec<&str>| {
        let mut all: Vec<&str> = at.to_vec();
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            naming_command(&refs, &[]).await
        }
    };

    let (status, out, _) =
        run(vec!["register", "app.db", "RMI:db@127.0.0.1:9100", "--meta", "class:db", "zone:a"]).await;
    assert!(status.success());
    assert_eq!(out, "registered app.db --> RMI:db@127.0.0.1:9100\n");
    assert!(run(vec!["register", "app.web", "RMI:web@127.0.0.1:9101"]).await.0.success());
    assert!(run(vec!["register", "other", "RMI:o@127.0.0.1:9102", "--meta", "zone:a"]).await.0.success());

    let (_, out, _) = run(vec!["list"]).await;
    assert_eq!(
        out,
        "app.db --> RMI:db@127.0.0.1:9100\n    metadata: class:db, zone:a\napp.web --> RMI:web@127.0.0.1:9101\n\
         other --> RMI:o@127.0.0.1:9102\n    metadata: zone:a\n"
    );
    let (_, out, _) = run(vec!["--json", "list", "--prefix", "app."]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["name"], "app.db");
    assert_eq!(json[0]["metadata"][1], "zone:a");
    assert_eq!(json[1]["uri"], "RMI:web@127.0.0.1:9101");
    let (_, out, _) = run(vec!["list", "--regex", r"app\.w.*"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n");
    let (_, out, _) = run(vec!["lookup", "app.web"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n");
    let (_, out, _) = run(vec!["yplookup", "--any", "zone:a"]).await;
    assert!(out.contains("app.db") && out.contains("other") && !out.contains("app.web"), "{out}");
    let (_, out, _) = run(vec!["--json", "yplookup", "--all", "class:db", "zone:a"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len(), 1);
    assert!(run(vec!["setmeta", "app.web", "class:web"]).await.0.success());
    let (_, out, _) = run(vec!["yplookup", "--all", "class:web"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n    metadata: class:web\n");
    let (_, out, _) = run(vec!["count"]).await;
    assert_eq!(out, "3\n");
    let (_, out, _) = run(vec!["--json", "ping"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["alive"], true);

    // Refusals: a non-zero exit and one line that says why.
    for (args, says) in [
        (vec!["register", "--safe", "app.db", "RMI:x@127.0.0.1:1"], "already registered"),
        (vec!["register", "bad name", "RMI:x@127.0.0.1:1"], "invalid name"),
        (vec!["register", "x", "not-a-uri"], "invalid URI"),
        (vec!["list", "--regex", "(("], "invalid regular expression"),
        (vec!["lookup", "nothing"], "no name \"nothing\""),
        (vec!["remove", "nothing"], "no name \"nothing\""),
    ] {
        let (status, out, err) = run(args.clone()).await;
        assert!(!status.success(), "{args:?} succeeded: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("rmi-naming: ") && err.contains(says), "{args:?}: {err}");
    }

    let (_, out, _) = run(vec!["remove", "--prefix", "app."]).await;
    assert_eq!(out, "removed 2 names\n");
    assert!(run(vec!["remove", "other"]).await.0.success());
    let (_, out, _) = run(vec!["count"]).await;
    assert_eq!(out, "0\n");
}

#[tokio::test]
async fn an_unreachable_name_server_is_one_line_and_a_failure() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (status, out, err) = naming_command(&["--host", "127.0.0.1", "--port", &free, "list"], &[]).await;
    assert!(!status.success());
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the name server") && err.contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn help_explains_every_flag() {
    let (status, out, _) = naming_command(&["--help"], &[]).await;
    assert!(status.success());
    for flag in
        ["--host", "--port", "--bcport", "--no-broadcast", "--key", "--storage", "--json", "--advertise"]
    {
        assert!(out.contains(flag), "--help does not mention {flag}");
    }
    for var in ["RMI_NS_HOST", "RMI_NS_PORT", "RMI_NS_BCPORT", "RMI_HMAC_KEY", "RMI_NS_STORAGE"] {
        assert!(out.contains(var), "--help does not mention {var}");
    }
}

#[tokio::test]
async fn a_keyed_name_server_refuses_a_command_without_the_key() {
    let ns = spawn_name_server(&[]).await;
    drop(ns);
    let mut ns = spawn_name_server(&["--key", "k3y"]).await;
    let port = ns.port.to_string();
    let (status, _, err) = naming_command(&["-n", "127.0.0.1", "-p", &port, "ping"], &[]).await;
    assert!(!status.success());
    assert!(err.contains("requires an HMAC key"), "{err}");
    let (status, _, _) =
        naming_command(&["-n", "127.0.0.1", "-p", &port, "ping"], &[("RMI_HMAC_KEY", "k3y")]).await;
    assert!(status.success());
    let _ = ns.child.child.start_kill();
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
