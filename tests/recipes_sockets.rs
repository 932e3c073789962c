//! The socket recipes as real processes on loopback: the time server and
//! client, and the file transfer (an empty file, 100 MiB, several clients at
//! once, a client that leaves mid-transfer).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{OutputLog, PATIENCE, spawn_example};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts a server example and returns it, its output, and the address it
/// printed on its first line (`… listening on <address>`).
async fn start_server(name: &str, args: &[&str]) -> (common::Child, OutputLog, String) {
    let mut server = spawn_example(name, args, &[]);
    let log = OutputLog::start(&mut server);
    let first = log.wait_for(|l| l.contains(" listening on ")).await;
    let address = first.rsplit(' ').next().unwrap().to_owned();
    assert!(address.starts_with("127.0.0.1:") && !address.ends_with(":0"), "{first}");
    (server, log, address)
}

/// Seconds since 1970 of a `ctime`-style UTC time, `Mon Nov 24 22:17:03 2025 UTC`,
/// checking the weekday too.
fn parse_ctime_utc(text: &str) -> u64 {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [weekday, month, day, hms, year, "UTC"] = parts[..] else { panic!("not a ctime UTC time: {text:?}") };
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month).unwrap() as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().unwrap(), year.parse().unwrap());
    let hms: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // days_from_civil (Howard Hinnant), independent of the example's inverse.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    assert_eq!(weekday, weekdays[days.rem_euclid(7) as usize], "weekday of {text:?}");
    (days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) as u64
}

#[tokio::test]
async fn the_time_server_sends_the_time_and_logs_each_client() {
    let (_server, log, address) = start_server("time_server", &["--bind", "127.0.0.1:0"]).await;
    for _ in 0..3 {
        let (status, out) = spawn_example("time_client", &[&address], &[]).output().await;
        assert!(status.success(), "{status}: {out}");
        let time = out.strip_prefix("Time connection server:").and_then(|t| t.strip_suffix('\n'));
        let time = time.unwrap_or_else(|| panic!("unexpected output {out:?}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let sent = parse_ctime_utc(time);
        assert!(sent.abs_diff(now) <= 120, "the server says {time:?}, {sent} s; the clock says {now} s");
    }
    log.wait_for_count(3, |l| l.starts_with("Got a connection from 127.0.0.1:")).await;
}

#[test]
fn the_ctime_parser_agrees_with_known_dates() {
    assert_eq!(parse_ctime_utc("Thu Jan  1 00:00:00 1970 UTC"), 0);
    assert_eq!(parse_ctime_utc("Sat Feb 29 12:00:00 2020 UTC"), 1_582_977_600);
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` bytes that are not all alike: a xorshift stream, 64 bits at a time.
fn test_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Whether two files hold the same bytes, compared a chunk at a time.
fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut x, mut y) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// Runs `file_client` against `address` into `out`; returns its one line.
async fn download(address: &str, out: &Path) -> String {
    let out_arg = out.to_str().unwrap();
    let (status, stdout) =
        spawn_example("file_client", &["--connect", address, "--out", out_arg], &[]).output().await;
    assert!(status.success(), "{status}: {stdout}");
    stdout
}

#[tokio::test]
async fn an_empty_file_arrives_empty_with_the_empty_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (dir.path().join("empty.bin"), dir.path().join("received.txt"));
    std::fs::write(&file, b"").unwrap();
    let (_server, log, address) =
        start_server("file_server", &[file.to_str().unwrap(), "--bind", "127.0.0.1:0"]).await;
    let empty = sha256_hex(b"");
    assert_eq!(empty, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let said = download(&address, &out).await;
    assert_eq!(said, format!("Received {}: 0 bytes, SHA-256 {empty}\n", out.display()));
    assert_eq!(std::fs::read(&out).unwrap(), b"");
    assert!(!dir.path().join("received.txt.part").exists());
    log.wait_for(|l| l.starts_with("Sent ") && l.ends_with(&format!(": 0 bytes, SHA-256 {empty}"))).await;
}

#[tokio::test]
async fn several_clients_download_at_once_while_another_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.bin");
    let bytes = test_bytes(3 * 1024 * 1024 + 123);
    std::fs::File::create(&file).unwrap().write_all(&bytes).unwrap();
    let digest = sha256_hex(&bytes);
    let (_server, log, address) =
        start_server("file_server", &[file.to_str().unwrap(), "--bind", "127.0.0.1:0"]).await;
    // A connection that never greets: the server waits for it on its own
    // task, and serves the others meanwhile.
    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    log.wait_for(|l| l.starts_with("Got a connection")).await;

    let downloads: Vec<_> = (0..3)
        .map(|i| {
            let (address, out) = (address.clone(), dir.path().join(format!("received-{i}.bin")));
            tokio::spawn(async move { (download(&address, &out).await, out) })
        })
        .collect();
    for d in downloads {
        let (said, out) = tokio::time::timeout(PATIENCE, d).await.unwrap().unwrap();
        assert_eq!(said, format!("Received {}: {} bytes, SHA-256 {digest}\n", out.display(), bytes.len()));
        assert!(std::fs::read(&out).unwrap() == bytes, "{} differs from what was sent", out.display());
    }
    let sent = format!(": {} bytes, SHA-256 {digest}", bytes.len());
    log.wait_for_count(3, |l| l.starts_with("Sent ") && l.ends_with(&sent)).await;
    assert_eq!(log.lines().iter().filter(|l| l.starts_with("Got a connection")).count(), 4);
    drop(silent);
}

#[tokio::test]
async fn a_100_mib_file_arrives_whole_after_a_client_left_mid_transfer() {
    const SIZE: usize = 100 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (file, out) = (dir.path().join("big.bin"), dir.path().join("big-received.bin"));
    {
        // 100 MiB: a 1 MiB pattern, each copy stamped with its number.
        let block = test_bytes(1 << 20);
        let mut writer = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..(SIZE >> 20) as u32 {
            writer.write_all(&i.to_le_bytes()).unwrap();
            writer.write_all(&block[4..]).unwrap();
        }
        writer.flush().unwrap();
    }
    let (_server, log, address) =
        start_server("file_server", &[file.to_str().unwrap(), "--bind", "127.0.0.1:0"]).await;

    // A client that reads the header and 1 MiB, then goes away: far more is
    // left than socket buffers hold, so the server is mid-transfer.
    let mut leaver = tokio::net::TcpStream::connect(&address).await.unwrap();
    let leaver_address = leaver.local_addr().unwrap().to_string();
    leaver.write_all(b"HelloServer!").await.unwrap();
    let mut header = [0; 8];
    leaver.read_exact(&mut header).await.unwrap();
    assert_eq!(u64::from_be_bytes(header), SIZE as u64);
    let mut some = vec![0; 1 << 20];
    leaver.read_exact(&mut some).await.unwrap();
    drop(leaver);

    let said = download(&address, &out).await;
    let prefix = format!("Received {}: {SIZE} bytes, SHA-256 ", out.display());
    let digest = said.strip_prefix(&prefix).and_then(|d| d.strip_suffix('\n'));
    let digest = digest.unwrap_or_else(|| panic!("unexpected output {said:?}"));
    assert_eq!(digest.len(), 64);
    assert!(same_contents(&file, &out), "the received file differs from the original");
    // The server sent the same digest that the client checked.
    let sent = log.wait_for(|l| l.starts_with("Sent ") && !l.contains(&leaver_address)).await;
    assert!(sent.ends_with(&format!(": {SIZE} bytes, SHA-256 {digest}")), "{sent}");
    assert!(
        !log.lines().iter().any(|l| l.starts_with("Sent ") && l.contains(&leaver_address)),
        "the client that left cannot have received the whole file"
    );
}
