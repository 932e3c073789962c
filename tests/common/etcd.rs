//! A real etcd cluster for tests (included by `tests/etcd.rs`): three members on free loopback ports,
//! each in a data directory of its own, killed when the cluster is dropped.
//!
//! `etcd` comes from the system (Debian's `etcd-server`; `.ci/run` installs
//! it). Where it is missing, a test calls [`Cluster::start`] and gets
//! `None` with a loud message on stderr, outside CI only: in CI (`CI` set)
//! a missing etcd fails the test.

#![allow(unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::Child;

/// The etcd binary, if installed.
fn etcd_bin() -> Option<PathBuf> {
    let candidates = [std::env::var_os("RMI_TEST_ETCD").map(PathBuf::from), Some("/usr/bin/etcd".into())];
    candidates.into_iter().flatten().find(|p| p.exists()).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join("etcd")).find(|p| p.exists())
    })
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local address").port()
}

/// One etcd member.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub process: Option<Child>,
}

/// Three etcd members on loopback.
pub struct Cluster {
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three members and waits until the cluster has a leader;
    /// `None` (said loudly) where etcd is not installed, outside CI.
    pub async fn start(test: &str) -> Option<Cluster> {
        let Some(etcd) = etcd_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcd is not installed, and CI is set: install it (apt-get install etcd-server), as .ci/run does"
            );
            eprintln!(
                "\n!!! SKIPPED {test}: etcd is not installed (apt-get install etcd-server; .ci/run installs it)\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a data directory");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let initial = initial.join(",");
        let token = format!("rmi-test-{}", std::process::id());
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("a log file");
            let child = tokio::process::Command::new(&etcd)
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(dir.path().join(&name))
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                // Fast elections: a dead leader is replaced within about a second.
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("start etcd");
            members.push(Member { name: name.clone(), client_url, process: Some(Child { child, name }) });
        }
        let cluster = Cluster { members, _dir: dir };
        cluster.wait_for_leader(Duration::from_secs(30)).await;
        Some(cluster)
    }

    /// Every member's client URL, comma-separated (as `--etcd` takes them).
    pub fn endpoints(&self) -> String {
        self.members.iter().map(|m| m.client_url.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Where the members log.
    pub fn log_dir(&self) -> &Path {
        self._dir.path()
    }

    /// The index of the member that leads now.
    pub async fn leader(&self) -> Option<usize> {
        for m in self.members.iter().filter(|m| m.process.is_some()) {
            let Ok(mut client) = etcd_client::Client::connect([m.client_url.as_str()], None).await else {
                continue;
            };
            let Ok(status) = client.status().await else { continue };
            let leader = status.leader();
            let members = client.member_list().await.ok()?;
            let name = members.members().iter().find(|x| x.id() == leader).map(|x| x.name().to_owned())?;
            return self.members.iter().position(|m| m.name == name);
        }
        None
    }

    /// Waits until the live members have a leader that is alive.
    pub async fn wait_for_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(leader) = self.leader().await
                && self.members[leader].process.is_some()
            {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "etcd has no leader after {within:?}; logs in {}",
                self.log_dir().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs member `i`.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut member) = self.members[i].process.take() {
            member.child.start_kill().expect("kill etcd");
            member.child.wait().await.expect("reap etcd");
        }
    }
}
