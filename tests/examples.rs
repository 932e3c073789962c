//! The examples, run as real processes on loopback.

mod common;

use common::spawn_example;

#[tokio::test]
async fn the_greeting_runs_as_two_processes() {
    let mut server = spawn_example("greeting_server", &["127.0.0.1:0"], &[]);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();
    assert!(uri.starts_with("RMI:example.greeting@127.0.0.1:"), "{uri}");

    let client = spawn_example("greeting_client", &[&uri, "Ruvika"], &[]);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "Hi welcome Ruvika\n");

    // A client pointed at a missing object fails with a clear message.
    let wrong = uri.replace("example.greeting", "nobody");
    let client = spawn_example("greeting_client", &[&wrong, "x"], &[]);
    let (status, _) = client.output().await;
    assert!(!status.success());
}
