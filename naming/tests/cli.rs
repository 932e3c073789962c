//! The `rmi-naming` binary's control commands against a real name server
//! process: readable and JSON output, refusals as one line and a failure.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// Bound on every wait, so a broken test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

fn command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rmi-naming"));
    command
        .env_remove("RMI_NS_HOST")
        .env_remove("RMI_HMAC_KEY")
        .env_remove("RMI_NS_STORAGE")
        .kill_on_drop(true);
    command
}

/// A name server process (killed when dropped) and its port.
struct NameServer {
    _child: tokio::process::Child,
    port: u16,
}

async fn name_server(extra: &[&str]) -> NameServer {
    let mut child = command()
        .args(["--port", "0", "--no-broadcast"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rmi-naming");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let uri = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(uri) = line.strip_prefix("URI = ") {
                return uri.to_owned();
            }
        }
        panic!("rmi-naming ended without printing its URI");
    })
    .await
    .expect("rmi-naming printed its URI in time");
    let port = uri.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the URI");
    NameServer { _child: child, port }
}

/// Runs `rmi-naming <args>`: exit status, stdout, stderr.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = command();
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output =
        tokio::time::timeout(PATIENCE, command.output()).await.expect("finished in time").expect("ran");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn control_commands() {
    let ns = name_server(&[]).await;
    let port = ns.port.to_string();
    let at = ["--host", "127.0.0.1", "--port", port.as_str()];
    let run = |args: Vec<&str>| {
        let mut all: Vec<&str> = at.to_vec();
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run(&refs, &[]).await
        }
    };

    let (status, out, _) =
        run(vec!["register", "app.db", "RMI:db@127.0.0.1:9100", "--meta", "class:db", "zone:a"]).await;
    assert!(status.success());
    assert_eq!(out, "registered app.db --> RMI:db@127.0.0.1:9100\n");
    assert!(run(vec!["register", "app.web", "RMI:web@127.0.0.1:9101"]).await.0.success());
    assert!(run(vec!["register", "other", "RMI:o@127.0.0.1:9102", "--meta", "zone:a"]).await.0.success());

    let (_, out, _) = run(vec!["list"]).await;
    assert_eq!(
        out,
        "app.db --> RMI:db@127.0.0.1:9100\n    metadata: class:db, zone:a\napp.web --> RMI:web@127.0.0.1:9101\n\
         other --> RMI:o@127.0.0.1:9102\n    metadata: zone:a\n"
    );
    let (_, out, _) = run(vec!["--json", "list", "--prefix", "app."]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["name"], "app.db");
    assert_eq!(json[0]["metadata"][1], "zone:a");
    assert_eq!(json[1]["uri"], "RMI:web@127.0.0.1:9101");
    let (_, out, _) = run(vec!["list", "--regex", r"app\.w.*"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n");
    let (_, out, _) = run(vec!["lookup", "app.web"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n");
    let (_, out, _) = run(vec!["yplookup", "--any", "zone:a"]).await;
    assert!(out.contains("app.db") && out.contains("other") && !out.contains("app.web"), "{out}");
    let (_, out, _) = run(vec!["--json", "yplookup", "--all", "class:db", "zone:a"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len(), 1);
    assert!(run(vec!["setmeta", "app.web", "class:web"]).await.0.success());
    let (_, out, _) = run(vec!["yplookup", "--all", "class:web"]).await;
    assert_eq!(out, "app.web --> RMI:web@127.0.0.1:9101\n    metadata: class:web\n");
    let (_, out, _) = run(vec!["count"]).await;
    assert_eq!(out, "3\n");
    let (_, out, _) = run(vec!["--json", "ping"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["alive"], true);

    // Refusals: a non-zero exit and one line that says why.
    for (args, says) in [
        (vec!["register", "--safe", "app.db", "RMI:x@127.0.0.1:1"], "already registered"),
        (vec!["register", "bad name", "RMI:x@127.0.0.1:1"], "invalid name"),
        (vec!["register", "x", "not-a-uri"], "invalid URI"),
        (vec!["list", "--regex", "(("], "invalid regular expression"),
        (vec!["lookup", "nothing"], "no name \"nothing\""),
        (vec!["remove", "nothing"], "no name \"nothing\""),
    ] {
        let (status, out, err) = run(args.clone()).await;
        assert!(!status.success(), "{args:?} succeeded: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("rmi-naming: ") && err.contains(says), "{args:?}: {err}");
    }

    let (_, out, _) = run(vec!["remove", "--prefix", "app."]).await;
    assert_eq!(out, "removed 2 names\n");
    assert!(run(vec!["remove", "other"]).await.0.success());
    let (_, out, _) = run(vec!["count"]).await;
    assert_eq!(out, "0\n");
}

#[tokio::test]
async fn an_unreachable_name_server_is_one_line_and_a_failure() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (status, out, err) = run(&["--host", "127.0.0.1", "--port", &free, "list"], &[]).await;
    assert!(!status.success());
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach the name server") && err.contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn help_explains_every_flag() {
    let (status, out, _) = run(&["--help"], &[]).await;
    assert!(status.success());
    for flag in
        ["--host", "--port", "--bcport", "--no-broadcast", "--key", "--storage", "--json", "--advertise"]
    {
        assert!(out.contains(flag), "--help does not mention {flag}");
    }
    for var in ["RMI_NS_HOST", "RMI_NS_PORT", "RMI_NS_BCPORT", "RMI_HMAC_KEY", "RMI_NS_STORAGE"] {
        assert!(out.contains(var), "--help does not mention {var}");
    }
}

#[tokio::test]
async fn a_keyed_name_server_refuses_a_command_without_the_key() {
    let ns = name_server(&["--key", "k3y"]).await;
    let port = ns.port.to_string();
    let (status, _, err) = run(&["-n", "127.0.0.1", "-p", &port, "ping"], &[]).await;
    assert!(!status.success());
    assert!(err.contains("requires an HMAC key"), "{err}");
    let (status, _, _) = run(&["-n", "127.0.0.1", "-p", &port, "ping"], &[("RMI_HMAC_KEY", "k3y")]).await;
    assert!(status.success());
}
