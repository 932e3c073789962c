//! The stream example's remote interface, shared by the server and the
//! client: the server implements the trait, the client uses the
//! `LinesProxy` that `#[rmi::expose]` generates, whose `lines` returns an
//! `rmi::Streaming<String>`.

/// The source every stream server offers: a generated sequence of primes,
/// so that the example runs with no file at hand.
pub(crate) const PRIMES: &str = "primes";

/// Streams lines of text.
#[rmi::expose]
pub(crate) trait Lines {
    /// The lines of `source`, one item each, as the server makes them:
    /// [`PRIMES`], or the name of a file the server offers. An unknown
    /// source is the stream's first (and only) outcome, an error.
    fn lines(&self, source: String) -> rmi::Stream<String>;
}
