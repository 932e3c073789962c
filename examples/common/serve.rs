//! How the small example servers (greeting, callback, autoproxy, stream)
//! serve their one object: bound where their command line says
//! (127.0.0.1:0 by default), registered with the name server when there is
//! one, served until Ctrl-C, and removed from the name server on the way
//! out.
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
/// in it, registers it with the name server too (if `rmi::locate_ns` finds
/// one), prints its URI and serves until Ctrl-C.
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
    let daemon = Daemon::bind(bind).await?;
    let uri = register(&daemon)?;
    let ns = match rmi::locate_ns(None).await {
        Ok(ns) => {
            ns.register(name, &uri).await?;
            println!("Registered {name} with the name server at {}", ns.uri());
            Some(ns)
        }
        Err(e) => {
            println!("No name server ({e}); clients need the URI below");
            None
        }
    };
    println!("Ready. Object uri = {uri}");
    tokio::select! {
        served = daemon.serve() => served?,
        _ = tokio::signal::ctrl_c() => daemon.shutdown(),
    }
    if let Some(ns) = ns {
        let _ = ns.remove(name).await;
    }
    Ok(())
}
