//! A small command-line parser shared by the recipe examples: `--name value`
//! flags, on/off switches and positional arguments, without a dependency.
//!
//! Each example includes it with `#[path = "../common/flags.rs"] mod flags;`
//! and declares the flags it takes, so a mistyped flag is an error that
//! shows the usage instead of being ignored.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

/// The parsed command line of one example.
#[derive(Debug)]
pub(crate) struct Flags {
    usage: &'static str,
    values: HashMap<String, String>,
    switches: HashSet<String>,
    positional: Vec<String>,
}

impl Flags {
    /// Parses the process's arguments: `valued` are the flags that take a
    /// value (`--port 80` or `--port=80`), `switches` those that do not.
    /// `--help` prints `usage` and exits.
    ///
    /// # Errors
    ///
    /// An unknown flag, or a valued flag without its value; the message
    /// includes `usage`.
    pub(crate) fn parse(usage: &'static str, valued: &[&str], switches: &[&str]) -> anyhow::Result<Self> {
        let mut flags =
            Flags { usage, values: HashMap::new(), switches: HashSet::new(), positional: Vec::new() };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            if !arg.starts_with("--") || arg == "--" {
                if arg != "--" {
                    flags.positional.push(arg);
                }
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            if valued.contains(&name.as_str()) {
                let value = match inline {
                    Some(value) => value,
                    None => args.next().with_context(|| format!("{name} needs a value\n{usage}"))?,
                };
                flags.values.insert(name, value);
            } else if switches.contains(&name.as_str()) && inline.is_none() {
                flags.switches.insert(name);
            } else {
                bail!("unknown flag {arg}\n{usage}");
            }
        }
        Ok(flags)
    }

    /// The value of flag `name` parsed as `T`, or `default` when absent.
    ///
    /// # Errors
    ///
    /// A value that does not parse as `T`.
    pub(crate) fn get<T: FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| anyhow::anyhow!("{name} {text:?}: {e}\n{}", self.usage)),
        }
    }

    /// The value of flag `name` as text, if given.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of flag `name` in seconds (`1`, `0.25`), or `default`.
    ///
    /// # Errors
    ///
    /// A value that is not a non-negative number of seconds.
    pub(crate) fn seconds(&self, name: &str, default: Duration) -> anyhow::Result<Duration> {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .with_context(|| format!("{name} {text:?}: not a number of seconds\n{}", self.usage)),
        }
    }

    /// Whether switch `name` was given.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.switches.contains(name)
    }

    /// The arguments that are not flags, in order.
    pub(crate) fn positional(&self) -> &[String] {
        &self.positional
    }
}
