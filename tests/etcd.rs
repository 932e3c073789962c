//! rmi-naming replicas on a real three-member etcd cluster: the same names
//! from every replica, acknowledged registrations kept through the death
//! of etcd's leader and of a replica, lookups that fail over, leases kept
//! by etcd, and the chain topology across two replicas.
//!
//! etcd comes from the system (`.ci/run` installs `etcd-server`); where it
//! is missing outside CI, each test says so loudly and does nothing.

mod common;
#[path = "common/etcd.rs"]
mod etcd_cluster;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{NameServerProcess, PATIENCE, env_refs, eventually, spawn_example, spawn_name_server_with};
use etcd_cluster::Cluster;
use rmi::{Config, Lease, NameFilter, NameServerProxy, ObjectUri, Proxy};
use tokio::sync::Mutex;

/// A replica on the cluster, on a free port.
async fn replica(cluster: &Cluster) -> NameServerProcess {
    spawn_name_server_with(&["--etcd", &cluster.endpoints()], &[]).await
}

fn proxy_to(port: u16) -> Proxy {
    Proxy::builder_with_config(format!("RMI:RMI.NameServer@127.0.0.1:{port}"), &Config::default())
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap()
}

/// A client of `ports`, in order, failing over.
async fn client(ports: &[u16]) -> NameServerProxy {
    let mut config = Config::default();
    config.ns_hosts = ports
        .iter()
        .map(|p| rmi::NsHost { host: rmi::Host::V4(std::net::Ipv4Addr::LOCALHOST), port: Some(*p) })
        .collect();
    rmi::locate_ns_with(&config, None).await.unwrap()
}

fn uri(n: usize) -> ObjectUri {
    format!("RMI:obj{n}@127.0.0.1:{}", 1000 + n % 60000).parse().unwrap()
}

async fn names_with(ns: &NameServerProxy, prefix: &str) -> BTreeSet<String> {
    ns.list(NameFilter::Prefix(prefix.to_owned())).await.unwrap().into_iter().map(|r| r.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_the_same_names() {
    let Some(cluster) = Cluster::start("two_replicas_serve_the_same_names").await else { return };
    let a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let on_a = NameServerProxy::from_proxy(proxy_to(a.port));
    let on_b = NameServerProxy::from_proxy(proxy_to(b.port));
    on_a.register_with("same.one", &uri(1), ["class:x"], false).await.unwrap();
    // Through the other replica at once: the watch brought it (a write is
    // acknowledged once its own replica has seen it; the other follows
    // within the watch's delay).
    assert!(eventually(PATIENCE, async || on_b.lookup("same.one").await.is_ok()).await);
    let found = on_b.lookup_registration("same.one").await.unwrap();
    assert_eq!((found.uri, found.metadata.len()), (uri(1), 1));
    // Safe mode holds across replicas: etcd decides.
    let err = on_b.register_with("same.one", &uri(2), Vec::<String>::new(), true).await.unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    on_b.set_metadata("same.one", ["class:y"]).await.unwrap();
    on_a.register("same.two", &uri(2)).await.unwrap();
    assert!(
        eventually(PATIENCE, async || on_a
            .lookup_registration("same.one")
            .await
            .is_ok_and(|r| r.metadata.contains("class:y")))
        .await
    );
    assert!(eventually(PATIENCE, async || names_with(&on_b, "same.").await.len() == 2).await);
    assert_eq!(on_b.remove_matching(NameFilter::Regex("same\\..*".into())).await.unwrap(), 2);
    assert!(eventually(PATIENCE, async || on_a.count().await.unwrap() == 0).await);

    // A lease granted through one replica is kept alive through the other,
    // and etcd ends it (and its names) when it is not.
    let lease = Lease::grant(&on_a, Duration::from_secs(2)).await.unwrap();
    lease.register("leased.a", &uri(3)).await.unwrap();
    on_b.keep_alive(lease.id()).await.unwrap();
    drop(lease);
    let gone = eventually(Duration::from_secs(6), async || on_b.lookup("leased.a").await.is_err()).await;
    assert!(gone, "etcd ended the lease, and the watch removed its name");
}

/// A daemon with leased names is SIGKILLed: the names leave every replica
/// after the TTL, its other names stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemons_names_leave_every_replica() {
    let Some(cluster) = Cluster::start("a_killed_daemons_names_leave_every_replica").await else { return };
    let a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let on_b = NameServerProxy::from_proxy(proxy_to(b.port));
    on_b.register("plain.kept", &uri(1)).await.unwrap();
    let env = common::name_server_env(a.port);
    let mut server = spawn_example("leased_server", &["--count", "100", "--ttl", "2"], &env_refs(&env));
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l.starts_with("Registered 100 names")).await;
    assert!(eventually(PATIENCE, async || names_with(&on_b, "example.leased.").await.len() == 100).await);
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(names_with(&on_b, "example.leased.").await.len(), 0, "gone after TTL + 1 s");
    assert_eq!(on_b.lookup("plain.kept").await.unwrap(), uri(1));
}

/// The test: 8 writers stream leased and plain registrations while
/// etcd's leader is SIGKILLed, then one replica is: every acknowledged
/// registration is there afterwards, and lookups go on through the other
/// replica with no failed call beyond the one in flight at the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_the_leader_and_a_replica_dying() {
    let Some(mut cluster) = Cluster::start("acknowledged_registrations_survive").await else { return };
    let mut a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let ports = [a.port, b.port];
    let admin = client(&ports).await;
    admin.register("probe", &uri(0)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, ObjectUri)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let ns = client(&ports).await;
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let lease = Lease::grant(&ns, Duration::from_secs(10)).await.unwrap();
            let (mut ok, mut failed) = (0usize, 0usize);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 5_000 {
                let name = format!("w{w}.{i}");
                let at = uri(w * 10_000 + i);
                let done =
                    if i % 2 == 0 { ns.register(&name, &at).await } else { lease.register(&name, &at).await };
                match done {
                    Ok(()) => {
                        ok += 1;
                        acked.lock().await.push((name, at));
                    }
                    Err(_) => failed += 1,
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed, lease)
        }));
    }
    // Lookups, one at a time, through a client that fails over.
    let lookups = client(&ports).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let done_lookups = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn({
        let (stop, failures, done_lookups) = (stop.clone(), failures.clone(), done_lookups.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match lookups.lookup("probe").await {
                    Ok(found) => assert_eq!(found, uri(0)),
                    Err(e) => {
                        eprintln!("a lookup failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done_lookups.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = cluster.wait_for_leader(PATIENCE).await;
    eprintln!("killing etcd's leader, {}", cluster.name(leader));
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(PATIENCE).await;
    eprintln!("new leader: {}", cluster.name(new_leader));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed_before = failures.load(Ordering::Relaxed);
    eprintln!("killing replica a (port {})", a.port);
    a.child.child.start_kill().unwrap();
    a.child.child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    let mut leases = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for w in writers {
        let (o, f, lease) = w.await.unwrap();
        ok += o;
        failed += f;
        leases.push(lease);
    }
    eprintln!(
        "{ok} registrations acknowledged, {failed} failed; {} lookups, {} failed",
        done_lookups.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed)
    );
    assert!(ok > 100, "too few writes went through: {ok}");
    assert_eq!(failed_before, 0, "lookups are served from the cache: none fails while etcd elects");
    assert!(failures.load(Ordering::Relaxed) <= 1, "more than the one lookup in flight at the kill failed");

    // Every acknowledged registration is there, through the surviving replica.
    let survivor = NameServerProxy::from_proxy(proxy_to(b.port));
    let present: std::collections::BTreeMap<String, ObjectUri> = survivor
        .list(NameFilter::Regex("w[0-9]\\..*".into()))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.uri))
        .collect();
    let acked = acked.lock().await;
    let missing: Vec<&String> =
        acked.iter().filter(|(n, u)| present.get(n) != Some(u)).map(|(n, _)| n).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged registrations are missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    drop(leases);
}

/// The chain topology across two replicas: the servers register through
/// one, the client resolves through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_runs_across_two_replicas() {
    let Some(cluster) = Cluster::start("the_chain_runs_across_two_replicas").await else { return };
    let a = replica(&cluster).await;
    let b = replica(&cluster).await;
    let server_env = common::name_server_env(a.port);
    let client_env = common::name_server_env(b.port);
    let mut servers = Vec::new();
    for (n, next) in [("1", "2"), ("2", "3"), ("3", "1")] {
        let mut server = spawn_example("chain_server", &[n, next], &env_refs(&server_env));
        let mut lines = server.lines();
        server.wait_for_line(&mut lines, |l| l.starts_with(&format!("Server {n} ready"))).await;
        servers.push((server, lines));
    }
    let on_b = NameServerProxy::from_proxy(proxy_to(b.port));
    assert!(
        eventually(PATIENCE, async || names_with(&on_b, "example.chainTopology.").await.len() == 3).await
    );
    let client = spawn_example("chain_client", &[], &env_refs(&client_env));
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.ends_with(
            "Result=[\"passed on from 1\", \"passed on from 2\", \"passed on from 3\", \"complete at 1\"]\n"
        ),
        "{out}"
    );
}

/// etcd over mutual TLS: a replica with the CA and a client certificate
/// serves; one without the certificate, or speaking plaintext to it, is
/// refused at start with an error that names etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reach_etcd_over_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    rmi_naming::devcerts::write_dev_files(certs.path(), &["127.0.0.1", "localhost"], 1).unwrap();
    let file = |name: &str| certs.path().join(name);
    let tls = rmi_naming::devetcd::DevTls {
        ca: file("ca.pem"),
        cert: file("server.pem"),
        key: file("server.key"),
        client: (file("client.pem"), file("client.key")),
    };
    let Some(cluster) = Cluster::start_with("replicas_reach_etcd_over_mutual_tls", Some(&tls)).await else {
        return;
    };
    let endpoints = cluster.endpoints();
    assert!(endpoints.starts_with("https://"), "{endpoints}");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (path(&tls.ca), path(&tls.client.0), path(&tls.client.1));
    let good = spawn_name_server_with(
        &["--etcd", &endpoints, "--etcd-ca", &ca, "--etcd-cert", &cert, "--etcd-key", &key],
        &[],
    )
    .await;
    let ns = NameServerProxy::from_proxy(proxy_to(good.port));
    ns.register("tls.one", &uri(1)).await.unwrap();
    assert_eq!(ns.lookup("tls.one").await.unwrap(), uri(1));

    let refused = |args: Vec<String>| async move {
        let out = tokio::time::timeout(
            PATIENCE,
            tokio::process::Command::new(common::naming_bin())
                .args(["--port", "0", "--no-broadcast"])
                .args(&args)
                .env_remove("RMI_NS_HOST")
                .output(),
        )
        .await
        .expect("it gives up in time")
        .unwrap();
        assert!(!out.status.success(), "{args:?} served");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let no_cert = refused(vec!["--etcd".into(), endpoints.clone(), "--etcd-ca".into(), ca.clone()]).await;
    assert!(no_cert.contains("etcd"), "{no_cert}");
    let plaintext = refused(vec!["--etcd".into(), endpoints.replace("https://", "http://")]).await;
    assert!(plaintext.contains("etcd"), "{plaintext}");
}
