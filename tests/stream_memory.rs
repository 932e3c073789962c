//! A slow consumer bounds a stream's producer to its window: credit is
//! granted by the consumer's reading, not by bytes arriving. Read from the
//! producer's own count and from the process's memory (/proc), so this
//! test has a process of its own.

mod common;
#[path = "common/numbers.rs"]
mod numbers;

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use numbers::{eventually, numbers};

/// The process's resident memory, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    let kib: usize = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB");
    kib * 1024
}

#[tokio::test]
async fn a_slow_consumer_bounds_the_producer_to_its_window() {
    let (_d, numbers, tally) = numbers().await;
    // A million lines of 1 KiB: a gigabyte if the producer ran free.
    let before = rss();
    let mut lines = numbers.lines(1_000_000).await.unwrap();
    let mut read = 0u64;
    let mut ahead_most = 0;
    for round in 0..5 {
        for _ in 0..200 {
            let line = lines.next().await.unwrap().unwrap();
            assert_eq!(line.len(), 1024);
            assert!(line.trim_start().starts_with(&read.to_string()), "{round}: {}", &line[..16]);
            read += 1;
        }
        // The consumer sleeps: the producer may run only its window ahead.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ahead = tally.produced.load(Ordering::SeqCst) - read;
        ahead_most = ahead_most.max(ahead);
        // 1 MiB of window in lines of ~1 KiB (as their chunks count them),
        // one chunk being gathered, and one the consumer holds.
        assert!(ahead <= 1024 + 2 * 64 + 64, "round {round}: the producer ran {ahead} lines ahead");
        // Other calls on the connection go on while the stream waits.
        assert_eq!(numbers.add(read, 1).await.unwrap(), read + 1);
    }
    let grown = rss().saturating_sub(before);
    println!("read {read} lines; the producer ran at most {ahead_most} ahead; RSS grew {} KiB", grown / 1024);
    assert!(ahead_most > 500, "the window is used ({ahead_most})");
    assert!(grown < 24 << 20, "memory grew by {grown} bytes");
    drop(lines);
    eventually("the producer dropped", || tally.dropped()).await;
}
