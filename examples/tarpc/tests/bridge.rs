//! A real tarpc service carried by rmi: served on an rmi daemon's listener
//! with the shared key (in this process) and over mutual TLS (the example's
//! binaries as processes, with nothing but the `RMI_*` variables), found
//! through `rmi-naming` by `RMINAME:`.

use std::process::Stdio;
use std::time::Duration;

use rmi_tarpc_example::{NAME, WorldClient, WorldRequest, WorldResponse, serve_world};
use tokio::io::AsyncBufReadExt;

const PATIENCE: Duration = Duration::from_secs(20);

fn keyed(key: Option<&str>) -> rmi::Config {
    let mut config = rmi::Config::default();
    config.hmac_key = key.map(|k| rmi::Key::new(k.as_bytes().to_vec()));
    config
}

#[tokio::test]
async fn a_tarpc_service_is_served_with_the_key_and_found_by_name() {
    let key = "tarpc over rmi";
    let mut options = rmi_naming::NameServerOptions::from_config(&keyed(Some(key)));
    options.port = 0;
    options.broadcast_port = None;
    let ns_server = rmi_naming::start(options).await.unwrap();
    let rmi::Location::Tcp(ns_at) = ns_server.uri().location.clone() else { panic!("tcp") };
    let daemon = rmi::Daemon::builder_with_config(&keyed(Some(key))).bind("127.0.0.1:0").await.unwrap();
    let uri = serve_world(&daemon).unwrap();
    let serving = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.serve().await }
    });
    let ns = rmi::NameServerProxy::from_proxy(
        rmi::Proxy::builder_with_config(ns_server.uri().clone(), &keyed(Some(key))).build().unwrap(),
    );
    ns.register(NAME, &uri).await.unwrap();

    let by_name = format!("RMINAME:{NAME}@{ns_at}");
    let transport = rmi_tarpc::connect_with(&keyed(Some(key)), by_name.as_str()).await.unwrap();
    assert!(transport.is_authenticated());
    let client = WorldClient::new(tarpc::client::Config::default(), transport).spawn();
    let greeting = tokio::time::timeout(PATIENCE, client.hello(tarpc::context::current(), "Ada".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(greeting, "Hello, Ada! (tarpc over rmi)");
    // Many calls in flight on one connection, as tarpc does.
    let sums = futures::future::join_all((0..64).map(|i| {
        let client = client.clone();
        async move { client.add(tarpc::context::current(), i, 1000).await.unwrap() }
    }))
    .await;
    assert_eq!(sums, (0..64).map(|i| i + 1000).collect::<Vec<_>>());

    // Without the key, or with another, the daemon refuses the connection.
    let direct = uri.to_string();
    let no_key = rmi_tarpc::connect_with::<WorldRequest, WorldResponse>(&keyed(None), direct.as_str()).await;
    assert!(matches!(no_key, Err(rmi::Error::Auth(rmi::AuthError::KeyRequired))), "{:?}", no_key.err());
    let wrong =
        rmi_tarpc::connect_with::<WorldRequest, WorldResponse>(&keyed(Some("another")), direct.as_str())
            .await;
    assert!(matches!(wrong, Err(rmi::Error::Auth(rmi::AuthError::WrongKey))), "{:?}", wrong.err());
    // A channel the daemon does not serve: the connection is closed, not left hanging.
    let other = format!("RMI:no.such.service@{}", uri.location);
    let transport = rmi_tarpc::connect_with(&keyed(Some(key)), other.as_str()).await.unwrap();
    let client = WorldClient::new(tarpc::client::Config::default(), transport).spawn();
    let refused = tokio::time::timeout(PATIENCE, client.hello(tarpc::context::current(), "x".into())).await;
    assert!(refused.expect("an answer in time").is_err());
    // rmi's own objects on the same daemon are served as ever.
    let pinged = rmi::Proxy::builder_with_config(&uri, &keyed(Some(key))).build().unwrap().ping().await;
    assert!(pinged.is_ok(), "{pinged:?}");

    // A live tarpc connection ends when the daemon shuts down: its service
    // stops reading, the connection closes, the client's next call fails
    // rather than waiting on a service that is gone.
    let live = rmi_tarpc::connect_with(&keyed(Some(key)), direct.as_str()).await.unwrap();
    let live = WorldClient::new(tarpc::client::Config::default(), live).spawn();
    assert_eq!(live.add(tarpc::context::current(), 1, 2).await.unwrap(), 3);
    daemon.shutdown();
    tokio::time::timeout(PATIENCE, serving).await.expect("serve returned").unwrap().unwrap();
    let after = tokio::time::timeout(PATIENCE, live.add(tarpc::context::current(), 1, 2)).await;
    assert!(after.expect("the call ends in time").is_err(), "served after the daemon shut down");
    ns_server.stop().await.unwrap();
}

/// A built binary of the workspace (`cargo test --workspace` builds them).
fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run the tests with `cargo test --workspace`", path.display());
    path
}

async fn first_line(child: &mut tokio::process::Child, starts: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match lines.next_line().await.unwrap() {
                Some(line) if line.starts_with(starts) => return line,
                Some(_) => {}
                None => panic!("the process ended without printing {starts:?}"),
            }
        }
    })
    .await
    .expect("in time")
}

#[tokio::test]
async fn the_tarpc_example_runs_over_mutual_tls_as_processes() {
    let dir = tempfile::tempdir().unwrap();
    rmi_naming::devcerts::write_dev_files(dir.path(), &["localhost", "127.0.0.1", "::1"], 1).unwrap();
    let mut env = vec![("RMI_TLS", "on".to_owned()), ("RMI_TLS_REQUIRE_CLIENT_CERT", "on".to_owned())];
    for (var, file) in rmi_naming::devcerts::DEV_FILES {
        env.push((var, dir.path().join(file).display().to_string()));
    }
    let spawn = |program: std::path::PathBuf, args: &[&str], env: &[(&str, String)]| {
        let mut command = tokio::process::Command::new(program);
        command.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        for var in ["RMI_NS_HOST", "RMI_NS_PORT", "RMI_HMAC_KEY", "RMI_PYRO5"] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        command.spawn().unwrap()
    };
    let mut ns = spawn(binary("rmi-naming"), &["--port", "0", "--no-broadcast"], &env);
    let line = first_line(&mut ns, "URI = ").await;
    let port = line.rsplit(':').next().unwrap().to_owned();
    env.push(("RMI_NS_HOST", "127.0.0.1".to_owned()));
    env.push(("RMI_NS_PORT", port));
    let mut server = spawn(binary("tarpc_server"), &[], &env);
    let ready = first_line(&mut server, "Ready. ").await;
    assert!(ready.contains(NAME), "{ready}");
    let client = spawn(binary("tarpc_client"), &["Ruvika"], &env);
    let output = tokio::time::timeout(PATIENCE, client.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {stdout}", output.status);
    assert_eq!(stdout, "Hello, Ruvika! (tarpc over rmi)\n2 + 40 = 42\n");
    // A client without a certificate of the CA is refused by TLS.
    let plain: Vec<(&str, String)> =
        env.iter().filter(|(k, _)| !k.starts_with("RMI_TLS_CLIENT")).cloned().collect();
    let refused = spawn(binary("tarpc_client"), &[], &plain);
    let output = tokio::time::timeout(PATIENCE, refused.wait_with_output()).await.unwrap().unwrap();
    assert!(!output.status.success());
}
