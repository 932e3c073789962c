//! The tables: every outcome, then each target as a ratio from this run.

use std::collections::BTreeMap;

use crate::measure::Outcome;

/// One line for the progress log.
pub(crate) fn summary(o: &Outcome) -> String {
    let mut s = format!("{:>12.0} ops/s", o.rate());
    if let (Some(p50), Some(p99)) = (o.p50_us, o.p99_us) {
        s.push_str(&format!("   p50 {p50:7.1} µs   p99 {p99:7.1} µs"));
    }
    if let Some(mb) = o.mb_per_sec() {
        s.push_str(&format!("   {mb:8.0} MB/s"));
    }
    s
}

#[derive(Clone, Copy)]
enum Metric {
    /// Mean round trip, µs (lower is better).
    Rtt,
    /// Median round trip (or connection setup), µs (lower is better): for
    /// runs whose mean a few stalls of a shared machine would move.
    Median,
    /// Operations per second.
    Rate,
    /// Megabytes per second.
    Throughput,
}

enum Target {
    /// ratio ≤ x (for round trips).
    AtMost(f64),
    /// ratio ≥ x.
    AtLeast(f64),
    /// Reported, no target.
    Report,
}

struct Check {
    id: &'static str,
    what: &'static str,
    rmi: &'static str,
    base: &'static str,
    metric: Metric,
    target: Target,
}

fn value(o: &Outcome, m: Metric) -> Option<f64> {
    match m {
        Metric::Rtt => (o.rate() > 0.0).then(|| 1e6 / o.rate()),
        Metric::Median => o.p50_us,
        Metric::Rate => Some(o.rate()),
        Metric::Throughput => o.mb_per_sec(),
    }
}

fn checks() -> Vec<Check> {
    use Metric::*;
    use Target::*;
    let c = |id, what, rmi, base, metric, target| Check { id, what, rmi, base, metric, target };
    vec![
        c("a", "round trip, pinned: rmi / raw TCP", "rmi.seq.pinned", "tcp.seq.pinned", Rtt, AtMost(1.2)),
        c("a", "round trip, pinned: rmi / tarpc", "rmi.seq.pinned", "tarpc.seq.pinned", Rtt, AtMost(1.0)),
        c(
            "a",
            "round trip, pinned: rmi / Pyro5 msgpack",
            "rmi.seq.pinned",
            "pyro.seq.msgpack.pinned",
            Rtt,
            AtMost(0.5),
        ),
        c("a", "calls/s, unpinned: rmi / raw TCP", "rmi.seq", "tcp.seq", Rate, AtLeast(0.9)),
        c("b", "64 in flight: rmi / tarpc", "rmi.pipe64", "tarpc.pipe64", Rate, AtLeast(1.5)),
        c("b", "64 in flight: rmi / raw TCP", "rmi.pipe64", "tcp.pipe64", Rate, AtLeast(0.3)),
        c("c", "8 clients: rmi / tarpc", "rmi.clients8", "tarpc.clients8", Rate, AtLeast(1.0)),
        c("c", "8 clients: rmi / Pyro5", "rmi.clients8", "pyro.clients8", Rate, AtLeast(8.0)),
        c("d", "oneway completed: rmi / Pyro5", "rmi.oneway", "pyro.oneway", Rate, AtLeast(20.0)),
        c("g", "batch of 10,000 calls: rmi / Pyro5", "rmi.batch", "pyro.batch", Rate, Report),
        c("g", "batch of 10,000 calls / 64 calls in flight, rmi", "rmi.batch", "rmi.pipe64", Rate, Report),
        c("e", "10 MiB argument: rmi / raw TCP", "rmi.payload", "tcp.payload", Throughput, AtLeast(0.7)),
        c("e", "10 MiB argument: rmi / tarpc", "rmi.payload", "tarpc.payload", Throughput, Report),
        c(
            "e",
            "10 MiB argument: rmi / Pyro5 msgpack",
            "rmi.payload",
            "pyro.payload",
            Throughput,
            AtLeast(1.7),
        ),
        c(
            "p5",
            "a Pyro5 client (json), round trip pinned: calling rmi / calling Pyro5",
            "pyro.json.seq.pinned.rmi",
            "pyro.json.seq.pinned",
            Rate,
            AtLeast(1.5),
        ),
        c(
            "p5",
            "a Pyro5 client (json), round trip unpinned: calling rmi / calling Pyro5",
            "pyro.json.seq.rmi",
            "pyro.json.seq",
            Rate,
            // Bound by the machine's cross-CPU wake-ups rather than by the
            // daemon (benches/README.md, "Python's Pyro5 clients calling rmi").
            Report,
        ),
        c(
            "p5",
            "8 Pyro5 client processes (json): calling rmi / calling Pyro5",
            "pyro.json.procs8.rmi",
            "pyro.json.procs8",
            Rate,
            AtLeast(1.5),
        ),
        c(
            "p5",
            "8 Pyro5 client threads (json): calling rmi / calling Pyro5",
            "pyro.json.clients8.rmi",
            "pyro.json.clients8",
            Rate,
            Report,
        ),
        c("f", "lookups, 64 in flight: rmi / Pyro5", "rmi.lookup.pipe64", "pyro.lookup", Rate, AtLeast(10.0)),
        c("f", "lookups, sequential: rmi / Pyro5", "rmi.lookup.seq", "pyro.lookup", Rate, Report),
        c(
            "i8",
            "durable registrations, 64 at once: rmi / Pyro5 sqlite",
            "rmi.register.pipe64",
            "pyro.register",
            Rate,
            AtLeast(5.0),
        ),
        c(
            "ns",
            "lookups, 64 in flight: a replica on etcd (3 members) / the embedded name server",
            "rmi.etcd.lookup.pipe64",
            "rmi.lookup.pipe64",
            Rate,
            AtLeast(0.8),
        ),
        c(
            "ns",
            "durable registrations, 64 at once: etcd (3 members) / the embedded store (--storage)",
            "rmi.etcd.register.pipe64",
            "rmi.register.pipe64",
            Rate,
            Report,
        ),
        c(
            "ns",
            "failover (the next lookup after a replica's SIGKILL; median) / connection setup",
            "rmi.etcd.failover",
            "rmi.connect",
            Median,
            Report,
        ),
        c(
            "i8",
            "durable registrations, one at a time: rmi / Pyro5 sqlite",
            "rmi.register.seq",
            "pyro.register",
            Rate,
            Report,
        ),
        c(
            "s",
            "stream of 64 KiB chunks: rmi / raw TCP",
            "rmi.stream.chunks",
            "tcp.stream.chunks",
            Throughput,
            AtLeast(0.7),
        ),
        c("s", "stream of 8-byte items: rmi / raw TCP", "rmi.stream.items", "tcp.stream.items", Rate, Report),
        c(
            "s",
            "multi-thread: stream of 64 KiB chunks: rmi / raw TCP",
            "rmi.mt.stream.chunks",
            "tcp.stream.chunks",
            Throughput,
            Report,
        ),
        c(
            "s",
            "multi-thread: stream of 8-byte items: rmi / raw TCP",
            "rmi.mt.stream.items",
            "tcp.stream.items",
            Rate,
            Report,
        ),
        c("t", "round trip, pinned: rmi / tonic", "rmi.seq.pinned", "tonic.seq.pinned", Rtt, AtMost(1.0)),
        c("t", "calls/s, unpinned: rmi / tonic", "rmi.seq", "tonic.seq", Rate, AtLeast(1.0)),
        c("t", "64 in flight: rmi / tonic", "rmi.pipe64", "tonic.pipe64", Rate, AtLeast(1.0)),
        c("t", "8 clients: rmi / tonic", "rmi.clients8", "tonic.clients8", Rate, AtLeast(1.0)),
        c("t", "10 MiB argument: rmi / tonic", "rmi.payload", "tonic.payload", Throughput, AtLeast(1.0)),
        c(
            "t",
            "stream of 8-byte items: rmi / tonic",
            "rmi.stream.items",
            "tonic.stream.items",
            Rate,
            AtLeast(1.5),
        ),
        c(
            "t",
            "stream of 64 KiB chunks: rmi / tonic",
            "rmi.stream.chunks",
            "tonic.stream.chunks",
            Throughput,
            AtLeast(1.0),
        ),
        c("t", "multi-thread: calls/s, unpinned: rmi / tonic", "rmi.mt.seq", "tonic.seq", Rate, Report),
        c("t", "multi-thread: 64 in flight: rmi / tonic", "rmi.mt.pipe64", "tonic.pipe64", Rate, Report),
        c("h", "HMAC on / off, round trip unpinned", "rmi.hmac.seq", "rmi.seq", Rate, AtLeast(0.85)),
        c(
            "h",
            "HMAC on / off, round trip pinned",
            "rmi.hmac.seq.pinned",
            "rmi.seq.pinned",
            Rate,
            AtLeast(0.85),
        ),
        c("h", "HMAC on / off, 64 in flight", "rmi.hmac.pipe64", "rmi.pipe64", Rate, AtLeast(0.85)),
        c("h", "HMAC on / off, 10 MiB argument", "rmi.hmac.payload", "rmi.payload", Throughput, Report),
        c(
            "tls",
            "TLS / plaintext, 10 MiB argument",
            "rmi.tls.payload",
            "rmi.payload",
            Throughput,
            AtLeast(0.5),
        ),
        c(
            "tls",
            "TLS / shared key, 10 MiB argument",
            "rmi.tls.payload",
            "rmi.hmac.payload",
            Throughput,
            AtLeast(2.0),
        ),
        c(
            "tls",
            "TLS / plaintext, round trip pinned",
            "rmi.tls.seq.pinned",
            "rmi.seq.pinned",
            Rtt,
            AtMost(1.3),
        ),
        c("tls", "TLS / plaintext, round trip unpinned", "rmi.tls.seq", "rmi.seq", Rtt, Report),
        c("tls", "TLS / plaintext, 64 in flight", "rmi.tls.pipe64", "rmi.pipe64", Rate, AtLeast(0.8)),
        c(
            "tls",
            "connection setup (connect, handshakes, first call; median): TLS, full handshake / plaintext",
            "rmi.tls.connect.full",
            "rmi.connect",
            Median,
            Report,
        ),
        c(
            "tls",
            "connection setup (median): TLS, session resumed / plaintext",
            "rmi.tls.connect.resumed",
            "rmi.connect",
            Median,
            Report,
        ),
        c(
            "tls",
            "connection setup (median): TLS, session resumed / full handshake",
            "rmi.tls.connect.resumed",
            "rmi.tls.connect.full",
            Median,
            Report,
        ),
        c(
            "k",
            "plain fn (blocking pool) / #[nonblocking], round trip unpinned",
            "rmi.seq.blocking",
            "rmi.seq",
            Rtt,
            Report,
        ),
        c(
            "k",
            "plain fn (blocking pool) / #[nonblocking], round trip pinned",
            "rmi.seq.blocking.pinned",
            "rmi.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "k",
            "plain fn (blocking pool) / #[nonblocking], multi-thread, pinned",
            "rmi.mt.seq.blocking.pinned",
            "rmi.mt.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "n",
            "callback round trip / call round trip, unpinned",
            "rmi.callback",
            "rmi.seq",
            Rtt,
            AtMost(1.2),
        ),
        c(
            "n",
            "callback round trip / call round trip, pinned",
            "rmi.callback.pinned",
            "rmi.seq.pinned",
            Rtt,
            AtMost(1.2),
        ),
        c(
            "n",
            "a reference passed and one returned / a plain call, unpinned",
            "rmi.refs",
            "rmi.seq",
            Rtt,
            Report,
        ),
        c(
            "n",
            "a reference passed and one returned / a plain call, pinned",
            "rmi.refs.pinned",
            "rmi.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "m",
            "multi-thread: round trip, pinned: rmi / raw TCP",
            "rmi.mt.seq.pinned",
            "tcp.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "m",
            "multi-thread: round trip, pinned: rmi / raw TCP, both multi-thread",
            "rmi.mt.seq.pinned",
            "tcp.mt.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "m",
            "multi-thread, called from a spawned task: round trip, pinned: rmi / raw TCP",
            "rmi.mt.seq.task.pinned",
            "tcp.seq.pinned",
            Rtt,
            Report,
        ),
        c(
            "m",
            "multi-thread, called from a spawned task: round trip, pinned: rmi / raw TCP, both multi-thread",
            "rmi.mt.seq.task.pinned",
            "tcp.mt.seq.task.pinned",
            Rtt,
            Report,
        ),
        c("m", "multi-thread: calls/s, unpinned: rmi / raw TCP", "rmi.mt.seq", "tcp.seq", Rate, Report),
        c(
            "m",
            "multi-thread, called from a spawned task: calls/s, unpinned: rmi / raw TCP",
            "rmi.mt.seq.task",
            "tcp.seq",
            Rate,
            Report,
        ),
        c(
            "m",
            "multi-thread: calls/s, unpinned: rmi / raw TCP, both multi-thread",
            "rmi.mt.seq",
            "tcp.mt.seq",
            Rate,
            Report,
        ),
        c("m", "multi-thread: 64 in flight: rmi / tarpc", "rmi.mt.pipe64", "tarpc.pipe64", Rate, Report),
        c("m", "multi-thread: 64 in flight: rmi / raw TCP", "rmi.mt.pipe64", "tcp.pipe64", Rate, Report),
        c("m", "multi-thread: 8 clients: rmi / tarpc", "rmi.mt.clients8", "tarpc.clients8", Rate, Report),
        c(
            "m",
            "multi-thread: 10 MiB argument: rmi / raw TCP",
            "rmi.mt.payload",
            "tcp.payload",
            Throughput,
            Report,
        ),
    ]
}

/// Every comparison's two runs (the figure, its baseline).
#[cfg(test)]
pub(crate) fn comparisons() -> Vec<(&'static str, &'static str)> {
    checks().into_iter().map(|c| (c.rmi, c.base)).collect()
}

/// The runs the TLS checks compare (`--tls` runs these alone).
pub(crate) fn tls_runs() -> Vec<&'static str> {
    let mut runs: Vec<&'static str> =
        checks().into_iter().filter(|c| c.id == "tls").flat_map(|c| [c.rmi, c.base]).collect();
    runs.sort_unstable();
    runs.dedup();
    runs
}

fn unit(m: Metric) -> &'static str {
    match m {
        Metric::Rtt | Metric::Median => "µs",
        Metric::Rate => "/s",
        Metric::Throughput => "MB/s",
    }
}

/// The ratio of `c`: the median of its rounds' ratios where both sides ran
/// in the same rounds, else the ratio of the medians (Pyro5 runs once, but
/// for the pairs of its json client's runs).
fn ratio(c: &Check, medians: (f64, f64), rounds: &[BTreeMap<String, Outcome>]) -> f64 {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|round| {
            let r = value(round.get(c.rmi)?, c.metric)?;
            let b = value(round.get(c.base)?, c.metric)?;
            (b > 0.0).then_some(r / b)
        })
        .collect();
    if ratios.is_empty() {
        return medians.0 / medians.1;
    }
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    if ratios.len() % 2 == 1 { ratios[middle] } else { (ratios[middle - 1] + ratios[middle]) / 2.0 }
}

pub(crate) fn print(
    results: &BTreeMap<String, Outcome>,
    rounds: &[BTreeMap<String, Outcome>],
    quick: bool,
    rmi_threads: usize,
    repeat: usize,
) {
    println!();
    println!("| run | ops/s | mean µs | p50 µs | p99 µs | MB/s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, o) in results {
        let opt = |v: Option<f64>, prec: usize| v.map_or("".to_owned(), |v| format!("{v:.prec$}"));
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} |",
            o.rate(),
            opt(value(o, Metric::Rtt), 1),
            opt(o.p50_us, 1),
            opt(o.p99_us, 1),
            opt(o.mb_per_sec(), 0),
        );
    }
    println!();
    println!("| target | comparison | rmi | baseline | ratio | wanted | met |");
    println!("| --- | --- | ---: | ---: | ---: | --- | --- |");
    for c in checks() {
        let (Some(r), Some(b)) = (results.get(c.rmi), results.get(c.base)) else { continue };
        let (Some(rv), Some(bv)) = (value(r, c.metric), value(b, c.metric)) else { continue };
        let ratio = ratio(&c, (rv, bv), rounds);
        let (wanted, met) = match c.target {
            Target::AtMost(x) => (format!("≤ {x}"), if ratio <= x { "yes" } else { "NO" }),
            Target::AtLeast(x) => (format!("≥ {x}"), if ratio >= x { "yes" } else { "NO" }),
            Target::Report => ("".to_owned(), ""),
        };
        let u = unit(c.metric);
        println!("| ({}) | {} | {rv:.1} {u} | {bv:.1} {u} | {ratio:.2} | {wanted} | {met} |", c.id, c.what);
    }
    println!();
    println!(
        "{} run, median of {repeat} round{} (each ratio: the median of the rounds' ratios, but against \
         Pyro5, which runs once, but for its json client's pairs, which alternate in rounds of their own); rmi processes on {} (rmi.mt.*: tokio's default multi-thread \
         runtime); tarpc on tokio's multi-thread runtime (2 workers); raw TCP on a current-thread runtime; pinned runs put server and client on CPU 0 \
         (taskset -c 0).",
        if quick { "quick" } else { "full" },
        if repeat == 1 { "" } else { "s" },
        if rmi_threads <= 1 {
            "a current-thread runtime".to_owned()
        } else {
            format!("{rmi_threads} worker threads")
        }
    );
}
