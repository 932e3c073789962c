//! Names that follow the daemon's life: objects registered in the name
//! server with the daemon's lease, which the daemon keeps alive while it
//! runs and revokes when it shuts down.

use std::time::Duration;

use rmi_core::ObjectUri;
use rmi_core::object::Exposed;
use rmi_proxy::{Lease, NameServerProxy};

use crate::{Daemon, DaemonError};

impl Daemon {
    /// Registers `object` (with a generated id) and names it `name` in the
    /// name server, for as long as the daemon lives: the name is kept with
    /// the daemon's lease ([`Daemon::lease`]), removed at once when the
    /// daemon shuts down, and one lease TTL (5 s unless
    /// [`DaemonBuilder::lease_ttl`](crate::DaemonBuilder::lease_ttl) says
    /// otherwise) after it dies, freezes or loses the network.
    ///
    /// ```no_run
    /// # async fn demo(greeter: impl rmi_core::object::Exposed) -> Result<(), rmi_daemon::DaemonError> {
    /// let daemon = rmi_daemon::Daemon::bind("127.0.0.1:0").await?;
    /// daemon.register_named(greeter, "example.greeting").await?;
    /// daemon.serve().await // on shutdown, example.greeting is removed
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Daemon::register`]; [`DaemonError::Naming`] when no name server
    /// answers or it refuses the name (the object is then unregistered).
    pub async fn register_named<O: Exposed>(&self, object: O, name: &str) -> Result<ObjectUri, DaemonError> {
        self.register_named_with(object, name, Vec::<String>::new()).await
    }

    /// As [`Daemon::register_named`], with metadata `tags` for
    /// yellow-pages lookups (`RMIMETA:`).
    ///
    /// # Errors
    ///
    /// As [`Daemon::register_named`].
    pub async fn register_named_with<O: Exposed, T: Into<String>>(
        &self,
        object: O,
        name: &str,
        tags: impl IntoIterator<Item = T>,
    ) -> Result<ObjectUri, DaemonError> {
        let naming = |source| DaemonError::Naming { name: name.to_owned(), source };
        rmi_proxy::check_name(name).map_err(|e| naming(rmi_core::Error::Protocol(e.to_string())))?;
        let uri = self.register(object, None)?;
        let registered = async {
            let lease = self.lease().await?;
            lease.register_with(name, &uri, tags).await
        };
        if let Err(e) = registered.await {
            self.unregister(&uri.object);
            return Err(naming(e));
        }
        Ok(uri)
    }

    /// The daemon's lease with the name server, granted on first use: the
    /// names registered through it ([`Daemon::register_named`], or
    /// [`Lease::register`](rmi_proxy::Lease::register) for objects of other daemons) live while the
    /// daemon does.
    ///
    /// # Errors
    ///
    /// Any [`rmi_core::Error`] of finding the name server or of the grant.
    pub async fn lease(&self) -> Result<&Lease, rmi_core::Error> {
        let options = &self.inner.options;
        self.inner
            .lease
            .get_or_try_init(|| async {
                let ns = match &options.name_server {
                    Some(ns) => ns.clone(),
                    None => rmi_proxy::locate_ns_with(&options.config, None).await?,
                };
                Lease::grant(&ns, options.lease_ttl).await
            })
            .await
    }

    /// The name server the daemon's names are in, once it has a lease.
    pub fn lease_name_server(&self) -> Option<&NameServerProxy> {
        self.inner.lease.get().map(Lease::name_server)
    }

    /// Ends the daemon's lease, removing its names (on shutdown).
    pub(crate) async fn revoke_lease(&self, within: Duration) {
        let Some(lease) = self.inner.lease.get() else { return };
        match tokio::time::timeout(within, lease.revoke()).await {
            Ok(Ok(n)) => tracing::info!("{n} names removed from the name server"),
            Ok(Err(e)) => {
                tracing::warn!("cannot remove the daemon's names ({e}): they go when the lease ends")
            }
            Err(_) => tracing::warn!(
                "the name server did not answer in {within:?}: the names go when the lease ends"
            ),
        }
    }
}
