//! Names that follow their daemon's life (leases), and clients that fail
//! over between name servers.

mod common;

use std::time::{Duration, Instant};

use common::{Calculator, PATIENCE, env_refs, eventually, name_server_env, spawn_example, spawn_name_server};
use rmi::{Config, Daemon, Lease, NameFilter, NameServerProxy, ObjectUri, Proxy};
use rmi_naming::{NameServerOptions, RunningNameServer};

async fn name_server_at(port: u16) -> RunningNameServer {
    let mut options = NameServerOptions::from_config(&Config::default());
    options.port = port;
    options.broadcast_port = None;
    rmi_naming::start(options).await.expect("name server starts")
}

fn port_of(ns: &RunningNameServer) -> u16 {
    let rmi::Location::Tcp(hp) = &ns.uri().location else { panic!("a TCP name server") };
    hp.port
}

fn client(ns: &RunningNameServer) -> NameServerProxy {
    NameServerProxy::from_proxy(Proxy::builder_with_config(ns.uri(), &Config::default()).build().unwrap())
}

fn uri(n: u16) -> ObjectUri {
    format!("RMI:obj{n}@127.0.0.1:{}", 1000 + n).parse().unwrap()
}

async fn count_prefix(ns: &NameServerProxy, prefix: &str) -> usize {
    ns.list(NameFilter::Prefix(prefix.to_owned())).await.unwrap().len()
}

/// The test: a daemon process with 100 leased names is SIGKILLed;
/// `rmi-naming list` shows none of them after TTL + 1 s, and the other
/// names are untouched.
#[tokio::test]
async fn a_killed_daemon_loses_its_leased_names_after_the_ttl() {
    let mut ns = spawn_name_server(&[]).await;
    let env = name_server_env(ns.port);
    let admin = NameServerProxy::new(format!("RMI:RMI.NameServer@127.0.0.1:{}", ns.port)).unwrap();
    admin.register("plain.kept", &uri(1)).await.unwrap();

    let mut server = spawn_example("leased_server", &["--count", "100", "--ttl", "2"], &env_refs(&env));
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l.starts_with("Registered 100 names")).await;
    assert_eq!(count_prefix(&admin, "example.leased.").await, 100);
    // Alive, the server keeps its lease past several TTLs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count_prefix(&admin, "example.leased.").await, 100, "kept alive");

    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(killed.elapsed())).await;
    let out = tokio::process::Command::new(common::naming_bin())
        .args(["list", "--host", "127.0.0.1", "--port", &ns.port.to_string()])
        .env_remove("RMI_NS_HOST")
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(!listed.contains("example.leased."), "leased names outlived the TTL + 1 s:\n{listed}");
    assert!(listed.contains("plain.kept"), "{listed}");
    let _ = ns.child.child.start_kill();
}

/// A daemon that shuts down removes its names before `serve` returns.
#[tokio::test]
async fn a_daemon_that_shuts_down_removes_its_names_at_once() {
    let ns = name_server_at(0).await;
    let c = client(&ns);
    c.register("plain.other", &uri(1)).await.unwrap();
    let daemon = common::builder().name_server(c.clone()).bind("127.0.0.1:0").await.unwrap();
    let serving = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.serve().await }
    });
    for i in 0..5 {
        daemon.register_named(Calculator::default(), &format!("calc.{i}")).await.unwrap();
    }
    let at = daemon.register_named_with(Calculator::default(), "calc.tagged", ["class:calc"]);
    let tagged = at.await.unwrap();
    assert_eq!(c.lookup("calc.tagged").await.unwrap(), tagged);
    // The names resolve to the daemon's objects.
    let by_name = format!("RMINAME:calc.3@127.0.0.1:{}", port_of(&ns));
    assert_eq!(common::CalculatorProxy::new(by_name.as_str()).unwrap().add(1, 2).await.unwrap(), 3);
    assert_eq!(count_prefix(&c, "calc.").await, 6);
    daemon.shutdown();
    serving.await.unwrap().unwrap();
    assert_eq!(count_prefix(&c, "calc.").await, 0, "removed by the time serve returned");
    assert_eq!(c.lookup("plain.other").await.unwrap(), uri(1));
    ns.stop().await.unwrap();
}

/// A bad name is refused before anything is registered.
#[tokio::test]
async fn register_named_refuses_a_bad_name_and_keeps_nothing() {
    let ns = name_server_at(0).await;
    let daemon = common::builder().name_server(client(&ns)).bind("127.0.0.1:0").await.unwrap();
    let before = daemon.objects().len();
    let err = daemon.register_named(Calculator::default(), "bad name").await.unwrap_err();
    assert!(matches!(err, rmi::DaemonError::Naming { .. }), "{err}");
    assert_eq!(daemon.objects().len(), before);
    ns.stop().await.unwrap();
}

/// A name server restarted without storage has lost the lease: the keeper
/// is told so at its next keep-alive, and grants it anew with every name.
#[tokio::test]
async fn a_lease_comes_back_after_its_name_server_restarts() {
    let ns = name_server_at(0).await;
    let port = port_of(&ns);
    let c = client(&ns);
    let lease = Lease::grant(&c, Duration::from_secs(1)).await.unwrap();
    let first = lease.id();
    lease.register("back.a", &uri(1)).await.unwrap();
    lease.register_with("back.b", &uri(2), ["t:x"]).await.unwrap();
    ns.stop().await.unwrap();
    let ns = name_server_at(port).await;
    let fresh = client(&ns);
    let back = eventually(PATIENCE, async || count_prefix(&fresh, "back.").await == 2).await;
    assert!(back, "the names were not registered again");
    assert_ne!(lease.id(), first, "a new lease");
    assert_eq!(fresh.lookup_registration("back.b").await.unwrap().metadata.len(), 1);
    assert_eq!(lease.revoke().await.unwrap(), 2);
    assert_eq!(count_prefix(&fresh, "back.").await, 0);
    ns.stop().await.unwrap();
}

/// Dropping a lease stops its keep-alives: its names go one TTL later.
#[tokio::test]
async fn a_dropped_lease_ends_after_its_ttl() {
    let ns = name_server_at(0).await;
    let c = client(&ns);
    let lease = Lease::grant(&c, Duration::from_secs(1)).await.unwrap();
    lease.register("dropped.a", &uri(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_prefix(&c, "dropped.").await, 1, "kept alive while held");
    drop(lease);
    let gone = eventually(Duration::from_secs(3), async || count_prefix(&c, "dropped.").await == 0).await;
    assert!(gone);
    let err = c.grant_lease(Duration::from_millis(10)).await.unwrap_err();
    assert!(err.to_string().contains("1 s to 1 h"), "{err}");
    ns.stop().await.unwrap();
}

/// `RMI_NS_HOST` with two name servers: when the one in use stops, calls
/// go to the next, and `RMINAME:` proxies resolve through it.
#[tokio::test]
async fn clients_fail_over_to_the_next_name_server() {
    let first = name_server_at(0).await;
    let second = name_server_at(0).await;
    let daemon = Daemon::builder_with_config(&Config::default()).bind("127.0.0.1:0").await.unwrap();
    let target = daemon.register(Calculator::default(), Some("calc")).unwrap();
    let serving = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.serve().await }
    });
    for ns in [&first, &second] {
        client(ns).register("moved.calc", &target).await.unwrap();
    }
    let mut config = Config::default();
    let localhost =
        |port| rmi::NsHost { host: rmi::Host::V4(std::net::Ipv4Addr::LOCALHOST), port: Some(port) };
    config.ns_hosts = vec![localhost(port_of(&first)), localhost(port_of(&second))];
    let ns = rmi::locate_ns_with(&config, None).await.unwrap();
    assert_eq!(ns.uris().len(), 2);
    assert_eq!(ns.uri().to_string(), first.uri().to_string());
    let second_uri = second.uri().to_string();
    first.stop().await.unwrap();
    // The next call is made on the second name server.
    assert_eq!(ns.lookup("moved.calc").await.unwrap(), target);
    assert_eq!(ns.uri().to_string(), second_uri);
    // A name listing both resolves through whichever answers.
    let by_name = format!("RMINAME:moved.calc@127.0.0.1:1,127.0.0.1:{}", port_of(&second));
    let calc = common::CalculatorProxy::new(by_name.as_str()).unwrap();
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);

    // The object moves: registered anew in another daemon, the old one
    // stopped. The proxy follows on its next call.
    let elsewhere = Daemon::builder_with_config(&Config::default()).bind("127.0.0.1:0").await.unwrap();
    let moved = elsewhere.register(Calculator::default(), Some("calc2")).unwrap();
    let serving_elsewhere = tokio::spawn({
        let daemon = elsewhere.clone();
        async move { daemon.serve().await }
    });
    ns.register("moved.calc", &moved).await.unwrap();
    daemon.shutdown();
    serving.await.unwrap().unwrap();
    // (A call already on the closing connection fails as the connection
    // does; give the proxy the moment it takes to see the close.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calc.add(3, 4).await.unwrap(), 7, "followed the object");
    assert_eq!(calc.proxy().target().map(|t| t.to_string()), Some(moved.to_string()));
    elsewhere.shutdown();
    serving_elsewhere.await.unwrap().unwrap();
    second.stop().await.unwrap();
}

/// `rmi-naming --storage <path>` on a fixed port, its stdout read until it
/// is serving.
async fn storage_name_server(path: &std::path::Path, port: u16) -> common::Child {
    let mut child = common::Child {
        child: tokio::process::Command::new(common::naming_bin())
            .args(["--port", &port.to_string(), "--no-broadcast", "--storage"])
            .arg(path)
            .env_remove("RMI_NS_HOST")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
        name: "rmi-naming --storage".into(),
    };
    let mut lines = child.lines();
    child.wait_for_line(&mut lines, |l| l.starts_with("URI = ")).await;
    // Keep reading, so that its logging never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn sigkill(child: &mut common::Child) {
    child.child.start_kill().unwrap();
    child.child.wait().await.unwrap();
}

/// With `--storage`, leased names survive a name server's SIGKILL and
/// restart while their daemon keeps the lease alive, and go one TTL after
/// the restart when their daemon is dead.
#[tokio::test]
async fn stored_leased_names_live_across_a_restart_only_while_their_lease_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut ns = storage_name_server(&path, port).await;
    let admin = NameServerProxy::new(format!("RMI:RMI.NameServer@127.0.0.1:{port}")).unwrap();
    admin.register("plain.kept", &uri(1)).await.unwrap();
    let env = name_server_env(port);
    let mut server = spawn_example("leased_server", &["--count", "10", "--ttl", "2"], &env_refs(&env));
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l.starts_with("Registered 10 names")).await;

    // The name server dies and comes back: the daemon, alive, keeps its
    // (restored) lease, and its names stay past several TTLs.
    sigkill(&mut ns).await;
    let mut ns = storage_name_server(&path, port).await;
    assert_eq!(count_prefix(&admin, "example.leased.").await, 10, "restored");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count_prefix(&admin, "example.leased.").await, 10, "kept alive after the restart");

    // Now the daemon dies while the name server is down: after the restart
    // its lease gets a fresh TTL that nobody keeps.
    sigkill(&mut ns).await;
    sigkill(&mut server).await;
    let _ns = storage_name_server(&path, port).await;
    assert_eq!(count_prefix(&admin, "example.leased.").await, 10, "restored, for one TTL");
    let gone =
        eventually(Duration::from_secs(4), async || count_prefix(&admin, "example.leased.").await == 0).await;
    assert!(gone, "the restored lease was not kept, and ended");
    assert_eq!(admin.lookup("plain.kept").await.unwrap(), uri(1));
}

/// A frozen daemon (SIGSTOP) loses its names one TTL later; thawed, it is
/// told its lease ended, takes a new one and registers its names again,
/// but for one another process registered meanwhile, which stays that
/// process's.
#[tokio::test]
async fn a_frozen_daemon_loses_its_names_and_takes_back_only_the_free_ones() {
    let mut ns = spawn_name_server(&[]).await;
    let env = name_server_env(ns.port);
    let admin = NameServerProxy::new(format!("RMI:RMI.NameServer@127.0.0.1:{}", ns.port)).unwrap();
    let mut server = spawn_example("leased_server", &["--count", "5", "--ttl", "1"], &env_refs(&env));
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l.starts_with("Registered 5 names")).await;
    let pid = server.child.id().expect("a pid").to_string();
    let signal = |sig: &str| std::process::Command::new("kill").args([sig, &pid]).status().unwrap();
    assert!(signal("-STOP").success());
    let gone =
        eventually(Duration::from_secs(3), async || count_prefix(&admin, "example.leased.").await == 0).await;
    assert!(gone, "a frozen daemon's names outlived its lease");
    admin.register("example.leased.2", &uri(2)).await.unwrap();
    assert!(signal("-CONT").success());
    let back = eventually(PATIENCE, async || count_prefix(&admin, "example.leased.").await == 5).await;
    assert!(back, "the thawed daemon did not register its names again");
    assert_eq!(
        admin.lookup("example.leased.2").await.unwrap(),
        uri(2),
        "taken meanwhile: left to its new owner"
    );
    assert_ne!(admin.lookup("example.leased.1").await.unwrap(), uri(2));
    sigkill(&mut server).await;
    let _ = ns.child.child.start_kill();
}
