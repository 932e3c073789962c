"""Pyro5 doing the work of rmi's benchmarks, for the comparison in benches/README.md.

Every server runs in a process of its own (this script with --serve); the
client workloads run here. Pinned runs put server and client on CPU 0.
The figures are printed as they come, and as one JSON line at the end, in
the same shape as rmi-bench's outcomes: {name: {ops, secs, p50_us, p99_us, bytes}}.

    bash benches/pyro5/run.sh [--quick] [--json]

With RMI_BENCH_BIN set (rmi-bench sets it to itself), the json runs also
call rmi's benchmark daemon through its Pyro5 door (RMI_PYRO5=on): the
same Python client, an rmi daemon instead of a Pyro5 one. BENCH_PYRO_ONLY
(comma-separated run names) keeps only those runs.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import Pyro5.api
import Pyro5
import Pyro5.nameserver

NAMES = 10_000
PAYLOAD = 10 << 20
BATCH = 10_000


@Pyro5.api.expose
class Bench:
    """The work: the same methods as rmi-bench's Bench object."""

    def __init__(self):
        self._ticks = 0
        self._lock = threading.Lock()

    def echo(self, x):
        return x

    @Pyro5.api.oneway
    def tick(self):
        with self._lock:
            self._ticks += 1

    def ticks(self):
        return self._ticks

    def reset(self):
        with self._lock:
            self._ticks = 0

    def blob_len(self, payload):
        return len(payload)


def serve(kind):
    """Serves `kind` ("bench", "names" or "durable") on a free port, prints READY <uri>."""
    if kind == "bench":
        daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
        uri = daemon.register(Bench(), "bench")
        print("READY", uri, flush=True)
        daemon.requestLoop()
    elif kind == "durable":
        path = f"/tmp/pyro-bench-names-{os.getpid()}.sqlite"
        if os.path.exists(path):
            os.remove(path)
        uri, daemon, _ = Pyro5.nameserver.start_ns(host="127.0.0.1", port=0, enableBroadcast=False, storage=f"sql:{path}")
        print("READY", uri, flush=True)
        daemon.requestLoop()
    else:
        uri, daemon, _ = Pyro5.nameserver.start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
        # The daemon serves only once its loop runs: fill it directly.
        for i in range(NAMES):
            daemon.nameserver.register(f"bench.name.{i}", f"PYRO:obj{i}@127.0.0.1:{1 + i % 60000}")
        print("READY", uri, flush=True)
        daemon.requestLoop()


class Server:
    """A server process, stopped when the workload is done."""

    def __init__(self, kind, pinned):
        command = [sys.executable, os.path.abspath(__file__), "--serve", kind]
        if pinned:
            command = ["taskset", "-c", "0"] + command
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the {kind} server said {line!r}")
        self.uri = line[len("READY "):]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


class RmiServer:
    """rmi's benchmark daemon (`rmi-bench serve rmi`, from $RMI_BENCH_BIN) with
    RMI_PYRO5=on: the same Bench object, for Pyro5 clients on json."""

    def __init__(self, pinned):
        command = [os.environ["RMI_BENCH_BIN"], "serve", "rmi", "--threads", "1"]
        if pinned:
            command = ["taskset", "-c", "0"] + command
        env = dict(os.environ, RMI_PYRO5="on")
        for var in [v for v in env if v.startswith("RMI_TLS") or v == "RMI_HMAC_KEY"]:
            del env[var]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY RMI:"):
            raise RuntimeError(f"rmi-bench serve rmi said {line!r}")
        self.uri = "PYRO:" + line[len("READY RMI:"):]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def json_seq(server_class, pinned, plan):
    """Round trips of a Pyro5 client on json, against `server_class`'s daemon."""
    with server_class(pinned) as server:
        if pinned:
            os.sched_setaffinity(0, {0})
        try:
            p = proxy(server.uri, "json")
            return sequential(lambda i: p.echo(i), plan["calls"] // 10, plan["calls"])
        finally:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))


def json_clients(server_class, count, plan):
    with server_class(False) as server:
        def make_call(_):
            p = proxy(server.uri, "json")
            return lambda: p.echo(1)

        return threaded(count, plan, make_call)


def _calling_process(uri, index, done, start_at, end_at):
    """One client process: calls `echo` until `end_at`, counting the calls
    that completed in [start_at, end_at) (perf_counter is the system's
    monotonic clock, the same in every process)."""
    p = proxy(uri, "json")
    count = 0
    while True:
        p.echo(1)
        now = time.perf_counter()
        if now >= end_at:
            break
        if now >= start_at:
            count += 1
    done[index] = count


def json_processes(server_class, count, plan):
    """`count` client processes (each its own interpreter, so no GIL is
    shared), each with its own connection: the daemon's own cost per call
    competes with the clients' for the machine's CPUs."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with server_class(False) as server:
        done = ctx.Array("q", count)
        # Time for every process to start and connect before counting.
        start_at = time.perf_counter() + plan["warmup"] + 1.0
        end_at = start_at + plan["window"]
        procs = [ctx.Process(target=_calling_process, args=(server.uri, i, done, start_at, end_at)) for i in range(count)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        if any(proc.exitcode != 0 for proc in procs):
            raise RuntimeError("a client process failed")
        return outcome(sum(done), end_at - start_at)


def pyro_server(pinned):
    return Server("bench", pinned)


def proxy(uri, serializer):
    p = Pyro5.api.Proxy(uri)
    p._pyroSerializer = serializer
    return p


def outcome(ops, secs, latencies=None, nbytes=None):
    result = {"ops": ops, "secs": secs, "p50_us": None, "p99_us": None, "bytes": nbytes}
    if latencies:
        latencies.sort()
        pick = lambda q: latencies[round((len(latencies) - 1) * q)] * 1e6
        result["p50_us"], result["p99_us"] = pick(0.50), pick(0.99)
    return result


def sequential(call, warmup, count):
    for i in range(warmup):
        call(i)
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t)
    return outcome(count, time.perf_counter() - started, latencies)


def threaded(count, plan, make_call):
    """Runs `count` threads, each calling `make_call(index)()` in a loop, and
    counts the calls completed in the measured window."""
    done = [0] * count
    counting = threading.Event()
    stop = threading.Event()

    def loop(index):
        call = make_call(index)
        while not stop.is_set():
            call()
            if counting.is_set():
                done[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    time.sleep(plan["warmup"])
    counting.set()
    started = time.perf_counter()
    time.sleep(plan["window"])
    ops, secs = sum(done), time.perf_counter() - started
    stop.set()
    for t in threads:
        t.join()
    return outcome(ops, secs)


def seq(serializer, pinned, plan):
    with Server("bench", pinned) as server:
        if pinned:
            os.sched_setaffinity(0, {0})
        try:
            p = proxy(server.uri, serializer)
            return sequential(lambda i: p.echo(i), plan["calls"] // 10, plan["calls"])
        finally:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))


def clients(count, plan):
    with Server("bench", False) as server:
        def make_call(_):
            p = proxy(server.uri, "msgpack")
            return lambda: p.echo(1)

        return threaded(count, plan, make_call)


def oneway(plan):
    with Server("bench", False) as server:
        p = proxy(server.uri, "msgpack")
        p.reset()
        count = plan["oneways"]
        started = time.perf_counter()
        for _ in range(count):
            p.tick()
        checker = proxy(server.uri, "msgpack")
        deadline = time.time() + 120
        while checker.ticks() < count:
            if time.time() > deadline:
                raise RuntimeError("oneway calls went missing")
            time.sleep(0.0005)
        return outcome(count, time.perf_counter() - started)


def batch(plan):
    """Batches of BATCH echo calls through a BatchProxy: recording, running
    and reading every result are all timed."""
    with Server("bench", False) as server:
        p = proxy(server.uri, "msgpack")

        def one_batch():
            b = Pyro5.api.BatchProxy(p)
            for i in range(BATCH):
                b.echo(i)
            for i, result in enumerate(b()):
                if result != i:
                    raise RuntimeError("a batched call came back wrong")

        one_batch()
        started = time.perf_counter()
        for _ in range(plan["batches"]):
            one_batch()
        return outcome(plan["batches"] * BATCH, time.perf_counter() - started)


def payload(plan):
    with Server("bench", False) as server:
        p = proxy(server.uri, "msgpack")
        data = bytes(PAYLOAD)
        p.blob_len(data)
        started = time.perf_counter()
        for _ in range(plan["transfers"]):
            assert p.blob_len(data) == PAYLOAD
        secs = time.perf_counter() - started
        return outcome(plan["transfers"], secs, nbytes=plan["transfers"] * PAYLOAD)


def lookups(plan, threads):
    with Server("names", False) as server:
        if threads == 1:
            ns = proxy(server.uri, "msgpack")
            return sequential(lambda i: ns.lookup(f"bench.name.{(i * 7919) % NAMES}"), plan["calls"] // 10, plan["calls"])

        def make_call(index):
            ns = proxy(server.uri, "msgpack")
            names = (f"bench.name.{(i * 7919) % NAMES}" for i in range(index, 1 << 62, threads))
            return lambda: ns.lookup(next(names))

        return threaded(threads, plan, make_call)


def registrations(plan, threads):
    """Registrations of new names in a name server with sqlite storage."""
    with Server("durable", False) as server:
        def make_call(index):
            ns = proxy(server.uri, "msgpack")
            names = (f"durable.{index}.{i}" for i in range(1 << 62))
            return lambda: ns.register(next(names), "PYRO:obj@127.0.0.1:9999")

        return threaded(threads, plan, make_call)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["bench", "names", "durable"], help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", action="store_true", help="end with the outcomes as one JSON line")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each pair of json runs (a Pyro5 daemon, rmi's) this many times, alternating which goes "
        "first; each round's outcome is kept as NAME@ROUND, NAME is the round with the median rate",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    Pyro5.config.COMMTIMEOUT = 0
    plan = (
        {"calls": 2_000, "warmup": 0.1, "window": 0.5, "transfers": 3, "oneways": 5_000, "batches": 2}
        if args.quick
        else {"calls": 20_000, "warmup": 0.3, "window": 2.0, "transfers": 10, "oneways": 50_000, "batches": 10}
    )
    runs = [
        ("seq.serpent", lambda: seq("serpent", False, plan)),
        ("seq.serpent.pinned", lambda: seq("serpent", True, plan)),
        ("seq.msgpack", lambda: seq("msgpack", False, plan)),
        ("seq.msgpack.pinned", lambda: seq("msgpack", True, plan)),
        ("clients8", lambda: clients(8, plan)),
        ("oneway", lambda: oneway(plan)),
        ("batch", lambda: batch(plan)),
        ("payload", lambda: payload(plan)),
        ("lookup.seq", lambda: lookups(plan, 1)),
        ("lookup.threads8", lambda: lookups(plan, 8)),
        ("register.seq", lambda: registrations(plan, 1)),
        ("register.threads8", lambda: registrations(plan, 8)),
        ("json.seq", lambda: json_seq(pyro_server, False, plan)),
        ("json.seq.pinned", lambda: json_seq(pyro_server, True, plan)),
        ("json.clients8", lambda: json_clients(pyro_server, 8, plan)),
        ("json.procs8", lambda: json_processes(pyro_server, 8, plan)),
    ]
    if os.environ.get("RMI_BENCH_BIN"):
        # The same Pyro5 client, calling rmi's daemon through its Pyro5 door.
        runs += [
            ("json.seq.rmi", lambda: json_seq(RmiServer, False, plan)),
            ("json.seq.pinned.rmi", lambda: json_seq(RmiServer, True, plan)),
            ("json.clients8.rmi", lambda: json_clients(RmiServer, 8, plan)),
            ("json.procs8.rmi", lambda: json_processes(RmiServer, 8, plan)),
        ]
    only = os.environ.get("BENCH_PYRO_ONLY")
    if only:
        runs = [(n, r) for n, r in runs if n in only.split(",")]
    # The same client against the two daemons: pairs run side by side, in
    # rounds, each round in the other order, so that a machine growing
    # busier or quieter favours neither daemon.
    pairs = {n: n + ".rmi" for n, _ in runs if n.startswith("json.") and any(m == n + ".rmi" for m, _ in runs)}
    paired = set(pairs) | set(pairs.values())
    by_name = dict(runs)
    results = {}

    def report(name, result):
        rate = result["ops"] / result["secs"]
        extra = ""
        if result["p50_us"] is not None:
            extra = f"   p50 {result['p50_us']:7.1f} µs   p99 {result['p99_us']:7.1f} µs"
        if result["bytes"]:
            extra += f"   {result['bytes'] / 1e6 / result['secs']:8.0f} MB/s"
        print(f"pyro.{name:<20}{rate:12.0f} ops/s{extra}", file=sys.stderr, flush=True)

    for name, run in runs:
        if name in paired:
            continue
        results[name] = run()
        report(name, results[name])
    rounds = max(1, args.rounds)
    for first, second in pairs.items():
        samples = {first: [], second: []}
        for r in range(rounds):
            for name in [first, second] if r % 2 == 0 else [second, first]:
                result = by_name[name]()
                samples[name].append(result)
                if rounds > 1:
                    results[f"{name}@{r}"] = result
                report(name if rounds == 1 else f"{name}@{r}", result)
        for name, outcomes in samples.items():
            results[name] = sorted(outcomes, key=lambda o: o["ops"] / o["secs"])[len(outcomes) // 2]
    # The name server's best: one client, or eight.
    rate = lambda n: results[n]["ops"] / results[n]["secs"]
    for best_of, pair in [("lookup", ("lookup.seq", "lookup.threads8")), ("register", ("register.seq", "register.threads8"))]:
        if all(n in results for n in pair):
            results[best_of] = results[max(pair, key=rate)]
    print(f"Pyro5 {Pyro5.__version__}, Python {sys.version.split()[0]}", file=sys.stderr)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
