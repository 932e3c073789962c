//! Turning a URI into the location of an object: `RMI:` URIs name it;
//! `RMINAME:` and `RMIMETA:` are looked up in the name server they name, or
//! the one `locate_ns` finds.

use rmi_core::{Error, HostPort, ObjectUri, RemoteError, RemoteErrorKind, Uri};

use crate::naming::{self, MetaMatch, NameServerProxy, PYRO5_TAG};
use crate::proxy::Options;

/// Resolving a name calls the name server through a proxy, which may itself
/// resolve: the future is boxed to break the cycle.
pub(crate) fn resolve<'a>(
    uri: &'a Uri,
    options: &'a Options,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resolved, Error>> + Send + 'a>> {
    Box::pin(resolve_now(uri, options))
}

/// Where a URI points, and whether the object there speaks Pyro5 (a Python
/// daemon's, registered with [`PYRO5_TAG`]).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) uri: ObjectUri,
    pub(crate) pyro5: bool,
}

impl Resolved {
    fn of(registration: crate::naming::Registration) -> Self {
        let pyro5 = registration.metadata.contains(PYRO5_TAG);
        Resolved { uri: registration.uri, pyro5 }
    }
}

async fn resolve_now(uri: &Uri, options: &Options) -> Result<Resolved, Error> {
    match uri {
        Uri::Object(object) => Ok(Resolved { uri: object.clone(), pyro5: false }),
        // Called through Pyro5 (see `crate::pyro5`), never resolved here.
        Uri::Pyro5(object) => Err(Error::Protocol(format!(
            "{uri} names a Pyro5 daemon's object: it is called with Proxy::call, not through an rmi connection ({object})"
        ))),
        Uri::Name(name) => {
            let ns = name_server(&name.name_servers, options).await?;
            ns.lookup_registration(&name.name).await.map(Resolved::of).map_err(|e| not_found(uri, &ns, e))
        }
        Uri::Meta(meta) => {
            let ns = name_server(&meta.name_servers, options).await?;
            let found = ns
                .yplookup(meta.tags.iter().cloned(), MetaMatch::All)
                .await
                .map_err(|e| not_found(uri, &ns, e))?;
            // Any of them will do; a random pick spreads the load, as Pyro does.
            let pick = random_index(found.len());
            found.into_iter().nth(pick).map(Resolved::of).ok_or_else(|| {
                Error::ObjectNotFound(RemoteError::new(
                    RemoteErrorKind::ObjectNotFound,
                    format!("{uri}: no object in the name server at {} has all of these tags", ns.uri()),
                ))
            })
        }
    }
}

async fn name_server(at: &[HostPort], options: &Options) -> Result<NameServerProxy, Error> {
    if at.is_empty() {
        naming::locate(&options.config, options, None).await
    } else {
        Ok(naming::listed(at, options))
    }
}

/// A name the name server does not know is, to the caller, an object that is
/// not there.
fn not_found(uri: &Uri, ns: &NameServerProxy, e: Error) -> Error {
    match e {
        Error::Remote(remote) if remote.kind() == RemoteErrorKind::Application => {
            Error::ObjectNotFound(RemoteError::new(
                RemoteErrorKind::ObjectNotFound,
                format!("{uri}: {} (name server {})", remote.message(), ns.uri()),
            ))
        }
        other => other,
    }
}

fn random_index(len: usize) -> usize {
    let mut bytes = [0u8; 8];
    if len == 0 || getrandom::fill(&mut bytes).is_err() {
        return 0;
    }
    (u64::from_le_bytes(bytes) % len as u64) as usize
}
