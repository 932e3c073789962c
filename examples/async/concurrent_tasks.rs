//! Tasks running concurrently: `factorial(10)`, `fibonacci(10)` and
//! `binomial_coefficient(20, 10)` as three tokio tasks on one thread. Each
//! step prints a progress line and then sleeps, so the others run
//! meanwhile and the lines interleave; each task ends with its result.
//!
//! ```text
//! cargo run --example concurrent_tasks [-- --step 1]
//! Task: Compute factorial(2)
//! Task: Compute fibonacci(0)
//! Task: Compute binomial_coefficient(1)
//! Task: Compute factorial(3)
//! …
//! factorial(10) = 3628800
//! fibonacci(10) = 55
//! binomial_coefficient(20, 10) = 184756
//! ```
//!
//! `--step` is the sleep after each step, in seconds (1, as the seed). The
//! runtime has one thread (`current_thread`): the tasks take turns at their
//! `await`s, as asyncio's do. The binomial coefficient is computed in
//! integers, C(n, i) = C(n, i - 1) · (n - i + 1) / i, which divides exactly
//! at each step (the seed divides floats and prints `184756.0`).

#[path = "../common/seconds.rs"]
mod seconds;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// Runs factorial(10), fibonacci(10) and binomial_coefficient(20, 10) as
/// three tasks on one thread; each step prints a line and sleeps, so the
/// lines interleave.
#[derive(Debug, Parser)]
#[command(name = "concurrent_tasks")]
struct Cli {
    /// The sleep after each step, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "1")]
    step: Duration,
}

/// n!, one step per factor.
async fn factorial(n: u64, step: Duration) -> u64 {
    let mut f = 1u64;
    for i in 2..=n {
        println!("Task: Compute factorial({i})");
        tokio::time::sleep(step).await;
        f *= i;
    }
    println!("factorial({n}) = {f}");
    f
}

/// The n-th Fibonacci number, one step per term.
async fn fibonacci(n: u64, step: Duration) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for i in 0..n {
        println!("Task: Compute fibonacci({i})");
        tokio::time::sleep(step).await;
        (a, b) = (b, a + b);
    }
    println!("fibonacci({n}) = {a}");
    a
}

/// C(n, k), one step per factor.
async fn binomial_coefficient(n: u64, k: u64, step: Duration) -> u64 {
    let mut result = 1u64;
    for i in 1..=k {
        // C(n, i) from C(n, i - 1): the division is exact.
        result = result * (n - i + 1) / i;
        println!("Task: Compute binomial_coefficient({i})");
        tokio::time::sleep(step).await;
    }
    println!("binomial_coefficient({n}, {k}) = {result}");
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Cli { step } = Cli::parse();
    let tasks = [
        tokio::spawn(factorial(10, step)),
        tokio::spawn(fibonacci(10, step)),
        tokio::spawn(binomial_coefficient(20, 10, step)),
    ];
    for task in tasks {
        task.await.context("a task failed")?;
    }
    Ok(())
}
