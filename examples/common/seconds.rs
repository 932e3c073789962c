//! The value parser the examples' clap flags use for durations: a number of
//! seconds, whole or not (`1`, `0.25`).
//!
//! Each example that takes durations includes it with
//! `#[path = "../common/seconds.rs"] mod seconds;` and writes
//! `#[arg(long, value_parser = seconds::parse, default_value = "1")]`.

use std::time::Duration;

/// Parses a non-negative number of seconds.
///
/// # Errors
///
/// The text is not a number, or is negative, or too large for a
/// [`Duration`]; clap shows the message with the flag's name and the usage.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}
