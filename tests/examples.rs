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

/// Callbacks travel back over the client's own connection: under mutual
/// TLS too, with nothing but the `RMI_TLS_*` variables set.
#[tokio::test]
async fn the_callback_example_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = common::mutual_tls_env(dir.path());
    let env = common::env_refs(&tls);
    let mut server = spawn_example("callback_server", &["127.0.0.1:0"], &env);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = spawn_example("callback_client", &[&uri], &env);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert!(out.ends_with("Progress: 100% (step 4 of 4)\nJob done: 4 steps done\n"), "{out}");
    // Without the variables, the client is refused.
    let client = spawn_example("callback_client", &[&uri], &[]);
    let (status, _) = client.output().await;
    assert!(!status.success());
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

#[tokio::test]
async fn the_stream_client_takes_five_lines_and_the_server_stops_its_producer() {
    let mut server = spawn_example("stream_server", &["127.0.0.1:0"], &[]);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();
    assert!(uri.starts_with("RMI:example.stream@127.0.0.1:"), "{uri}");

    let client = spawn_example("stream_client", &[&uri, "--take", "5"], &[]);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "Prime 1: 2\nPrime 2: 3\nPrime 3: 5\nPrime 4: 7\nPrime 5: 11\n");

    // The client dropped its stream: the server dropped the producer, which
    // had made at least the five lines and, held back by the flow control,
    // far from the million it would make for a client that reads them all.
    server.wait_for_line(&mut lines, |l| l == "Streaming 1000000 primes").await;
    let stopped = server.wait_for_line(&mut lines, |l| l.starts_with("Stopped after ")).await;
    let made: u64 = stopped
        .strip_prefix("Stopped after ")
        .and_then(|l| l.strip_suffix(" lines: the client went away"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stopped:?}"));
    assert!((5..1_000_000).contains(&made), "{stopped}");
}

#[tokio::test]
async fn the_stream_client_reads_a_file_the_server_offers_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.txt");
    // A last line without its newline, a CRLF and a byte that is not UTF-8.
    std::fs::write(&file, b"alpha\nbeta\r\ng\xffmma").unwrap();
    let mut server = spawn_example("stream_server", &["--file", file.to_str().unwrap()], &[]);
    let mut lines = server.lines();
    server.wait_for_line(&mut lines, |l| l == "Offering primes, three.txt").await;
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();

    let client = spawn_example("stream_client", &[&uri, "--source", "three.txt"], &[]);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out, "alpha\nbeta\ng\u{fffd}mma\n");
    server.wait_for_line(&mut lines, |l| l == "Sent all 3 lines of three.txt").await;

    // A source the server does not offer: the stream's error, exit status 1.
    let client = spawn_example("stream_client", &[&uri, "--source", "/etc/passwd"], &[]);
    let (status, out) = client.output().await;
    assert!(!status.success(), "{status}: {out}");
    assert_eq!(out, "");
}
