//! `rmi-naming`: runs rmi's name server, or talks to a running one.
//!
//! ```text
//! rmi-naming                               # serve on 127.0.0.1:9090, discovery on UDP 9091
//! rmi-naming --storage names.log           # registrations survive restarts
//! rmi-naming list [--prefix P | --regex R] # and lookup, register, remove, setmeta, yplookup, count, ping
//! rmi-naming call NAME METHOD '[1, "x"]'   # call any method, arguments and result in JSON
//! ```

// Data from the network must never panic this code: these are denied outside
// tests, and the few justified exceptions say why where they stand.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rmi_core::{Config, Host, Key};

const AFTER_HELP: &str = "\
Environment (flags win over variables):
  RMI_NS_HOST           where commands find the name server (default: discover it by broadcast)
  RMI_NS_PORT           TCP port (default 9090)
  RMI_NS_BCPORT         UDP discovery port (default 9091)
  RMI_HMAC_KEY          shared key; clients and name server must hold the same one (default: none)
  RMI_NS_STORAGE        storage file when serving (default: in memory)
  RMI_NS_ETCD           etcd members to keep the names in when serving (default: none)
  RMI_NS_ETCD_PREFIX    the etcd key prefix (default /rmi/naming/)
  RMI_NS_ETCD_USER      etcd user, when etcd's authentication is on (with RMI_NS_ETCD_PASSWORD)
  RMI_NS_ETCD_CA        with https:// members: the CA bundle (RMI_NS_ETCD_CERT/_KEY: a client certificate)
  RMI_NS_NO_BROADCAST   true: do not answer (or send) discovery broadcasts
  RMI_MAX_MESSAGE_SIZE  largest message (default 64M)
  RMI_CALL_TIMEOUT      how long commands wait for an answer (default 30s)
  RMI_TLS               on: serve and talk over TLS (with the files below)
  RMI_TLS_CA            PEM bundle of the CAs certificates are verified with
  RMI_TLS_SERVER_CERT   PEM certificate the name server presents (with RMI_TLS_SERVER_KEY)
  RMI_TLS_REQUIRE_CLIENT_CERT  on: refuse clients without a certificate from RMI_TLS_CA
  RMI_TLS_CLIENT_CERT   PEM certificate commands present (with RMI_TLS_CLIENT_KEY)
  RMI_PYRO5             on: also serve Python's Pyro5 tools (locate_ns, PYRONAME:, Pyro5.nsc) as
                        Pyro.NameServer; beside-key: even with RMI_HMAC_KEY and no TLS
  RUST_LOG              log filter (default: info when serving, warn otherwise)

Examples:
  rmi-naming                                     serve on 127.0.0.1:9090
  rmi-naming --host 0.0.0.0 --advertise ns.lan   serve to the network
  rmi-naming list --prefix example.              names beginning with example.
  rmi-naming register app.db RMI:db@10.0.0.5:9100 --meta class:database
  rmi-naming yplookup --all class:database
  rmi-naming --json list                         the same, as JSON
  rmi-naming dev-certs ./certs                   throwaway TLS certificates (development only)
  rmi-naming --etcd http://127.0.0.1:2379,http://127.0.0.1:22379 --port 9090
                                                 a replica of names kept in etcd (run several)";

/// rmi's name server: maps logical names to object URIs.
///
/// Run without a command, it serves: it listens on 127.0.0.1:9090, answers
/// discovery queries on UDP 9091, and prints its URI. With a command, it
/// talks to a running name server, found with --host/--port,
/// RMI_NS_HOST/RMI_NS_PORT, or by a discovery broadcast.
#[derive(Debug, Parser)]
#[command(name = "rmi-naming", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    common: Common,

    /// When serving: the storage file that keeps registrations across
    /// restarts (created if missing). Without it, names live in memory.
    #[arg(short, long, env = "RMI_NS_STORAGE", value_name = "PATH")]
    storage: Option<PathBuf>,

    /// When serving: the host to put in the name server's URI instead of
    /// --host (for NAT, or when listening on 0.0.0.0).
    #[arg(long, value_name = "HOST")]
    advertise: Option<String>,

    /// When serving: keep the names in etcd, at these members' client URLs
    /// (comma-separated). Every rmi-naming on the same etcd cluster and
    /// prefix serves the same names. Needs a build with the `etcd` feature.
    #[arg(
        long,
        env = "RMI_NS_ETCD",
        value_name = "URL,...",
        value_delimiter = ',',
        conflicts_with = "storage"
    )]
    etcd: Vec<String>,

    /// When serving on etcd: the prefix of its keys.
    #[arg(long, env = "RMI_NS_ETCD_PREFIX", value_name = "PREFIX", default_value = rmi_naming::DEFAULT_ETCD_PREFIX)]
    etcd_prefix: String,

    /// When serving on etcd over TLS (https:// endpoints): the PEM bundle
    /// of the CA etcd's certificates are verified with.
    #[arg(long, env = "RMI_NS_ETCD_CA", value_name = "PATH")]
    etcd_ca: Option<PathBuf>,

    /// When serving on etcd over TLS: the PEM certificate presented to etcd
    /// when it requires client certificates (with --etcd-key).
    #[arg(long, env = "RMI_NS_ETCD_CERT", value_name = "PATH", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,

    /// The PEM private key of --etcd-cert.
    #[arg(long, env = "RMI_NS_ETCD_KEY", value_name = "PATH", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Common {
    /// Serving: the host to listen on (default 127.0.0.1). Commands: where
    /// the name server is, or several tried in turn (`a,b:9092`) (default
    /// RMI_NS_HOST, else found by broadcast).
    #[arg(short = 'n', long, global = true, value_name = "HOST")]
    host: Option<String>,

    /// The TCP port (default RMI_NS_PORT, else 9090). Serving on port 0
    /// picks a free one.
    #[arg(short, long, global = true, value_name = "PORT")]
    port: Option<u16>,

    /// The UDP discovery port (default RMI_NS_BCPORT, else 9091).
    #[arg(long, global = true, value_name = "PORT")]
    bcport: Option<u16>,

    /// Serving: do not answer discovery queries. Commands: do not broadcast
    /// to find the name server; look on 127.0.0.1.
    #[arg(long, global = true, env = "RMI_NS_NO_BROADCAST")]
    no_broadcast: bool,

    /// The shared HMAC key (default RMI_HMAC_KEY). Prefer the variable: a
    /// command line is visible to other users of the machine.
    #[arg(short, long, global = true, value_name = "KEY")]
    key: Option<String>,

    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (what running without a command does).
    Serve,
    /// List registered names, sorted, with their URIs and metadata.
    List {
        /// Only names beginning with this.
        #[arg(long, conflicts_with = "regex")]
        prefix: Option<String>,
        /// Only names matching this regular expression (the whole name).
        #[arg(long)]
        regex: Option<String>,
    },
    /// Show where a name points.
    Lookup {
        /// The name.
        name: String,
    },
    /// Register a name for a URI (replacing an earlier registration).
    Register {
        /// The name, as `example.greeting`.
        name: String,
        /// The object's URI, as `RMI:greeter@127.0.0.1:9100`.
        uri: String,
        /// Metadata tags, for yellow-pages lookups.
        #[arg(long = "meta", value_name = "TAG", num_args = 1..)]
        meta: Vec<String>,
        /// Refuse to replace an existing registration.
        #[arg(long)]
        safe: bool,
    },
    /// Remove a name, or every name with a prefix or matching a pattern.
    Remove {
        /// The name to remove.
        #[arg(required_unless_present_any = ["prefix", "regex"], conflicts_with_all = ["prefix", "regex"])]
        name: Option<String>,
        /// Remove every name beginning with this.
        #[arg(long, conflicts_with = "regex")]
        prefix: Option<String>,
        /// Remove every name matching this regular expression.
        #[arg(long)]
        regex: Option<String>,
    },
    /// Replace a name's metadata tags (none: clear them).
    Setmeta {
        /// The name.
        name: String,
        /// The new tags.
        tags: Vec<String>,
    },
    /// Yellow pages: the names whose objects have all (or any) of the tags.
    Yplookup {
        /// Objects with every tag.
        #[arg(long, conflicts_with = "any", required_unless_present = "any")]
        all: bool,
        /// Objects with at least one tag.
        #[arg(long)]
        any: bool,
        /// The tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Show a registered object's type, instance mode and methods, with
    /// their signatures and oneway/stream flags (asks the object's daemon).
    Describe {
        /// The name.
        name: String,
    },
    /// Call a method of a registered object with JSON arguments and print its
    /// JSON result (an error: the remote error, and a non-zero exit). The
    /// arguments are a JSON array, one element per parameter, as `describe`
    /// shows the signature: `rmi-naming call example.greeting welcome_message '["Ada"]'`.
    Call {
        /// The name.
        name: String,
        /// The method.
        method: String,
        /// The arguments: a JSON array (default: none).
        #[arg(default_value = "[]", value_name = "JSON")]
        args: String,
    },
    /// How many names are registered.
    Count,
    /// Check that the name server answers.
    Ping,
    /// FOR LOCAL DEVELOPMENT ONLY: write a throwaway CA, a server
    /// certificate and a client certificate (PEM) into DIR, and print the
    /// RMI_TLS_* settings that use them. The CA's key is not kept. Real
    /// deployments take certificates from their own CA.
    DevCerts {
        /// The directory to write into (created if missing).
        dir: PathBuf,
        /// A host name or IP address the server certificate is valid for
        /// (repeat for several).
        #[arg(long = "san", value_name = "NAME", default_values = ["localhost", "127.0.0.1", "::1"])]
        hosts: Vec<String>,
        /// How many days the certificates are valid.
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        days: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" }));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if let Some(Command::DevCerts { dir, hosts, days }) = &cli.command {
        return match dev_certs(dir, hosts, *days) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    let outcome = runtime.block_on(async {
        let config = config(&cli.common)?;
        match cli.command {
            None | Some(Command::Serve) => {
                let tls = match (cli.etcd_ca, cli.etcd_cert, cli.etcd_key) {
                    (Some(ca), cert, key) => Some(rmi_naming::EtcdTls { ca, identity: cert.zip(key) }),
                    (None, None, None) => None,
                    (None, _, _) => anyhow::bail!(
                        "--etcd-cert needs --etcd-ca, the CA etcd's certificates are verified with"
                    ),
                };
                let etcd = etcd_options(cli.etcd, cli.etcd_prefix, tls)?;
                serve(&cli.common, config, cli.storage, etcd, cli.advertise).await
            }
            Some(command) => commands::run(command, &cli.common, config).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Writes throwaway certificates and prints how to use them.
fn dev_certs(dir: &std::path::Path, hosts: &[String], days: u64) -> anyhow::Result<()> {
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    rmi_naming::devcerts::write_dev_files(dir, &hosts, days)?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    println!("# Throwaway certificates for local development, NOT for production:");
    println!("# a new CA (its key not kept), a server certificate for {} and a client", hosts.join(", "));
    println!("# certificate, valid for {days} days. In each terminal:");
    println!("export RMI_TLS=on");
    for (var, file) in rmi_naming::devcerts::DEV_FILES {
        println!("export {var}={}", dir.join(file).display());
    }
    println!("# and, for mutual TLS (daemons refuse clients without a certificate):");
    println!("export RMI_TLS_REQUIRE_CLIENT_CERT=on");
    Ok(())
}

/// Prints the error and its causes on one line, and fails.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("rmi-naming: {e:#}");
    ExitCode::FAILURE
}

/// The environment's configuration, with the flags applied over it.
fn config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::from_env()?;
    if let Some(port) = common.port {
        config.ns_port = port;
    }
    if let Some(port) = common.bcport {
        config.ns_bcport = port;
    }
    if let Some(key) = &common.key {
        anyhow::ensure!(!key.is_empty(), "--key is empty; leave it out to run without authentication");
        config.hmac_key = Some(Key::from(key.as_str()));
    }
    Ok(config)
}

/// The etcd options of `--etcd`, with the user from the environment (a
/// password does not belong on a command line).
fn etcd_options(
    endpoints: Vec<String>,
    prefix: String,
    tls: Option<rmi_naming::EtcdTls>,
) -> anyhow::Result<Option<rmi_naming::EtcdOptions>> {
    let endpoints: Vec<String> =
        endpoints.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    if endpoints.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        prefix.starts_with('/') && prefix.ends_with('/'),
        "--etcd-prefix {prefix:?}: begin and end it with '/'"
    );
    let mut options = rmi_naming::EtcdOptions::new(endpoints);
    options.prefix = prefix;
    options.tls = tls;
    match (std::env::var("RMI_NS_ETCD_USER"), std::env::var("RMI_NS_ETCD_PASSWORD")) {
        (Ok(user), Ok(password)) => options.user = Some((user, password)),
        (Ok(_), Err(_)) => anyhow::bail!("RMI_NS_ETCD_USER is set without RMI_NS_ETCD_PASSWORD"),
        _ => {}
    }
    Ok(Some(options))
}

async fn serve(
    common: &Common,
    config: Config,
    storage: Option<PathBuf>,
    etcd: Option<rmi_naming::EtcdOptions>,
    advertise: Option<String>,
) -> anyhow::Result<()> {
    let mut options = rmi_naming::NameServerOptions::from_config(&config);
    if let Some(host) = &common.host {
        options.host = host.parse::<Host>().map_err(|e| anyhow::anyhow!("--host: {}", e.problem()))?;
    }
    if let Some(host) = &advertise {
        options.advertise =
            Some(host.parse::<Host>().map_err(|e| anyhow::anyhow!("--advertise: {}", e.problem()))?);
    }
    if common.no_broadcast {
        options.broadcast_port = None;
    }
    options.storage = storage;
    options.etcd = etcd;
    let running = rmi_naming::start(options.clone()).await?;
    match running.discovery_address() {
        Some(address) => println!("Broadcast server running on {address}"),
        None => println!("Not answering discovery broadcasts"),
    }
    println!("NS running on {}", running.daemon().location());
    match (&options.etcd, &options.storage) {
        (Some(etcd), _) => println!("Storage: etcd at {} under {}", etcd.endpoints.join(","), etcd.prefix),
        (None, Some(path)) => println!("Storage: {}", path.display()),
        (None, None) => println!("Storage: in memory (use --storage to keep names across restarts)"),
    }
    match (&options.tls, options.tls.is_some() && config.tls.is_some()) {
        (Some(_), _) => println!("TLS: on"),
        (None, _) => println!("TLS: off (plaintext; RMI_TLS=on turns it on)"),
    }
    if options.pyro5 != rmi_core::config::Pyro5Mode::Off {
        println!("Pyro5: on (Python's locate_ns, PYRONAME: and Pyro5.nsc reach Pyro.NameServer here)");
    }
    println!("URI = {}", running.uri());
    tracing::info!(uri = %running.uri(), authenticated = options.key.is_some(), "name server ready");
    stop_signal().await;
    tracing::info!("stopping");
    running.stop().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { match terminate.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {}
    }
}
