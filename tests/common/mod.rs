//! Shared helpers for the loopback tests: objects to host, and daemons that
//! stop when dropped.

// Each test file uses a different part of this module.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;
use std::time::Duration;

use rmi::{Blob, Daemon, DaemonBuilder, ObjectUri};

/// Waits on every helper: a bound, so that a broken test fails instead of
/// hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon serving in the background; shut down when dropped.
pub struct TestDaemon {
    pub daemon: Daemon,
    serving: Option<tokio::task::JoinHandle<Result<(), rmi::DaemonError>>>,
}

impl TestDaemon {
    /// Binds `127.0.0.1:0` with `builder` and serves.
    pub async fn start(builder: DaemonBuilder) -> Self {
        Self::start_at(builder, "127.0.0.1:0").await
    }

    pub async fn start_at(builder: DaemonBuilder, address: &str) -> Self {
        let daemon = builder.bind(address).await.expect("bind");
        let serving = tokio::spawn({
            let daemon = daemon.clone();
            async move { daemon.serve().await }
        });
        TestDaemon { daemon, serving: Some(serving) }
    }

    /// A daemon with default settings (no key) hosting a Calculator as "calc".
    pub async fn calculator() -> (Self, ObjectUri) {
        let d = Self::start(builder()).await;
        let uri = d.daemon.register(Calculator::default(), Some("calc")).expect("register");
        (d, uri)
    }

    /// Shuts the daemon down and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.daemon.shutdown();
        let Some(serving) = self.serving.take() else { return };
        let served = tokio::time::timeout(PATIENCE, serving).await.expect("serve returned in time");
        served.expect("serve task").expect("serve");
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.daemon.shutdown();
    }
}

/// A daemon builder with default settings, whatever the environment says.
pub fn builder() -> DaemonBuilder {
    Daemon::builder_with_config(&rmi::Config::default())
}

/// A proxy builder with default settings, whatever the environment says.
pub fn proxy_builder(uri: &ObjectUri) -> rmi::ProxyBuilder {
    rmi::Proxy::builder_with_config(uri, &rmi::Config::default())
}

/// The error of a division by zero, with a cause, to see chains travel.
#[derive(Debug, thiserror::Error)]
#[error("cannot divide {0} by zero")]
pub struct DivideByZero(pub i64, #[source] pub NoInverse);

#[derive(Debug, thiserror::Error)]
#[error("zero has no inverse")]
pub struct NoInverse;

/// The object most tests call.
#[derive(Default)]
pub struct Calculator {
    records: Mutex<Vec<String>>,
}

#[rmi::expose]
impl Calculator {
    /// Adds.
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Adds after a while, without holding a thread.
    pub async fn slow_add(&self, a: i64, b: i64, millis: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        a + b
    }

    /// Divides, or fails with an error that has a cause.
    pub fn divide(&self, a: i64, b: i64) -> Result<i64, DivideByZero> {
        if b == 0 { Err(DivideByZero(a, NoInverse)) } else { Ok(a / b) }
    }

    /// Panics.
    pub fn panics(&self) -> u32 {
        panic!("deliberate panic")
    }

    /// Panics after an await.
    pub async fn panics_later(&self) -> u32 {
        tokio::task::yield_now().await;
        panic!("deliberate async panic")
    }

    /// Records a line; callers do not wait.
    #[rmi::oneway]
    pub fn record(&self, line: String) {
        self.records.lock().unwrap().push(line);
    }

    /// What was recorded.
    pub fn records(&self) -> Vec<String> {
        self.records.lock().unwrap().clone()
    }

    /// A blob's length.
    pub fn blob_len(&self, blob: Blob) -> u64 {
        blob.len() as u64
    }

    /// The blob, back.
    pub fn echo_blob(&self, blob: Blob) -> Blob {
        blob
    }

    /// Returns nothing.
    pub fn nothing(&self) {}

    /// Uses a method that is not exposed.
    pub fn secret_plus_one(&self) -> u32 {
        self.secret() + 1
    }

    fn secret(&self) -> u32 {
        41
    }

    /// Not exposed: it takes no `self`.
    pub fn unit() -> Self {
        Calculator::default()
    }
}

/// An object that calls other objects, to see re-entrant calls complete.
pub struct Relay;

#[rmi::expose]
impl Relay {
    /// Asks `other` to bounce `n` back to `back`.
    pub async fn relay(&self, other: String, back: String, n: u32) -> Result<u32, rmi::Error> {
        RelayProxy::new(other)?.bounce(back, n).await
    }

    /// Calls `back.finish(n)`.
    pub async fn bounce(&self, back: String, n: u32) -> Result<u32, rmi::Error> {
        RelayProxy::new(back)?.finish(n).await
    }

    /// The end of the chain.
    pub fn finish(&self, n: u32) -> u32 {
        n + 1
    }
}

/// A child process that is killed when dropped, also when a test fails.
pub struct Child {
    pub child: tokio::process::Child,
    pub name: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The path of a built example binary (`cargo test` builds examples
/// before it runs tests).
pub fn example(name: &str) -> std::path::PathBuf {
    // target/debug/deps/<test binary> → target/debug/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built; run the tests with `cargo test`", path.display());
    path
}

/// Starts an example with `args` and environment `env`, its stdout and
/// stdin piped, its stderr inherited.
pub fn spawn_example(name: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = tokio::process::Command::new(example(name));
    command
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Child { child, name: name.to_owned() }
}

impl Child {
    /// Reads stdout lines until one satisfies `want`; returns it.
    pub async fn wait_for_line(
        &mut self,
        lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let name = self.name.clone();
        tokio::time::timeout(PATIENCE, async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) if want(&line) => return line,
                    Ok(Some(_)) => {}
                    other => panic!("{name} ended its output without the expected line: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} did not print the expected line in time", self.name))
    }

    /// The stdout lines of the process.
    pub fn lines(&mut self) -> tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>> {
        use tokio::io::AsyncBufReadExt;
        let stdout = self.child.stdout.take().expect("stdout piped");
        tokio::io::BufReader::new(stdout).lines()
    }

    /// Waits for the process to exit and returns its whole stdout.
    pub async fn output(self) -> (std::process::ExitStatus, String) {
        let name = self.name.clone();
        let mut this = std::mem::ManuallyDrop::new(self);
        let child = take_child(&mut this.child);
        let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} did not exit in time"))
            .expect("wait");
        (output.status, String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Moves the child out of its guard without running the guard's `Drop`.
fn take_child(child: &mut tokio::process::Child) -> tokio::process::Child {
    // A placeholder child is not available, so swap in a finished one: `true`
    // exits at once and is reaped by tokio.
    let placeholder = tokio::process::Command::new("true").kill_on_drop(true).spawn().expect("spawn true");
    std::mem::replace(child, placeholder)
}

/// The path of the `rmi-naming` binary (`cargo test --workspace` builds it).
pub fn naming_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let path = dir.join("rmi-naming");
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace` (rmi-naming's own tests make cargo build it)",
        path.display()
    );
    path
}

/// A running `rmi-naming` process and what it printed on start.
pub struct NameServerProcess {
    pub child: Child,
    pub uri: String,
    pub port: u16,
    pub lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Starts `rmi-naming --port 0 --no-broadcast <extra>` and waits for its URI.
pub async fn spawn_name_server(extra: &[&str]) -> NameServerProcess {
    spawn_name_server_with(extra, &[]).await
}

/// As [`spawn_name_server`], with `env` set for the name server.
pub async fn spawn_name_server_with(extra: &[&str], env: &[(&str, &str)]) -> NameServerProcess {
    let mut command = tokio::process::Command::new(naming_bin());
    command.envs(env.iter().copied());
    command
        .args(["--port", "0", "--no-broadcast"])
        .args(extra)
        .env_remove("RMI_NS_HOST")
        .env_remove("RMI_HMAC_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let child = command.spawn().expect("start rmi-naming");
    let mut child = Child { child, name: "rmi-naming".into() };
    let mut lines = child.lines();
    let line = child.wait_for_line(&mut lines, |l| l.starts_with("URI = ")).await;
    let uri = line.trim_start_matches("URI = ").to_owned();
    let port = uri.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the URI");
    NameServerProcess { child, uri, port, lines }
}

/// The `RMI_TLS_*` variables of mutual TLS, with throwaway certificates for
/// loopback written into `dir` (as `rmi-naming dev-certs` writes them).
pub fn mutual_tls_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    rmi_naming::devcerts::write_dev_files(dir, &["localhost", "127.0.0.1", "::1"], 1).expect("certificates");
    let mut env = vec![("RMI_TLS", "on".to_owned()), ("RMI_TLS_REQUIRE_CLIENT_CERT", "on".to_owned())];
    for (var, file) in rmi_naming::devcerts::DEV_FILES {
        env.push((var, dir.join(file).display().to_string()));
    }
    env
}

/// The environment that points examples at the name server on `port`.
pub fn name_server_env(port: u16) -> Vec<(&'static str, String)> {
    vec![("RMI_NS_HOST", "127.0.0.1".to_owned()), ("RMI_NS_PORT", port.to_string())]
}

/// `env` as the `&str` pairs `spawn_example` takes.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A child's stdout, read line by line on a task of its own, so that the
/// child never blocks on a full pipe, and searchable while the child runs.
pub struct OutputLog {
    name: String,
    shared: std::sync::Arc<LogShared>,
}

#[derive(Default)]
struct LogShared {
    /// The lines so far, and whether the output ended.
    lines: Mutex<(Vec<String>, bool)>,
    changed: tokio::sync::Notify,
}

impl OutputLog {
    /// Starts collecting `child`'s stdout.
    pub fn start(child: &mut Child) -> Self {
        Self::from_lines(&child.name.clone(), child.lines())
    }

    /// Starts collecting `lines`, already taken from the child named `name`.
    pub fn from_lines(
        name: &str,
        mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    ) -> Self {
        let shared = std::sync::Arc::new(LogShared::default());
        let writer = shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                writer.lines.lock().unwrap().0.push(line);
                writer.changed.notify_waiters();
            }
            writer.lines.lock().unwrap().1 = true;
            writer.changed.notify_waiters();
        });
        OutputLog { name: name.to_owned(), shared }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap().0.clone()
    }

    /// Waits until `count` lines satisfy `want`; returns the first of them.
    /// Panics when the output ends first, or after [`PATIENCE`].
    pub async fn wait_for_count(&self, count: usize, want: impl Fn(&str) -> bool) -> String {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                {
                    let guard = self.shared.lines.lock().unwrap();
                    let (lines, ended) = &*guard;
                    let matching: Vec<&String> = lines.iter().filter(|l| want(l)).collect();
                    if matching.len() >= count {
                        return matching[0].clone();
                    }
                    assert!(
                        !ended,
                        "{} ended its output without the expected line; it printed {lines:#?}",
                        self.name
                    );
                }
                changed.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!("{} did not print the expected line in time; it printed {:#?}", self.name, self.lines())
        })
    }

    /// Waits for a line that satisfies `want`; returns it.
    pub async fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        self.wait_for_count(1, want).await
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}
