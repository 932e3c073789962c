//! The stream server: hosts an object whose `lines(source)` streams lines
//! of text to its caller as they are made, and registers it with the name
//! server as `example.stream`.
//!
//! ```text
//! rmi-naming                                                # terminal 1 (cargo run -p rmi-naming)
//! cargo run --example stream_server [-- <bind-address>] [--file <path>]…   # terminal 2
//! cargo run --example stream_client -- --take 5             # terminal 3
//! ```
//!
//! It offers the source `primes`, the first `--primes` primes (1,000,000)
//! as lines `Prime 1: 2`, `Prime 2: 3`, …, and the lines of each `--file`
//! given, by its file name (`--file /var/log/syslog` offers `syslog`):
//! clients name a source, never a path, so they read only what the server
//! was told to offer.
//!
//! The two show two ways to make an `rmi::Stream`: the primes come from
//! `rmi::Stream::iter`, an iterator that never blocks (a prime takes
//! microseconds), polled on the runtime; a file's lines from
//! `rmi::Stream::blocking`, an iterator that may block on the disk, which
//! runs on tokio's blocking pool. Either way the items go out under
//! credit-based flow control: the producer runs at most a window (1 MiB of
//! items) ahead of what the client has read, so a slow client slows it down
//! and a client that stops reading stops it.
//!
//! When a client drops its stream before the end (`--take`, Ctrl-C, or it
//! dies), rmi drops the producer here within a round trip; its `Drop` says
//! so: `Stopped after <n> lines: the client went away`, where `<n>` counts
//! the lines made, up to a window ahead of those the client printed. A
//! stream that runs to its end says `Sent all <n> lines of <source>`.

mod interface;
#[path = "../common/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use interface::{Lines, LinesObject, PRIMES};

/// The name clients look up.
const NAME: &str = "example.stream";

/// How many primes the source `primes` has, unless told.
const DEFAULT_PRIMES: u64 = 1_000_000;

/// Streams lines of text to its clients as they are made: the generated
/// source "primes", and the lines of each --file, by its file name.
/// Registers example.stream with the name server when there is one (without
/// one, clients need the URI it prints). Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "stream_server", after_help = "Example: stream_server --file /usr/share/dict/words")]
struct Cli {
    #[command(flatten)]
    listen: serve::Listen,

    /// A file whose lines clients may stream, offered by its file name
    /// (repeat it to offer several).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,

    /// How many primes the source "primes" streams.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PRIMES)]
    primes: u64,
}

/// The object: what it may stream.
struct Library {
    /// The files it offers, by name.
    files: BTreeMap<String, PathBuf>,
    /// How many primes `primes` has.
    primes: u64,
}

impl Lines for Library {
    // A plain `fn`: it may block (it opens a file), so it runs on tokio's
    // blocking pool; the stream it returns then runs as its kind says.
    fn lines(&self, source: String) -> rmi::Stream<String> {
        if source == PRIMES {
            println!("Streaming {} primes", self.primes);
            // More than usize::MAX primes is as good as all of them.
            let count = usize::try_from(self.primes).unwrap_or(usize::MAX);
            let lines = primes().take(count).enumerate().map(|(i, p)| Ok(format!("Prime {}: {p}", i + 1)));
            return rmi::Stream::iter(Tracked::new(source, lines));
        }
        let Some(path) = self.files.get(&source) else {
            let offered: Vec<&str> =
                std::iter::once(PRIMES).chain(self.files.keys().map(String::as_str)).collect();
            return rmi::Stream::error(format!(
                "no source {source:?} here; this server offers {}",
                offered.join(", ")
            ));
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => return rmi::Stream::error(format!("cannot open {source}: {e}")),
        };
        println!("Streaming the lines of {}", path.display());
        rmi::Stream::blocking(Tracked::new(source, read_lines(file)))
    }
}

/// The lines of `file`, without their line ends; bytes that are not UTF-8
/// become U+FFFD rather than end the stream.
fn read_lines(file: File) -> impl Iterator<Item = std::io::Result<String>> {
    BufReader::new(file).split(b'\n').map(|line| {
        let mut bytes = line?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    })
}

/// The primes, in order: each candidate is tried against the primes found
/// so far, up to its square root.
fn primes() -> impl Iterator<Item = u64> {
    let mut found: Vec<u64> = Vec::new();
    (2u64..).filter(move |&n| {
        let prime = found.iter().take_while(|&&p| p * p <= n).all(|&p| n % p != 0);
        if prime {
            found.push(n);
        }
        prime
    })
}

/// How a stream ended, as its producer saw it.
#[derive(Debug)]
enum End {
    /// It has not: if it is dropped so, its client went away.
    Running,
    /// Its lines ran out.
    Finished,
    /// Reading failed; the stream ended there.
    Failed(std::io::Error),
}

/// A stream's lines, counted: when the stream is dropped (at its end, or
/// when its client went away), it prints which and how many lines it made.
struct Tracked<I> {
    source: String,
    lines: I,
    made: u64,
    end: End,
}

impl<I> Tracked<I> {
    fn new(source: String, lines: I) -> Self {
        Tracked { source, lines, made: 0, end: End::Running }
    }
}

impl<I: Iterator<Item = std::io::Result<String>>> Iterator for Tracked<I> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if !matches!(self.end, End::Running) {
            return None;
        }
        match self.lines.next() {
            Some(Ok(line)) => {
                self.made += 1;
                Some(line)
            }
            Some(Err(e)) => {
                self.end = End::Failed(e);
                None
            }
            None => {
                self.end = End::Finished;
                None
            }
        }
    }
}

impl<I> Drop for Tracked<I> {
    fn drop(&mut self) {
        let (made, source) = (self.made, &self.source);
        match &self.end {
            End::Running => println!("Stopped after {made} lines: the client went away"),
            End::Finished => println!("Sent all {made} lines of {source}"),
            End::Failed(e) => println!("Stopped after {made} lines of {source}: reading failed: {e}"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut files = BTreeMap::new();
    for path in cli.files {
        File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?
            .to_string_lossy()
            .into_owned();
        if name == PRIMES || files.contains_key(&name) {
            bail!("two sources are named {name:?}: rename one of the files");
        }
        files.insert(name, path);
    }
    let names: Vec<&str> = std::iter::once(PRIMES).chain(files.keys().map(String::as_str)).collect();
    println!("Offering {}", names.join(", "));
    let library = Library { files, primes: cli.primes };
    serve::serve_named(&cli.listen.bind, NAME, |daemon| daemon.register(LinesObject(library), Some(NAME)))
        .await
}
