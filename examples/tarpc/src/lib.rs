//! A tarpc service carried by rmi: `World`, served by `tarpc_server` on an rmi
//! daemon (behind its key and TLS, from the `RMI_*` variables) and registered
//! in `rmi-naming` as `example.tarpc.world`; `tarpc_client` finds it by
//! `RMINAME:` and calls it with tarpc's own generated client.

use futures::StreamExt;
use tarpc::server::Channel;

/// The name the service is registered under.
pub const NAME: &str = "example.tarpc.world";

/// A plain tarpc service, as tarpc's documentation writes one.
#[tarpc::service]
pub trait World {
    /// A greeting for `name`.
    async fn hello(name: String) -> String;
    /// `a + b`.
    async fn add(a: i64, b: i64) -> i64;
}

/// The service's implementation.
#[derive(Clone, Debug)]
pub struct HelloServer;

impl World for HelloServer {
    async fn hello(self, _: tarpc::context::Context, name: String) -> String {
        format!("Hello, {name}! (tarpc over rmi)")
    }

    async fn add(self, _: tarpc::context::Context, a: i64, b: i64) -> i64 {
        a + b
    }
}

/// Serves `World` as [`NAME`] on `daemon`; the URI to register.
///
/// # Errors
///
/// As [`rmi::Daemon::register_channel`].
pub fn serve_world(daemon: &rmi::Daemon) -> Result<rmi::ObjectUri, rmi::DaemonError> {
    rmi_tarpc::serve(daemon, NAME, |transport| {
        let requests = tarpc::server::BaseChannel::with_defaults(transport).execute(HelloServer.serve());
        tokio::spawn(requests.for_each(|response| async move {
            tokio::spawn(response);
        }));
    })
}
