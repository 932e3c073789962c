//! A real etcd cluster for tests (included by `tests/etcd.rs`): three
//! members of `rmi_naming::devetcd` in a temporary directory.
//!
//! `etcd` comes from the system (Debian's `etcd-server`; `.ci/run` installs
//! it). Where it is missing, a test calls [`Cluster::start`] and gets
//! `None` with a loud message on stderr, outside CI only: in CI (`CI` set)
//! a missing etcd fails the test.

#![allow(unreachable_pub)]

use std::time::Duration;

use rmi_naming::devetcd::DevCluster;

/// Three etcd members, with their data directory.
pub struct Cluster {
    pub dev: DevCluster,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three members and waits until the cluster has a leader;
    /// `None` (said loudly) where etcd is not installed, outside CI.
    pub async fn start(test: &str) -> Option<Cluster> {
        Self::start_with(test, None).await
    }

    /// As [`Cluster::start`], the members serving TLS with `tls`.
    pub async fn start_with(test: &str, tls: Option<&rmi_naming::devetcd::DevTls>) -> Option<Cluster> {
        let Some(etcd) = rmi_naming::devetcd::etcd_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcd is not installed, and CI is set: install it (apt-get install etcd-server), as .ci/run does"
            );
            eprintln!(
                "\n!!! SKIPPED {test}: etcd is not installed (apt-get install etcd-server; .ci/run installs it)\n"
            );
            return None;
        };
        // The members' ports are picked free and then bound by etcd: another
        // process may take one in between, and that member exits. Then the
        // cluster starts again on other ports, a few times.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a data directory");
            let dev = DevCluster::start_with(&etcd, dir.path(), 3, tls).expect("start etcd");
            let mut cluster = Cluster { dev, dir };
            match cluster.wait_for_start(Duration::from_secs(30)).await {
                Ok(()) => return Some(cluster),
                Err(member) => {
                    let log = std::fs::read_to_string(cluster.dir.path().join(format!("m{member}.log")));
                    let log = log.unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
                    eprintln!(
                        "etcd member m{member} exited at start, starting the cluster again; its log ends:\n{tail}"
                    );
                }
            }
        }
        panic!("etcd's members kept exiting at start (see the logs above)");
    }

    /// Waits until the cluster has a leader; `Err` with a member that
    /// exited meanwhile. Panics after `within`, keeping the logs.
    async fn wait_for_start(&mut self, within: Duration) -> Result<(), usize> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(member) = self.dev.exited() {
                return Err(member);
            }
            if self.dev.leader().await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a data directory")).keep();
        panic!("etcd has no leader after {within:?}; logs in {}", kept.display());
    }

    /// Every member's client URL, comma-separated (as `--etcd` takes them).
    pub fn endpoints(&self) -> String {
        self.dev.endpoints()
    }

    /// The name of member `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.dev.members[i].name
    }

    /// Waits until a live member leads; returns it.
    pub async fn wait_for_leader(&self, within: Duration) -> usize {
        match self.dev.wait_for_leader(within).await {
            Some(leader) => leader,
            None => panic!("etcd has no leader after {within:?}; logs in {}", self.dir.path().display()),
        }
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        self.dev.kill(i);
    }
}
