//! Turning a URI into the location of an object.

use rmi_core::{Error, ObjectUri, Uri};

use crate::proxy::Options;

/// Where the object `uri` names lives. `RMI:` URIs name it directly;
/// `RMINAME:` and `RMIMETA:` are looked up in the name server.
pub(crate) async fn resolve(uri: &Uri, _options: &Options) -> Result<ObjectUri, Error> {
    match uri {
        Uri::Object(object) => Ok(object.clone()),
        Uri::Name(_) | Uri::Meta(_) => {
            Err(Error::Protocol(format!("{uri} needs the name server, which this build cannot reach yet")))
        }
    }
}
