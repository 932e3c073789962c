//! The callback server: runs long jobs and calls each client back with its
//! progress, over the connection the client opened (the client has no
//! daemon and no open port).
//!
//! ```text
//! cargo run -p rmi-naming                                    # terminal 1 (optional)
//! cargo run --example callback_server [-- <bind-address>]    # terminal 2; default 127.0.0.1:0
//! cargo run --example callback_client [-- <URI>]             # terminal 3
//! ```
//!
//! With a name server it registers `example.callback`; without one,
//! `callback_client -- <URI>` takes the URI it prints.

#[allow(dead_code)] // the server implements Jobs; Progress is the client's
mod interface;
#[path = "../common/serve.rs"]
mod serve;

use std::time::Duration;

use clap::Parser;
use interface::{Jobs, JobsObject, ProgressProxy};
use rmi::Remote;

/// The name clients look up.
const NAME: &str = "example.callback";

/// Runs the jobs.
struct Worker;

impl Jobs for Worker {
    async fn run(&self, steps: u32, progress: Remote<ProgressProxy>) -> Result<String, String> {
        let progress = progress.proxy();
        let steps = steps.clamp(1, 100);
        for step in 1..=steps {
            // The work itself.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let note = format!("step {step} of {steps}");
            progress.report(step * 100 / steps, note).await.map_err(|e| e.to_string())?;
        }
        println!("Finished a job of {steps} steps");
        Ok(format!("{steps} steps done"))
    }
}

/// Runs long jobs and calls each client back with its progress, over the
/// connection the client opened. Registers example.callback with the name
/// server when there is one. Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "callback_server")]
struct Cli {
    #[command(flatten)]
    listen: serve::Listen,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    serve::serve_named(&cli.listen.bind, NAME, |daemon| daemon.register(JobsObject(Worker), Some(NAME))).await
}
