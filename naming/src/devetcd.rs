//! **For development and tests only:** a throwaway local etcd cluster,
//! members on free loopback ports with their data in a directory the
//! caller gives, killed when the cluster is dropped. Production etcd is
//! run and secured by its operators (see SECURITY.md); this is what the
//! tests and `rmi-bench` start, and what the README's commands do by hand.
//!
//! `etcd` itself comes from the system (Debian's `etcd-server`), or from
//! the path in `RMI_TEST_ETCD`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The etcd binary: `RMI_TEST_ETCD`, else `etcd` on the `PATH`, else
/// `/usr/bin/etcd`; `None` when none is there.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RMI_TEST_ETCD").map(PathBuf::from) {
        return path.exists().then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("etcd")).find(|p| p.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One member of a [`DevCluster`].
#[derive(Debug)]
pub struct DevMember {
    /// Its name: `m0`, `m1`, …
    pub name: String,
    /// The URL clients reach it at (`http://127.0.0.1:<port>`).
    pub client_url: String,
    process: Option<Child>,
}

impl DevMember {
    /// Whether it has not been killed.
    pub fn is_alive(&self) -> bool {
        self.process.is_some()
    }
}

/// A local etcd cluster for development and tests (see the module's
/// documentation): killed, every member, when dropped.
#[derive(Debug)]
pub struct DevCluster {
    /// The members, in the order they were started.
    pub members: Vec<DevMember>,
    /// How [`DevCluster::leader`] reaches the members (with the `etcd`
    /// feature).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    tls: Option<DevTls>,
}

/// TLS on the members' client URLs (`https://`), requiring client
/// certificates from `ca`: PEM files such as `rmi-naming dev-certs` writes.
#[derive(Debug, Clone)]
pub struct DevTls {
    /// The CA bundle client certificates are verified with.
    pub ca: PathBuf,
    /// The members' certificate (for `127.0.0.1`).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// A client certificate and key, for [`DevCluster::leader`].
    pub client: (PathBuf, PathBuf),
}

impl DevCluster {
    /// Starts `size` members of a new cluster with `etcd`, their data and
    /// logs (`<name>.log`) in `dir`, with fast elections (a dead leader is
    /// replaced in about a second). It returns at once: the cluster elects
    /// its leader within a second or two (`wait_for_leader` waits).
    ///
    /// # Errors
    ///
    /// A member that cannot be started (the others are killed).
    pub fn start(etcd: &Path, dir: &Path, size: usize) -> std::io::Result<DevCluster> {
        Self::start_with(etcd, dir, size, None)
    }

    /// As [`DevCluster::start`], with TLS on the client URLs when `tls`.
    ///
    /// # Errors
    ///
    /// As [`DevCluster::start`].
    pub fn start_with(
        etcd: &Path,
        dir: &Path,
        size: usize,
        tls: Option<&DevTls>,
    ) -> std::io::Result<DevCluster> {
        let ports: Vec<(u16, u16)> =
            (0..size).map(|_| Ok((free_port()?, free_port()?))).collect::<std::io::Result<_>>()?;
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let initial = initial.join(",");
        let token = format!("rmi-dev-{}-{}", std::process::id(), ports.first().map_or(0, |p| p.0));
        let mut cluster = DevCluster { members: Vec::new(), tls: tls.cloned() };
        let scheme = if tls.is_some() { "https" } else { "http" };
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            let mut command = Command::new(etcd);
            if let Some(tls) = tls {
                command.arg("--cert-file").arg(&tls.cert).arg("--key-file").arg(&tls.key);
                command.arg("--trusted-ca-file").arg(&tls.ca).arg("--client-cert-auth");
            }
            let process = command
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(dir.join(&name))
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            cluster.members.push(DevMember { name, client_url, process: Some(process) });
        }
        Ok(cluster)
    }

    /// Every live member's client URL, comma-separated (as `--etcd` takes
    /// them).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.is_alive())
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The first member that exited on its own (one that could not bind
    /// its port, say), reaped; `None` while every member started runs.
    pub fn exited(&mut self) -> Option<usize> {
        self.members.iter_mut().position(|m| {
            let gone = m.process.as_mut().is_some_and(|p| !matches!(p.try_wait(), Ok(None)));
            if gone {
                m.process = None;
            }
            gone
        })
    }

    /// SIGKILLs member `i` (and reaps it).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.members.get_mut(i).and_then(|m| m.process.take()) {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// The index of the member that leads now, as a live member says.
    #[cfg(feature = "etcd")]
    pub async fn leader(&self) -> Option<usize> {
        for m in self.members.iter().filter(|m| m.is_alive()) {
            let mut options = etcd_client::ConnectOptions::new();
            if let Some(tls) = &self.tls {
                let (Ok(ca), Ok(cert), Ok(key)) =
                    (std::fs::read(&tls.ca), std::fs::read(&tls.client.0), std::fs::read(&tls.client.1))
                else {
                    return None;
                };
                options = options.with_tls(
                    etcd_client::TlsOptions::new()
                        .ca_certificate(etcd_client::Certificate::from_pem(ca))
                        .identity(etcd_client::Identity::from_pem(cert, key)),
                );
            }
            let Ok(mut client) = etcd_client::Client::connect([m.client_url.as_str()], Some(options)).await
            else {
                continue;
            };
            let Ok(status) = client.status().await else { continue };
            let Ok(members) = client.member_list().await else { continue };
            let leader = status.leader();
            let name = members.members().iter().find(|x| x.id() == leader).map(|x| x.name().to_owned());
            if let Some(i) = name.and_then(|name| self.members.iter().position(|m| m.name == name)) {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a live member leads; returns it, or `None` after `within`.
    #[cfg(feature = "etcd")]
    pub async fn wait_for_leader(&self, within: std::time::Duration) -> Option<usize> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(leader) =
                self.leader().await.filter(|i| self.members.get(*i).is_some_and(DevMember::is_alive))
            {
                return Some(leader);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
