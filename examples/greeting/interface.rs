//! The greeting's remote interface, shared by the server and the client (the
//! role of a Java RMI remote interface): the server implements the trait,
//! the client uses the `GreetingProxy` that `#[rmi::expose]` generates.

/// Makes greetings.
#[rmi::expose]
pub(crate) trait Greeting {
    /// The welcome message for `name`.
    fn welcome_message(&self, name: String) -> String;
}
