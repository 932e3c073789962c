//! The time server: a plain TCP server (no rmi) that sends each client the
//! current date and time as text, then closes the connection, and logs who
//! connected.
//!
//! ```text
//! cargo run --example time_server [-- --bind 127.0.0.1:9999]   # terminal 1
//! cargo run --example time_client [-- 127.0.0.1:9999]          # terminal 2
//! ```
//!
//! It prints `Time server listening on <address>` first (with the real port
//! when bound to port 0), then `Got a connection from <peer>` for each
//! client. The time is UTC in `ctime` style (`Mon Nov 24 22:17:03 2025 UTC`),
//! computed from the system clock without a date crate. Stop it with Ctrl-C.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The seed's port.
const DEFAULT_ADDRESS: &str = "127.0.0.1:9999";

/// A plain TCP server (no rmi) that sends each client the current date and
/// time (UTC) as text, then closes the connection; it logs who connected.
/// Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "time_server")]
struct Cli {
    /// Where to listen, as host:port; port 0 picks a free one (the first line
    /// says which).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDRESS)]
    bind: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let address = cli.bind.as_str();
    let listener = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    println!("Time server listening on {}", listener.local_addr()?);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    println!("Got a connection from {peer}");
                    tokio::spawn(async move {
                        if let Err(e) = send_time(stream).await {
                            eprintln!("sending the time to {peer} failed: {e}");
                        }
                    });
                }
                Err(e) => {
                    // A connection reset before it was accepted, or out of
                    // file descriptors: the server keeps running.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

/// Sends the current time and closes the connection.
async fn send_time(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(now_text().as_bytes()).await?;
    stream.shutdown().await
}

/// The current time, UTC, as `Mon Nov 24 22:17:03 2025 UTC`.
fn now_text() -> String {
    // A clock before 1970 is a misconfigured machine: show the epoch.
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i64;
    let (hour, minute, second) = (seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!("{weekday} {month_name} {day:2} {hour:02}:{minute:02}:{second:02} {year} UTC")
}

/// The (year, month 1–12, day 1–31) of a day counted from 1970-01-01, in
/// the proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March is 0
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
