//! Faults, with the daemon (or the client) in a child process that is
//! killed, frozen or restarted. This test binary plays those children
//! itself when started with `RMI_FAULTS_ROLE` set, so it has its own `main`
//! (`harness = false` in Cargo.toml).

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, PATIENCE, TestDaemon, builder};
use rmi::Error;
use tokio::io::AsyncBufReadExt;

/// Counts the calls running in it; a call's count goes when its future is
/// dropped, finished or aborted.
#[derive(Debug, Default)]
pub struct Holder {
    running: Arc<AtomicU64>,
}

struct Running(Arc<AtomicU64>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[rmi::expose]
impl Holder {
    /// Holds on for `millis`.
    pub async fn hold(&self, millis: u64) -> u64 {
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(self.running.clone());
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

/// A token, lent by reference.
#[derive(Debug, Default)]
pub struct Token;

#[rmi::expose]
impl Token {
    /// Answers.
    #[rmi::nonblocking]
    pub fn poke(&self) -> u32 {
        1
    }
}

/// Lends tokens (autoproxy) and keeps the client's tokens (callbacks).
#[derive(Debug, Default)]
pub struct Lender {
    kept: std::sync::Mutex<Vec<rmi::Remote<TokenProxy>>>,
}

#[rmi::expose]
impl Lender {
    /// A fresh token, by reference.
    #[rmi::nonblocking]
    pub fn lend(&self) -> rmi::Remote<TokenProxy> {
        rmi::Remote::new(Token)
    }

    /// Keeps a client's token.
    #[rmi::nonblocking]
    pub fn keep(&self, token: rmi::Remote<TokenProxy>) {
        self.kept.lock().unwrap().push(token);
    }
}

fn main() -> ExitCode {
    // Test runners (cargo-nextest) first ask for the list of tests: this
    // binary is one test, `faults`, and has no ignored ones.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("faults: test");
        }
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match std::env::var("RMI_FAULTS_ROLE").as_deref() {
        Ok("daemon") => runtime.block_on(daemon_child()),
        Ok("client") => runtime.block_on(client_child()),
        Ok("borrower") => runtime.block_on(borrower_child()),
        _ => runtime.block_on(run_all()),
    }
}

/// The child daemon: a Calculator, at `RMI_FAULTS_BIND`; prints its URI.
async fn daemon_child() -> ExitCode {
    let bind = std::env::var("RMI_FAULTS_BIND").unwrap_or_else(|_| "127.0.0.1:0".into());
    let d = TestDaemon::start_at(builder(), &bind).await;
    let uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    println!("URI {uri}");
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}

/// The child client: holds a call open on `RMI_FAULTS_URI` until killed.
async fn client_child() -> ExitCode {
    let uri = std::env::var("RMI_FAULTS_URI").unwrap();
    let holder = HolderProxy::connect(uri.as_str()).await.unwrap();
    println!("CALLING");
    let _ = holder.hold(600_000).await;
    ExitCode::SUCCESS
}

/// The child borrower: holds 100 lent tokens and has 10 of its own kept by
/// the lender at `RMI_FAULTS_URI`, until killed.
async fn borrower_child() -> ExitCode {
    let uri = std::env::var("RMI_FAULTS_URI").unwrap();
    let lender = LenderProxy::connect(uri.as_str()).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(lender.lend().await.unwrap());
    }
    for _ in 0..10 {
        lender.keep(rmi::Remote::new(Token)).await.unwrap();
    }
    println!("HOLDING");
    std::future::pending::<()>().await;
    drop(held);
    ExitCode::SUCCESS
}

/// A child process of this test binary, killed when dropped.
struct Child {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    async fn start(role: &str, env: &[(&str, &str)]) -> Child {
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        command.env("RMI_FAULTS_ROLE", role).stdout(std::process::Stdio::piped()).kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        Child { child, lines: tokio::io::BufReader::new(stdout).lines() }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.lines.next_line()).await.unwrap().unwrap().unwrap()
    }

    async fn daemon(bind: &str) -> (Child, rmi::ObjectUri) {
        let mut child = Child::start("daemon", &[("RMI_FAULTS_BIND", bind)]).await;
        let line = child.line().await;
        let uri = line.strip_prefix("URI ").unwrap().parse().unwrap();
        (child, uri)
    }

    fn pid(&self) -> String {
        self.child.id().unwrap().to_string()
    }

    async fn signal(&self, signal: &str) {
        let status = tokio::process::Command::new("kill").args([signal, &self.pid()]).status().await.unwrap();
        assert!(status.success());
        if signal == "-STOP" {
            // `kill` returns once the signal is sent; a thread of the child
            // still running may answer a call before it stops. Wait for the
            // kernel to say it stopped (state T), for at most 5 s.
            let stat = format!("/proc/{}/stat", self.pid());
            for _ in 0..500 {
                let state = std::fs::read_to_string(&stat).unwrap_or_default();
                let stopped =
                    state.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'));
                if stopped {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the child did not stop within 5 s");
        }
    }
}

async fn run_all() -> ExitCode {
    type Test = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let tests: [(&str, Test); 5] = [
        ("a daemon killed mid-call", || Box::pin(killed_mid_call())),
        ("a frozen daemon times out", || Box::pin(frozen_daemon())),
        ("a restarted daemon", || Box::pin(restarted_daemon())),
        ("a client killed mid-call", || Box::pin(client_killed_mid_call())),
        ("a client killed holding references", || Box::pin(client_killed_holding_references())),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        let started = Instant::now();
        // Each on a task of its own: a failed assertion is a JoinError here.
        let outcome = tokio::spawn(test()).await;
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:?})", started.elapsed()),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn killed_mid_call() {
    let (child, uri) = Child::daemon("127.0.0.1:0").await;
    let calc = CalculatorProxy::new(&uri).unwrap().with_timeout(None);
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    let call = tokio::spawn({
        let calc = calc.clone();
        async move { calc.slow_add(1, 2, 60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Instant::now();
    child.signal("-KILL").await;
    let err = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap().unwrap_err();
    let noticed = killed.elapsed();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    println!("  connection lost {noticed:?} after SIGKILL");
    assert!(noticed < Duration::from_millis(500), "{noticed:?}");
}

async fn frozen_daemon() {
    // The default call timeout, unchanged: a frozen daemon never leaves a
    // caller waiting forever.
    let default = rmi::Config::default().call_timeout.unwrap();
    assert_eq!(default, Duration::from_secs(30));
    let (child, uri) = Child::daemon("127.0.0.1:0").await;
    let calc = CalculatorProxy::from_proxy(
        rmi::Proxy::builder_with_config(&uri, &rmi::Config::default()).build().unwrap(),
    );
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    child.signal("-STOP").await;
    let started = Instant::now();
    let err = tokio::time::timeout(default * 2, calc.add(2, 2))
        .await
        .expect("the call timed out by itself")
        .unwrap_err();
    let waited = started.elapsed();
    child.signal("-CONT").await;
    assert!(matches!(err, Error::Timeout(d) if d == default), "{err:?}");
    assert!(
        waited >= default - Duration::from_millis(50) && waited < default + Duration::from_secs(2),
        "{waited:?}"
    );
    println!("  timed out after {waited:?}");
}

async fn restarted_daemon() {
    let (child, uri) = Child::daemon("127.0.0.1:0").await;
    let calc = CalculatorProxy::new(&uri).unwrap();
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    child.signal("-KILL").await;
    // Its listener is gone only once it has exited: binding its port before
    // then would find the port in use.
    let mut child = child;
    let exited = tokio::time::timeout(PATIENCE, child.child.wait()).await;
    assert!(matches!(exited, Ok(Ok(_))), "the killed daemon did not exit: {exited:?}");
    let (_again, again_uri) = Child::daemon(&uri.location.to_string()).await;
    assert_eq!(again_uri, uri);
    let started = Instant::now();
    let mut sum = calc.add(2, 3).await;
    if matches!(sum, Err(Error::ConnectionLost(_))) {
        // The old connection's end had not been seen when the call went out.
        sum = calc.add(2, 3).await;
    }
    assert_eq!(sum.unwrap(), 5);
    println!("  reconnected in {:?}", started.elapsed());
}

async fn client_killed_mid_call() {
    let d = TestDaemon::start(builder()).await;
    let holder = Holder::default();
    let running = holder.running.clone();
    let uri = d.daemon.register(holder, Some("holder")).unwrap();
    let mut client = Child::start("client", &[("RMI_FAULTS_URI", &uri.to_string())]).await;
    assert_eq!(client.line().await, "CALLING");
    let started = Instant::now();
    while running.load(Ordering::SeqCst) != 1 {
        assert!(started.elapsed() < PATIENCE, "the client's call never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(d.daemon.connections(), 1);
    let killed = Instant::now();
    client.signal("-KILL").await;
    // The daemon notices, aborts the call and frees the connection.
    while running.load(Ordering::SeqCst) != 0 || d.daemon.connections() != 0 {
        assert!(killed.elapsed() < Duration::from_secs(2), "the dead client's call or connection was kept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("  call aborted and connection freed {:?} after SIGKILL", killed.elapsed());
    // Others are unaffected.
    let other = HolderProxy::new(&uri).unwrap();
    assert_eq!(other.hold(1).await.unwrap(), 1);
}

async fn client_killed_holding_references() {
    let d = TestDaemon::start(builder()).await;
    let lender = Lender::default();
    let uri = d.daemon.register(lender, Some("lender")).unwrap();
    let kept_calls = LenderProxy::new(&uri).unwrap();
    let mut client = Child::start("borrower", &[("RMI_FAULTS_URI", &uri.to_string())]).await;
    assert_eq!(client.line().await, "HOLDING");
    assert_eq!(d.daemon.exported_objects(), 100, "the 100 lent tokens");
    assert_eq!(d.daemon.imported_objects(), 10, "the client's 10 kept tokens");
    let killed = Instant::now();
    client.signal("-KILL").await;
    while d.daemon.exported_objects() != 0 || d.daemon.imported_objects() != 0 {
        assert!(killed.elapsed() < Duration::from_secs(1), "references of a dead client were kept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("  100 exports and 10 imports released {:?} after SIGKILL", killed.elapsed());
    assert_eq!(kept_calls.lend().await.unwrap().interface(), "Token", "the lender serves on");
}
