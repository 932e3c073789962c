//! What every benchmark process shares, rmi-bench's and the tonic
//! baseline's (benches/grpc includes this file): the flags they take and
//! the runtime `--threads` asks for.

use anyhow::Context;

/// The value after `--name` in `args`, if any.
pub(crate) fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// The runtime `--threads` asks for: 1, a current-thread runtime; 0,
/// tokio's default multi-thread one (one worker per core, as
/// `#[tokio::main]` makes it); N, a multi-thread one with N workers.
pub(crate) fn runtime(args: &[String]) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads: usize = flag(args, "--threads").unwrap_or("1").parse().context("--threads")?;
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    Ok(builder.enable_all().build()?)
}
