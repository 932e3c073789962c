//! The autoproxy example's remote interfaces: a factory that hands out
//! objects by reference.

use rmi::Remote;

/// An object made for one client.
#[rmi::expose]
pub(crate) trait Thingy {
    /// Its name.
    fn name(&self) -> String;
    /// Its value.
    fn value(&self) -> i64;
    /// Sets its value.
    fn set_value(&self, value: i64);
}

/// Makes thingies.
#[rmi::expose]
pub(crate) trait Factory {
    /// A new thingy, returned by reference (Pyro's autoproxy): it lives in
    /// the server, for as long as the client holds it.
    fn create(&self, name: String) -> Remote<ThingyProxy>;
    /// How many thingies are alive in the server.
    fn alive(&self) -> u64;
}
