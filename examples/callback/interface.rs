//! The callback example's remote interfaces, shared by the server and the
//! client: the server runs jobs, the client hears their progress.

use rmi::Remote;

/// What a client hears of a job it started.
#[rmi::expose]
pub(crate) trait Progress {
    /// `percent` of the job is done; `note` says what.
    async fn report(&self, percent: u32, note: String);
}

/// Runs long jobs, reporting to the caller's object as they go.
#[rmi::expose]
pub(crate) trait Jobs {
    /// Runs a job of `steps` steps, calling `progress` back after each;
    /// returns a summary.
    async fn run(&self, steps: u32, progress: Remote<ProgressProxy>) -> Result<String, String>;
}
