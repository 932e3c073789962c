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

/// Starts an example server on a free port; returns it and its URI.
async fn server(name: &str) -> (common::Child, String) {
    let mut server = spawn_example(name, &["127.0.0.1:0"], &[]);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();
    // Keep reading its output, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (server, uri)
}

#[tokio::test]
async fn the_callback_client_hears_every_step_with_no_daemon_of_its_own() {
    let (_server, uri) = server("callback_server").await;
    let client = spawn_example("callback_client", &[&uri], &[]);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(
        out,
        "Starting a job of 4 steps\n\
         Progress:  25% (step 1 of 4)\n\
         Progress:  50% (step 2 of 4)\n\
         Progress:  75% (step 3 of 4)\n\
         Progress: 100% (step 4 of 4)\n\
         Job done: 4 steps done\n"
    );
}

#[tokio::test]
async fn the_autoproxy_client_uses_its_thingies_and_the_server_releases_them() {
    let (_server, uri) = server("autoproxy_server").await;
    let client = spawn_example("autoproxy_client", &[&uri], &[]);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(
        out,
        "Thingy \"first\" has value 42\n\
         Thingy \"second\" has value 99\n\
         Alive in the server: 2\n\
         Alive in the server after dropping them: 0\n"
    );
}
