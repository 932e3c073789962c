//! How the small example servers (greeting, callback, autoproxy, stream)
//! serve their one object: bound where their command line says
//! (127.0.0.1:0 by default), registered with the name server when there is
//! one (with the daemon's lease), served until Ctrl-C, and removed from
//! the name server on the way out (or one lease TTL after being killed).
//!
//! Each server includes it with `#[path = "../common/serve.rs"] mod serve;`
//! and flattens [`Listen`] into its own clap arguments.

use rmi::{Daemon, DaemonError, ObjectUri};

/// Where a small server listens: its one positional argument.
#[derive(Debug, clap::Args)]
pub(crate) struct Listen {
    /// Where to listen, as host:port; port 0 picks a free one.
    #[arg(default_value = "127.0.0.1:0")]
    pub(crate) bind: String,
}

/// Binds a daemon at `bind`, lets `register` register the object as `name`
/// in it, names it in the name server too (if `rmi::locate_ns` finds one)
/// with the daemon's lease, prints its URI and serves until Ctrl-C.
///
/// The name follows the server's life: removed at once when it stops, and
/// one lease TTL (5 s) after it is killed.
///
/// # Errors
///
/// The bind address is bad or taken, the name server refused the name, or
/// the daemon stopped with an error.
pub(crate) async fn serve_named(
    bind: &str,
    name: &str,
    register: impl FnOnce(&Daemon) -> Result<ObjectUri, DaemonError>,
) -> anyhow::Result<()> {
    let ns = rmi::locate_ns(None).await;
    let mut builder = Daemon::builder()?;
    if let Ok(ns) = &ns {
        builder = builder.name_server(ns.clone());
    }
    let daemon = builder.bind(bind).await?;
    let uri = register(&daemon)?;
    match ns {
        Ok(ns) => {
            daemon.lease().await?.register(name, &uri).await?;
            println!("Registered {name} with the name server at {}", ns.uri());
        }
        Err(e) => println!("No name server ({e}); clients need the URI below"),
    }
    println!("Ready. Object uri = {uri}");
    serve_until_ctrl_c(&daemon).await
}

/// Serves until the daemon stops or Ctrl-C; on Ctrl-C, shuts it down and
/// waits for `serve`, which drains the calls in flight and removes the
/// daemon's names from the name server.
///
/// # Errors
///
/// What `serve` reported.
pub(crate) async fn serve_until_ctrl_c(daemon: &Daemon) -> anyhow::Result<()> {
    let serving = daemon.serve();
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served?,
        _ = tokio::signal::ctrl_c() => {
            daemon.shutdown();
            serving.await?;
        }
    }
    Ok(())
}
