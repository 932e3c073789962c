//! [`Remote`]: a reference to an object, passed as a value.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use rmi_core::exports::note_export;
use rmi_core::object::Exposed;
use rmi_core::peer::{Forwarder, Import, LocalExport, LocalLink, current_scope};
use rmi_core::{Config, ObjectUri, Text};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::proxy::Proxy;

/// An interface a reference can name: what `#[rmi::expose]` generates a
/// proxy for. Every generated `<Type>Proxy` implements it, with the exposed
/// type's (or trait's) name; [`Proxy`] implements it for references of any
/// interface.
pub trait Interface: Sized + Send + Sync + 'static {
    /// The interface's name, as references carry it (`""`: any).
    const NAME: &'static str;

    /// The typed proxy over a dynamic one.
    fn from_proxy(proxy: Proxy) -> Self;

    /// The dynamic proxy underneath.
    fn as_proxy(&self) -> &Proxy;
}

impl Interface for Proxy {
    const NAME: &'static str = "";

    fn from_proxy(proxy: Proxy) -> Self {
        proxy
    }

    fn as_proxy(&self) -> &Proxy {
        self
    }
}

/// Says that an object implements the interface `P`, so that it may be
/// passed as a `Remote<P>`: `#[rmi::expose]` implements it for the exposed
/// type (and, for a trait, for `<Trait>Object<T>`); every exposed object
/// implements the untyped [`Proxy`]'s.
pub trait Implements<P: Interface>: Exposed {}

impl<O: Exposed> Implements<Proxy> for O {}

/// A reference to an object, passed as a value: an argument or a return
/// value of any exposed method, inside structs and `Vec`s too. `P` is the
/// interface, named by its generated proxy: `Remote<GreeterProxy>` (or
/// [`Proxy`] for an object of any interface).
///
/// - `Remote::new(object)` makes a reference to a local object. Sent in a
///   call or a reply, it is *exported* over that connection for as long as
///   the receiver holds it, and the receiver calls it back over the same
///   connection: a client that passes an object needs no daemon and no open
///   port of its own. A method that returns one is Pyro's autoproxy.
/// - A reference received is called with [`Remote::proxy`], which gives the
///   typed proxy. Dropping the last copy (and the proxies made from it)
///   releases it on the other side, within one round trip.
/// - `Remote::to(uri)` (or [`Remote::from_proxy`] of a proxy of a
///   registered object) names an object registered in a daemon: it travels
///   as its URI, and whoever receives it calls the daemon directly.
/// - A received reference passed on to a third party goes through the
///   process that passes it (the object behind a connection has no address
///   of its own).
///
/// The wire carries the interface's name, so a reference to the wrong
/// interface fails to decode with a clear error instead of making calls
/// the object does not have.
pub struct Remote<P> {
    target: Target,
    _interface: PhantomData<fn() -> P>,
}

#[derive(Clone)]
enum Target {
    /// A local object, exported when sent.
    Local(Arc<LocalExport>),
    /// An object the other end of a connection exported.
    Imported(Arc<Import>),
    /// An object registered in a daemon.
    Address { uri: ObjectUri, interface: String },
}

impl<P> Clone for Remote<P> {
    fn clone(&self) -> Self {
        Remote { target: self.target.clone(), _interface: PhantomData }
    }
}

impl<P> fmt::Debug for Remote<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Local(local) => f.debug_tuple("Remote::Local").field(local).finish(),
            Target::Imported(import) => f.debug_tuple("Remote::Imported").field(import).finish(),
            Target::Address { uri, interface } => f
                .debug_struct("Remote::Address")
                .field("uri", &uri.to_string())
                .field("interface", interface)
                .finish(),
        }
    }
}

impl<P: Interface> Remote<P> {
    /// A reference to `object`, in this process.
    pub fn new<O: Implements<P>>(object: O) -> Self {
        Self::from_arc(Arc::new(object))
    }

    /// A reference to `object`, already shared.
    pub fn from_arc<O: Implements<P>>(object: Arc<O>) -> Self {
        Self::local(object)
    }

    /// A reference to any local object, whatever its interface: what
    /// [`Remote<Proxy>`] takes.
    fn local(object: Arc<dyn Exposed>) -> Self {
        Remote { target: Target::Local(LocalExport::new(object)), _interface: PhantomData }
    }

    /// A reference to the object registered as `uri` in some daemon.
    pub fn to(uri: ObjectUri) -> Self {
        Remote { target: Target::Address { uri, interface: P::NAME.to_owned() }, _interface: PhantomData }
    }

    /// The reference a proxy stands for: its object's URI once it is known
    /// (a proxy of an `RMINAME:` that has not connected yet has none), or the
    /// reference it was made from.
    pub fn from_proxy(proxy: &P) -> Option<Self> {
        let proxy = proxy.as_proxy();
        if let Some(import) = proxy.import() {
            return Some(Remote { target: Target::Imported(import), _interface: PhantomData });
        }
        proxy.target().map(Self::to)
    }

    /// The interface the object has, as its home says.
    pub fn interface(&self) -> &str {
        match &self.target {
            Target::Local(local) => local.object().interface(),
            Target::Imported(import) => import.interface(),
            Target::Address { interface, .. } => interface,
        }
    }

    /// A typed proxy for the object. Calls go where the object lives: over
    /// the connection it came from, to its daemon, or (for a local one) to
    /// the object itself, through the same code a daemon calls it with. The
    /// proxy keeps the reference alive.
    pub fn proxy(&self) -> P {
        let proxy = match &self.target {
            Target::Local(local) => {
                Proxy::over(LocalLink::new(local.object().clone()), Text::from("local"), None)
            }
            Target::Imported(import) => {
                Proxy::over(import.link().clone(), Text::from(import.object_id()), Some(import.clone()))
            }
            Target::Address { uri, .. } => {
                let config = Config::from_env().unwrap_or_default();
                Proxy::builder_with_config(uri, &config).build().unwrap_or_else(|_| Proxy::unreachable(uri))
            }
        };
        P::from_proxy(proxy)
    }

    /// The same reference, untyped.
    pub fn untyped(self) -> Remote<Proxy> {
        Remote { target: self.target, _interface: PhantomData }
    }
}

impl Remote<Proxy> {
    /// A reference to any local object, whatever its interface.
    pub fn any(object: Arc<dyn Exposed>) -> Self {
        Self::local(object)
    }

    /// The same reference, typed: fails when the object's interface is not
    /// `P`.
    ///
    /// # Errors
    ///
    /// [`rmi_core::Error::Serialization`] naming both interfaces.
    pub fn typed<P: Interface>(self) -> Result<Remote<P>, rmi_core::Error> {
        check_interface::<P>(self.interface()).map_err(rmi_core::Error::Serialization)?;
        Ok(Remote { target: self.target, _interface: PhantomData })
    }
}

/// A serde `custom` error whose message rmi's codec reports.
fn custom<E: serde::de::Error>(message: impl std::fmt::Display) -> E {
    let message = message.to_string();
    rmi_core::blob::note_custom_error(&message);
    E::custom(message)
}

fn check_interface<P: Interface>(got: &str) -> Result<(), String> {
    if P::NAME.is_empty() || P::NAME == got {
        Ok(())
    } else {
        Err(format!("expected a reference to {}, got a reference to {got:?}", P::NAME))
    }
}

/// How a reference travels. `Export` is named from the sender's side: an
/// object it exported over this connection.
#[derive(Serialize, Deserialize)]
enum Wire {
    Export { id: u64, interface: Text },
    Address { uri: Text, interface: Text },
}

impl<P> Serialize for Remote<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const OUTSIDE: &str = "a reference travels only in an rmi call (an argument or a return value)";
        let wire = match &self.target {
            Target::Local(local) => {
                if !note_export(local.clone()) {
                    rmi_core::blob::note_custom_error(OUTSIDE);
                    return Err(S::Error::custom(OUTSIDE));
                }
                Wire::Export { id: local.id(), interface: Text::from(local.object().interface()) }
            }
            Target::Imported(import) => {
                // Passed on: this process stands in for the object.
                let forward = LocalExport::new(Arc::new(Forwarder::new(import.clone())));
                if !note_export(forward.clone()) {
                    rmi_core::blob::note_custom_error(OUTSIDE);
                    return Err(S::Error::custom(OUTSIDE));
                }
                Wire::Export { id: forward.id(), interface: Text::from(import.interface()) }
            }
            Target::Address { uri, interface } => {
                Wire::Address { uri: Text::from(uri.to_string()), interface: Text::from(interface.as_str()) }
            }
        };
        wire.serialize(serializer)
    }
}

impl<'de, P: Interface> Deserialize<'de> for Remote<P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let target = match Wire::deserialize(deserializer)? {
            Wire::Export { id, interface } => {
                check_interface::<P>(&interface).map_err(custom::<D::Error>)?;
                let scope = current_scope().ok_or_else(|| {
                    custom::<D::Error>("a reference is decoded only by rmi, off a connection")
                })?;
                let link =
                    scope.link().ok_or_else(|| custom::<D::Error>("the reference's connection closed"))?;
                Target::Imported(scope.peer().import(&link, id, &interface))
            }
            Wire::Address { uri, interface } => {
                check_interface::<P>(&interface).map_err(custom::<D::Error>)?;
                let uri: ObjectUri = uri.as_str().parse().map_err(custom::<D::Error>)?;
                Target::Address { uri, interface: interface.as_str().to_owned() }
            }
        };
        Ok(Remote { target, _interface: PhantomData })
    }
}
