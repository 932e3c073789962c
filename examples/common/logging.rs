//! Logging for the examples that show a call's path: `RUST_LOG=rmi=debug`
//! prints each call's spans (the client's `rmi.call`, each server's
//! `rmi.serve`, with the correlation id) on stderr; warnings only without
//! it.
//!
//! Included with `#[path = "../common/logging.rs"] mod logging;`.

/// Logs to stderr as `RUST_LOG` says (default: warnings).
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
