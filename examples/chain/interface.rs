//! The chain's remote interface, shared by its servers and its client.

/// A link in the chain.
#[rmi::expose]
pub(crate) trait Chain {
    /// Passes `message` on along the chain, or closes it when this link's
    /// name is already in it; returns what each link said.
    async fn process(&self, message: Vec<String>) -> Result<Vec<String>, rmi::Error>;
}

/// The name the link `n` registers in the name server.
pub(crate) fn link_name(n: &str) -> String {
    format!("example.chainTopology.{n}")
}
