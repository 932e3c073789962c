//! Futures with completion callbacks: two coroutines each fill a future,
//! the first with the sum 1 + 2 + … + N1, the second with N2!; a callback
//! attached to each future prints its result as soon as it is set.
//!
//! ```text
//! cargo run --example future_callbacks -- 5 5
//! First coroutine (sum of N integers) result = 15
//! Second coroutine (factorial) result = 120
//! cargo run --example future_callbacks -- 50 50 --sum-step 0 --factorial-step 0
//! First coroutine (sum of N integers) result = 1275
//! Second coroutine (factorial) result = 30414093201713378043612608166064768844377641568960512000000000000
//! ```
//!
//! Each step of the sum sleeps `--sum-step` seconds (1, as the seed), each
//! step of the factorial `--factorial-step` (2), so which line comes first
//! depends on N1, N2 and the steps. asyncio's `Future` with
//! `add_done_callback` becomes a `tokio::sync::oneshot` channel, whose
//! receiving end a task awaits before it calls the callback. N! is exact
//! for any N: [`Natural`] is a small big-integer type that multiplies by a
//! machine word, which is all a factorial needs.

#[path = "../common/seconds.rs"]
mod seconds;

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::oneshot;

/// Two coroutines fill two futures, one with 1 + 2 + … + N1, the other with
/// N2! (exact, however large); a callback on each prints its result as soon
/// as it is set.
#[derive(Debug, Parser)]
#[command(
    name = "future_callbacks",
    after_help = "Example: future_callbacks 50 50 --sum-step 0 --factorial-step 0"
)]
struct Cli {
    /// Sum the integers 1 to N1.
    #[arg(value_name = "N1")]
    n1: u32,

    /// Compute N2!.
    #[arg(value_name = "N2")]
    n2: u32,

    /// The sleep after each step of the sum, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "1")]
    sum_step: Duration,

    /// The sleep after each step of the factorial, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = seconds::parse, default_value = "2")]
    factorial_step: Duration,
}

/// A natural number of any size, in base 10⁹ digits, least significant
/// first: printing it in decimal is then just printing the digits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Natural {
    digits: Vec<u32>,
}

impl Natural {
    /// The base of a digit.
    const BASE: u64 = 1_000_000_000;

    /// The number `n`.
    fn from_u32(n: u32) -> Self {
        let n = u64::from(n);
        let mut digits = vec![(n % Self::BASE) as u32];
        if n >= Self::BASE {
            digits.push((n / Self::BASE) as u32);
        }
        Natural { digits }
    }

    /// Multiplies in place by `factor`: schoolbook multiplication by one
    /// word, carrying from the low digits up.
    fn mul_u32(&mut self, factor: u32) {
        let mut carry = 0u64;
        for digit in &mut self.digits {
            // At most (10⁹ - 1)(2³² - 1) + carry < 2⁶⁴: no overflow.
            let product = u64::from(*digit) * u64::from(factor) + carry;
            *digit = (product % Self::BASE) as u32;
            carry = product / Self::BASE;
        }
        while carry > 0 {
            self.digits.push((carry % Self::BASE) as u32);
            carry /= Self::BASE;
        }
        if factor == 0 {
            self.digits = vec![0];
        }
    }
}

impl fmt::Display for Natural {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = self.digits.iter().rev();
        // The most significant digit without padding, the others with nine.
        if let Some(first) = digits.next() {
            write!(f, "{first}")?;
        }
        for digit in digits {
            write!(f, "{digit:09}")?;
        }
        Ok(())
    }
}

/// Sums 1..=n, a step at a time, and sets the future.
async fn first_coroutine(future: oneshot::Sender<u128>, n: u32, step: Duration) {
    let mut count = 0u128;
    for i in 1..=n {
        count += u128::from(i);
        pause(step).await;
    }
    // Nobody waits any more if the receiver is gone: nothing to do then.
    let _ = future.send(count);
}

/// Computes n!, a step at a time, and sets the future.
async fn second_coroutine(future: oneshot::Sender<Natural>, n: u32, step: Duration) {
    let mut count = Natural::from_u32(1);
    for i in 2..=n {
        count.mul_u32(i);
        pause(step).await;
    }
    let _ = future.send(count);
}

/// Sleeps `step`; for a zero step, only lets the other tasks run (a
/// zero-length sleep would still wait for the timer's next millisecond tick).
async fn pause(step: Duration) {
    if step.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(step).await;
    }
}

/// Runs `callback` with the future's value once it is set: asyncio's
/// `add_done_callback`. The returned task ends after the callback.
fn add_done_callback<T: Send + 'static>(
    future: oneshot::Receiver<T>,
    callback: impl FnOnce(T) + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let value = future.await.context("the future was dropped without a result")?;
        callback(value);
        Ok(())
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Cli { n1, n2, sum_step, factorial_step } = Cli::parse();

    let (sum, sum_future) = oneshot::channel();
    let (factorial, factorial_future) = oneshot::channel();
    let callbacks = [
        add_done_callback(sum_future, |sum| println!("First coroutine (sum of N integers) result = {sum}")),
        add_done_callback(factorial_future, |f| println!("Second coroutine (factorial) result = {f}")),
    ];
    tokio::spawn(first_coroutine(sum, n1, sum_step));
    tokio::spawn(second_coroutine(factorial, n2, factorial_step));
    for callback in callbacks {
        callback.await.context("a callback task failed")??;
    }
    Ok(())
}
