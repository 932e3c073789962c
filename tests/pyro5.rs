//! Python's own Pyro5 (5.17, json serializer) calling objects of an rmi
//! daemon that speaks Pyro5 beside rmi, on the same port.

// The exposed type is the test's own: its methods need no docs.
#![allow(unreachable_pub, missing_docs)]

mod common;
#[path = "common/pyro5.rs"]
mod pyro5_venv;

use std::sync::Mutex;
use std::time::Duration;

use common::{TestDaemon, builder};
use pyro5_venv::run_python;
use rmi::Pyro5Mode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Default)]
struct Shapes {
    heard: Mutex<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no shape called {0:?}")]
struct NoShape(String, #[source] std::fmt::Error);

#[rmi::expose]
impl Shapes {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub async fn greet(&self, name: String) -> String {
        tokio::time::sleep(Duration::from_millis(1)).await;
        format!("Hello, {name}!")
    }

    pub fn midpoint(&self, a: Point, b: Point) -> Point {
        Point { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }
    }

    pub fn find(&self, name: String) -> Result<Point, NoShape> {
        Err(NoShape(name, std::fmt::Error))
    }

    pub fn names(&self, count: u32) -> Vec<String> {
        (0..count).map(|i| format!("shape{i}")).collect()
    }

    pub fn nothing(&self) {}

    /// Answers after `ms` milliseconds.
    pub async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    #[rmi::oneway]
    pub fn hear(&self, what: String) {
        self.heard.lock().unwrap().push(what);
    }

    pub fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }

    pub fn crash(&self) -> u32 {
        panic!("the shape broke")
    }

    /// `0..n`, streamed.
    pub async fn count(&self, n: u32) -> rmi::Stream<u32> {
        rmi::Stream::iter(0..n)
    }

    /// Points, then a failure after `n` of them.
    pub async fn points_then_fail(&self, n: i64) -> rmi::Stream<Point> {
        let items = (0..=n).map(move |i| {
            if i < n {
                Ok(Point { x: i, y: -i })
            } else {
                Err(NoShape(format!("point {i}"), std::fmt::Error))
            }
        });
        rmi::Stream::try_new(futures::stream::iter(items))
    }
}

async fn shapes_daemon(mode: Pyro5Mode) -> (TestDaemon, u16) {
    let d = TestDaemon::start(builder().pyro5(mode)).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let port = match d.daemon.location() {
        rmi::Location::Tcp(hp) => hp.port,
        other => panic!("not TCP: {other}"),
    };
    (d, port)
}

async fn python(script: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(script, &args, Duration::from_secs(60))
    })
    .await
    .unwrap()
}

const CALLS: &str = r#"
import json, sys
import Pyro5.api, Pyro5.errors
from Pyro5 import config
config.SERIALIZER = sys.argv[2]
uri = "PYRO:shapes@127.0.0.1:" + sys.argv[1]
out = {}
with Pyro5.api.Proxy(uri) as p:
    p._pyroBind()
    out["methods"] = sorted(p._pyroMethods)
    out["oneway"] = sorted(p._pyroOneway)
    out["add"] = p.add(2, 40)
    out["greet"] = p.greet("Pyro")
    out["midpoint"] = p.midpoint({"x": 0, "y": 10}, {"x": 4, "y": 20})
    out["names"] = p.names(3)
    out["nothing"] = p.nothing()
    for name, call in [("find", lambda: p.find("circle")), ("crash", lambda: p.crash()),
                       ("bad_args", lambda: p.add("two", 3)), ("kwargs", lambda: p.add(a=1, b=2)),
                       ("missing", lambda: p._pyroInvoke("nosuch", (), {}))]:
        try:
            call()
            out[name] = "no error"
        except Exception as e:
            out[name] = [type(e).__name__, str(e), "".join(Pyro5.errors.get_pyro_traceback(type(e), e, e.__traceback__))]
    p.hear("one")
    p.hear("two")
    import time
    for _ in range(250):
        out["heard"] = sorted(p.heard())
        if len(out["heard"]) == 2:
            break
        time.sleep(0.02)
    p._pyroBind()
    with Pyro5.api.BatchProxy(p) as batch:
        batch.add(1, 2)
        batch.greet("batch")
        batch.find("square")
        batch.add(5, 5)
        results = batch()
        got = []
        try:
            for r in results:
                got.append(r)
        except Exception as e:
            got.append([type(e).__name__, str(e)])
        out["batch"] = got
with Pyro5.api.Proxy("PYRO:Pyro.Daemon@127.0.0.1:" + sys.argv[1]) as d:
    out["ping"] = d.ping()
    out["registered"] = sorted(d.registered())
    out["metadata"] = d.get_metadata("shapes")["oneway"]
try:
    with Pyro5.api.Proxy("PYRO:nobody@127.0.0.1:" + sys.argv[1]) as p:
        p._pyroBind()
    out["nobody"] = "bound"
except Pyro5.errors.CommunicationError as e:
    out["nobody"] = str(e)
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_pyro5_client_calls_an_rmi_object() {
    for serializer in ["json", "serpent"] {
        let (d, port) = shapes_daemon(Pyro5Mode::On).await;
        calls(port, serializer).await;
        d.stop().await;
    }
}

/// The calls of `CALLS` with Pyro5's `serializer` (json, or serpent, its
/// default), and what they must give.
async fn calls(port: u16, serializer: &str) {
    let out = python(CALLS, vec![port.to_string(), serializer.to_owned()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    let methods: Vec<&str> = out["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(
        methods,
        [
            "add",
            "count",
            "crash",
            "find",
            "greet",
            "hear",
            "heard",
            "midpoint",
            "names",
            "nothing",
            "points_then_fail",
            "slow"
        ]
    );
    assert_eq!(out["oneway"], serde_json::json!(["hear"]));
    assert_eq!(out["add"], 42);
    assert_eq!(out["greet"], "Hello, Pyro!");
    assert_eq!(out["midpoint"], serde_json::json!({"x": 2, "y": 15}));
    assert_eq!(out["names"], serde_json::json!(["shape0", "shape1", "shape2"]));
    assert_eq!(out["nothing"], serde_json::Value::Null);
    // Errors arrive as Python exceptions, with the message and the chain.
    assert_eq!(out["find"][0], "RuntimeError");
    assert_eq!(out["find"][1], "no shape called \"circle\"");
    let traceback = out["find"][2].as_str().unwrap();
    assert!(traceback.contains("shapes.find") && traceback.contains("an error occurred"), "{traceback}");
    assert_eq!(out["crash"][0], "RuntimeError");
    assert!(out["crash"][1].as_str().unwrap().contains("the shape broke"), "{}", out["crash"]);
    assert_eq!(out["bad_args"][0], "TypeError");
    assert!(out["bad_args"][1].as_str().unwrap().contains("add"), "{}", out["bad_args"]);
    assert_eq!(out["kwargs"][0], "TypeError");
    assert_eq!(out["missing"][0], "AttributeError");
    // Oneway calls ran (on their own, as Pyro5's run in threads of their own).
    assert_eq!(out["heard"], serde_json::json!(["one", "two"]));
    // A batch stops at its first failure, as in Pyro5.
    assert_eq!(out["batch"][0], 3);
    assert_eq!(out["batch"][1], "Hello, batch!");
    assert_eq!(out["batch"][2][0], "RuntimeError");
    assert_eq!(out["batch"].as_array().unwrap().len(), 3, "{}", out["batch"]);
    assert_eq!(out["ping"], serde_json::Value::Null);
    assert!(out["registered"].as_array().unwrap().iter().any(|id| id == "shapes"));
    assert_eq!(out["metadata"], serde_json::json!(["hear"]));
    assert!(out["nobody"].as_str().unwrap().contains("unknown object"), "{}", out["nobody"]);
    // rmi's own clients use the same port all along.
    let proxy = rmi::Proxy::connect(&format!("RMI:shapes@127.0.0.1:{port}")).await.unwrap();
    let sum: i64 = proxy.call("add", &(1i64, 2i64)).await.unwrap();
    assert_eq!(sum, 3);
}

const REFUSED: &str = r#"
import json, os, sys
import Pyro5.api, Pyro5.errors
out = []
for serializer in sys.argv[2:]:
    try:
        with Pyro5.api.Proxy("PYRO:shapes@127.0.0.1:" + sys.argv[1]) as p:
            p._pyroSerializer = serializer
            out.append(["answered", p.add(1, 2)])
    except Exception as e:
        out.append([type(e).__name__, str(e)])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_marshal_is_told_to_use_json_and_one_on_serpent_is_served() {
    let (d, port) = shapes_daemon(Pyro5Mode::On).await;
    let out =
        python(REFUSED, vec![port.to_string(), "marshal".into(), "json".into(), "serpent".into()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out[0][0], "CommunicationError", "{out}");
    assert!(out[0][1].as_str().unwrap().contains("PYRO_SERIALIZER=json"), "{out}");
    assert_eq!(out[1], serde_json::json!(["answered", 3]));
    assert_eq!(out[2], serde_json::json!(["answered", 3]));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyro5_is_off_unless_asked_and_refused_beside_a_key_unless_said_knowingly() {
    // Off by default: a Pyro5 client meets rmi's handshake and is closed.
    let (d, port) = shapes_daemon(Pyro5Mode::Off).await;
    let out = python(REFUSED, vec![port.to_string(), "json".into()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_ne!(out[0][0], "answered", "{out}");
    d.stop().await;
    // Beside a shared key: refused, unless the operator says so.
    let key = rmi::Key::new(b"pyro5 test key".to_vec());
    let refused = builder().key(Some(key.clone())).pyro5(Pyro5Mode::On).bind("127.0.0.1:0").await;
    let e = refused.expect_err("Pyro5 beside a key without TLS is refused");
    assert!(e.to_string().contains("RMI_PYRO5") && e.to_string().contains("beside-key"), "{e}");
    let d = TestDaemon::start(builder().key(Some(key.clone())).pyro5(Pyro5Mode::BesideKey)).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location().clone() else { panic!("not TCP") };
    let out = python(REFUSED, vec![hp.port.to_string(), "json".into()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out[0], serde_json::json!(["answered", 3]));
    // rmi's clients still need the key.
    assert!(rmi::Proxy::connect(&format!("RMI:shapes@127.0.0.1:{}", hp.port)).await.is_err());
    d.stop().await;
}

/// Refuses calls of `crash`, and counts the calls it saw.
struct Guard(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rmi::Hooks for Guard {
    fn before_call(&self, call: &rmi::CallInfo<'_>) -> Result<(), String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if call.method == "crash" { Err("crash is not for Python".into()) } else { Ok(()) }
    }
}

const GUARDED: &str = r#"
import json, sys
import Pyro5.api
with Pyro5.api.Proxy("PYRO:shapes@127.0.0.1:" + sys.argv[1]) as p:
    out = [p.add(1, 1)]
    try:
        p.crash()
    except Exception as e:
        out.append([type(e).__name__, str(e)])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_hooks_see_and_refuse_pyro5_calls_too() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = TestDaemon::start(builder().pyro5(Pyro5Mode::On).hooks(Guard(seen.clone()))).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location().clone() else { panic!("not TCP") };
    let out = python(GUARDED, vec![hp.port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out[0], 2);
    assert_eq!(out[1][0], "SecurityError");
    assert!(out[1][1].as_str().unwrap().contains("crash is not for Python"), "{out}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    d.stop().await;
}

const GREET: &str = r#"
import sys
import Pyro5.api
with Pyro5.api.Proxy(sys.argv[1]) as greeting:
    print(greeting.welcome_message("Ruvika"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_greeting_example_serves_python_with_rmi_pyro5_on() {
    // No name server here: the example prints its URI and serves on.
    let env = [("RMI_PYRO5", "on"), ("RMI_NS_HOST", "127.0.0.1"), ("RMI_NS_PORT", "1")];
    let mut server = common::spawn_example("greeting_server", &["127.0.0.1:0"], &env);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let uri = ready.trim_start_matches("Ready. Object uri = ").replacen("RMI:", "PYRO:", 1);
    let out = python(GREET, vec![uri]).await;
    assert_eq!(out, "Hi welcome Ruvika\n");
}

const NAME_SERVER: &str = r#"
import json, subprocess, sys
import Pyro5.api
from Pyro5 import config
port = int(sys.argv[1])
out = {}
ns = Pyro5.api.locate_ns("127.0.0.1", port)
out["ping"] = ns.ping()
out["count"] = ns.count()
out["lookup"] = str(ns.lookup("example.greeting"))
uri, meta = ns.lookup("example.greeting", return_metadata=True)
out["lookup_meta"] = [str(uri), sorted(meta)]
ns.register("py.thing", "PYRO:thing@127.0.0.1:4444", metadata={"class:py", "lang:python"})
ns.register("py.other", Pyro5.api.URI("PYRO:other@127.0.0.1:4445"))
try:
    ns.register("py.thing", "PYRO:elsewhere@127.0.0.1:1", safe=True)
    out["safe"] = "replaced"
except Exception as e:
    out["safe"] = type(e).__name__
out["list"] = ns.list()
out["list_prefix_meta"] = {k: [v[0], sorted(v[1])] for k, v in ns.list(prefix="py.", return_metadata=True).items()}
out["list_regex"] = sorted(ns.list(regex=r"py\..*"))
out["yp_all"] = sorted(ns.yplookup(meta_all=["class:py", "lang:python"]))
out["yp_any"] = sorted(ns.yplookup(meta_any=["lang:python", "none"], return_metadata=False))
ns.set_metadata("py.other", {"class:py"})
out["yp_after"] = sorted(ns.yplookup(meta_all=["class:py"]))
out["removed"] = ns.remove(prefix="py.o")
try:
    ns.lookup("nothing")
    out["missing"] = "found"
except Exception as e:
    out["missing"] = [type(e).__name__, str(e)]
config.NS_HOST = "127.0.0.1"
config.NS_PORT = port
with Pyro5.api.Proxy("PYRONAME:example.greeting") as greeting:
    out["pyroname"] = greeting.welcome_message("Pyro")
nsc = subprocess.run([sys.executable, "-m", "Pyro5.nsc", "-n", "127.0.0.1", "-p", str(port), "list"],
                     capture_output=True, text=True, timeout=30)
out["nsc_list"] = nsc.stdout
nsc = subprocess.run([sys.executable, "-m", "Pyro5.nsc", "-n", "127.0.0.1", "-p", str(port), "remove", "py.thing"],
                     capture_output=True, text=True, timeout=30)
out["nsc_remove"] = [nsc.returncode, nsc.stdout]
out["count_after"] = ns.count()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_finds_rmi_objects_through_rmi_naming_with_pyro5s_own_tools() {
    let ns = common::spawn_name_server_with(&[], &[("RMI_PYRO5", "on")]).await;
    let env = common::name_server_env(ns.port);
    let mut env = common::env_refs(&env);
    env.push(("RMI_PYRO5", "on"));
    let mut server = common::spawn_example("greeting_server", &["127.0.0.1:0"], &env);
    let mut lines = server.lines();
    let ready = server.wait_for_line(&mut lines, |l| l.starts_with("Ready. Object uri = ")).await;
    let rmi_uri = ready.trim_start_matches("Ready. Object uri = ").to_owned();
    let pyro_uri = rmi_uri.replacen("RMI:", "PYRO:", 1);
    let out = python(NAME_SERVER, vec![ns.port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    assert_eq!(out["ping"], serde_json::Value::Null);
    assert_eq!(out["count"], 1);
    assert_eq!(out["lookup"], pyro_uri);
    assert_eq!(out["lookup_meta"], serde_json::json!([pyro_uri, []]));
    assert_eq!(out["safe"], "NamingError");
    assert_eq!(
        out["list"],
        serde_json::json!({
            "example.greeting": pyro_uri,
            "py.other": "PYRO:other@127.0.0.1:4445",
            "py.thing": "PYRO:thing@127.0.0.1:4444",
        })
    );
    // rmi's own protocol tag stays out of what Python sees.
    assert_eq!(
        out["list_prefix_meta"],
        serde_json::json!({
            "py.other": ["PYRO:other@127.0.0.1:4445", []],
            "py.thing": ["PYRO:thing@127.0.0.1:4444", ["class:py", "lang:python"]],
        })
    );
    assert_eq!(out["list_regex"], serde_json::json!(["py.other", "py.thing"]));
    assert_eq!(out["yp_all"], serde_json::json!(["py.thing"]));
    assert_eq!(out["yp_any"], serde_json::json!(["py.thing"]));
    assert_eq!(out["yp_after"], serde_json::json!(["py.other", "py.thing"]));
    assert_eq!(out["removed"], 1);
    assert_eq!(out["missing"][0], "NamingError");
    assert_eq!(out["pyroname"], "Hi welcome Pyro");
    let nsc = out["nsc_list"].as_str().unwrap();
    assert!(nsc.contains(&format!("example.greeting --> {pyro_uri}")), "{nsc}");
    assert!(nsc.contains("py.thing --> PYRO:thing@127.0.0.1:4444"), "{nsc}");
    assert_eq!(out["nsc_remove"][0], 0, "{}", out["nsc_remove"]);
    assert_eq!(out["count_after"], 1);
    // rmi's side sees the same names: what Python registered is marked as
    // Pyro5's, what rmi registered is as it was.
    let client = rmi::NameServerProxy::new(ns.uri.as_str()).unwrap();
    assert_eq!(client.lookup("example.greeting").await.unwrap().to_string(), rmi_uri);
    assert!(client.lookup("py.thing").await.is_err(), "removed by Pyro5.nsc");
}

const PYTHON_DAEMON: &str = r#"
import sys
import Pyro5.api
from Pyro5 import config
config.SERIALIZER = "json"

@Pyro5.api.expose
class Thing:
    def __init__(self):
        self.heard = []
    def add(self, a, b):
        return a + b
    def greet(self, name):
        return "Hello from Python, " + name
    def point(self, x, y):
        return {"x": x, "y": y}
    def fail(self, what):
        raise ValueError("bad " + what)
    @Pyro5.api.oneway
    def hear(self, what):
        self.heard.append(what)
    def heard_all(self):
        return self.heard

daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
uri = daemon.register(Thing(), "thing")
if len(sys.argv) > 1:
    ns = Pyro5.api.locate_ns("127.0.0.1", int(sys.argv[1]))
    ns.register("py.thing", uri, metadata={"lang:python"})
print("URI", uri, flush=True)
daemon.requestLoop()
"#;

/// A Python Pyro5 daemon (killed when dropped) and its object's URI; it
/// registers in the name server on `ns_port` if given.
async fn python_daemon(ns_port: Option<u16>) -> (tokio::process::Child, String) {
    python_daemon_with(ns_port, &[]).await
}

/// As [`python_daemon`], with `env` (`PYRO_*` settings) for the Python process.
async fn python_daemon_with(ns_port: Option<u16>, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let python = tokio::task::spawn_blocking(pyro5_venv::python).await.unwrap();
    let mut command = tokio::process::Command::new(python);
    command.arg("-c").arg(PYTHON_DAEMON).envs(env.iter().copied());
    if let Some(port) = ns_port {
        command.arg(port.to_string());
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python daemon");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(common::PATIENCE, lines.next_line())
        .await
        .expect("the Python daemon started in time")
        .unwrap()
        .expect("the Python daemon printed its URI");
    let uri = line.strip_prefix("URI ").expect("a URI line").to_owned();
    (child, uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmi_proxy_calls_a_python_pyro5_daemon() {
    let (_python, uri) = python_daemon(None).await;
    assert!(uri.starts_with("PYRO:thing@127.0.0.1:"), "{uri}");
    let proxy = rmi::Proxy::new(uri.as_str()).unwrap();
    assert_eq!(proxy.call::<i64>("add", (2i64, 40i64)).await.unwrap(), 42);
    assert_eq!(proxy.call::<String>("greet", ("rmi",)).await.unwrap(), "Hello from Python, rmi");
    assert_eq!(proxy.call::<Point>("point", (3i64, -4i64)).await.unwrap(), Point { x: 3, y: -4 });
    // The Python exception's type and message, its traceback as the chain.
    let e = proxy.call::<()>("fail", ("input",)).await.unwrap_err();
    let rmi::Error::Remote(remote) = &e else { panic!("not a remote error: {e:?}") };
    assert_eq!(remote.message(), "ValueError: bad input");
    let chain: Vec<&str> = remote.chain().collect();
    assert!(chain.iter().any(|line| line.contains("Traceback")), "{chain:?}");
    let e = proxy.call::<()>("nosuch", ()).await.unwrap_err();
    assert!(matches!(e, rmi::Error::MethodNotFound(_)), "{e:?}");
    // A result of another shape than asked for is a clear error.
    let e = proxy.call::<Point>("greet", ("x",)).await.unwrap_err();
    assert!(matches!(e, rmi::Error::Serialization(_)), "{e:?}");
    // Oneway calls, then the call that sees them.
    proxy.call_oneway("hear", ("one",)).await.unwrap();
    proxy.call_oneway("hear", ("two",)).await.unwrap();
    let mut heard: Vec<String> = Vec::new();
    for _ in 0..250 {
        heard = proxy.call("heard_all", ()).await.unwrap();
        if heard.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    heard.sort();
    assert_eq!(heard, ["one", "two"]);
    // An unknown object: refused at the handshake.
    let wrong = rmi::Proxy::new(uri.replace("thing", "nothing").as_str()).unwrap();
    let e = wrong.call::<i64>("add", (1i64, 2i64)).await.unwrap_err();
    assert!(matches!(e, rmi::Error::ObjectNotFound(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_daemon_registered_in_rmi_naming_is_called_by_name() {
    let ns = common::spawn_name_server_with(&[], &[("RMI_PYRO5", "on")]).await;
    let (_python, uri) = python_daemon(Some(ns.port)).await;
    // The name server keeps what Python registered, marked as Pyro5's.
    let client = rmi::NameServerProxy::new(ns.uri.as_str()).unwrap();
    let found = client.lookup_registration("py.thing").await.unwrap();
    assert_eq!(found.uri.to_string().replacen("RMI:", "PYRO:", 1), uri);
    assert!(found.metadata.contains(rmi_proxy::PYRO5_TAG) && found.metadata.contains("lang:python"));
    // An rmi proxy of the name calls the Python object through Pyro5.
    let by_name = rmi::Proxy::new(format!("RMINAME:py.thing@127.0.0.1:{}", ns.port).as_str()).unwrap();
    assert_eq!(by_name.call::<i64>("add", (20i64, 22i64)).await.unwrap(), 42);
    assert_eq!(by_name.call::<String>("greet", ("by name",)).await.unwrap(), "Hello from Python, by name");
    // So does a yellow-pages lookup.
    let by_tag = rmi::Proxy::new(format!("RMIMETA:lang:python@127.0.0.1:{}", ns.port).as_str()).unwrap();
    assert_eq!(by_tag.call::<i64>("add", (1i64, 1i64)).await.unwrap(), 2);
}

const PYTHON_CHAIN_LINK: &str = r#"
import sys
import Pyro5.api
from Pyro5 import config
config.SERIALIZER = "json"
config.NS_HOST = "127.0.0.1"
config.NS_PORT = int(sys.argv[1])
NAME = "example.chainTopology.2"

@Pyro5.api.expose
class Link:
    def process(self, message):
        if NAME in message:
            print("Back at 2; the chain is closed!", flush=True)
            return ["complete at 2"]
        print("2 forwarding the message to the object 3", flush=True)
        message.append(NAME)
        with Pyro5.api.Proxy("PYRONAME:example.chainTopology.3") as next_link:
            result = next_link.process(message)
        result.insert(0, "passed on from 2")
        return result

daemon = Pyro5.api.Daemon(host="127.0.0.1")
uri = daemon.register(Link(), NAME)
Pyro5.api.locate_ns().register(NAME, uri)
print("Server 2 ready:", uri, flush=True)
daemon.requestLoop()
"#;

/// The chain topology with its second server written in Python: rmi's
/// server 1 calls it by name (through Pyro5), it calls rmi's server 3 by
/// `PYRONAME:` (through rmi-naming and the daemon's Pyro5 door), and server
/// 3 closes the chain at server 1 over rmi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_topology_runs_with_one_server_in_python() {
    use tokio::io::AsyncBufReadExt;
    let ns = common::spawn_name_server_with(&[], &[("RMI_PYRO5", "on")]).await;
    let env = common::name_server_env(ns.port);
    let mut env = common::env_refs(&env);
    env.push(("RMI_PYRO5", "on"));
    let mut servers = Vec::new();
    for (n, next) in [("1", "2"), ("3", "1")] {
        let mut server = common::spawn_example("chain_server", &[n, next], &env);
        let mut lines = server.lines();
        server.wait_for_line(&mut lines, |l| l.starts_with(&format!("Server {n} ready"))).await;
        servers.push((server, lines));
    }
    let python = tokio::task::spawn_blocking(pyro5_venv::python).await.unwrap();
    let mut link = tokio::process::Command::new(python)
        .arg("-c")
        .arg(PYTHON_CHAIN_LINK)
        .arg(ns.port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python link");
    let mut python_lines = tokio::io::BufReader::new(link.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(common::PATIENCE, python_lines.next_line()).await.unwrap().unwrap();
    assert!(ready.as_deref().is_some_and(|l| l.starts_with("Server 2 ready: PYRO:")), "{ready:?}");

    let client = common::spawn_example("chain_client", &[], &env);
    let (status, out) = client.output().await;
    assert!(status.success(), "{status}: {out}");
    let result = out.lines().find(|l| l.starts_with("Result=")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        result,
        r#"Result=["passed on from 1", "passed on from 2", "passed on from 3", "complete at 1"]"#
    );
    let said = tokio::time::timeout(common::PATIENCE, python_lines.next_line()).await.unwrap().unwrap();
    assert_eq!(said.as_deref(), Some("2 forwarding the message to the object 3"));
}

const OVER_TLS: &str = r#"
import json, sys
import Pyro5.api, Pyro5.errors
from Pyro5 import config
port, certs, with_cert = sys.argv[1], sys.argv[2], sys.argv[3] == "cert"
config.SSL = True
config.SSL_CACERTS = certs + "/ca.pem"
if with_cert:
    config.SSL_CLIENTCERT = certs + "/client.pem"
    config.SSL_CLIENTKEY = certs + "/client.key"
try:
    with Pyro5.api.Proxy("PYRO:shapes@127.0.0.1:" + port) as p:
        out = ["answered", p.add(20, 22)]
except Exception as e:
    out = [type(e).__name__, str(e)]
print(json.dumps(out))
"#;

/// Pyro5's own TLS (`SSL=True`, with a client certificate) to a daemon on
/// mutual TLS: served; without a client certificate: refused by TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyro5_client_on_mutual_tls_is_served_and_one_without_a_certificate_is_not() {
    let dir = tempfile::tempdir().unwrap();
    rmi_naming::devcerts::write_dev_files(dir.path(), &["localhost", "127.0.0.1", "::1"], 1).unwrap();
    let file = |name: &str| dir.path().join(name);
    let tls = rmi::tls::ServerTls::from_pem_files(
        &file("server.pem"),
        &file("server.key"),
        Some(&file("ca.pem")),
        true,
    )
    .unwrap();
    // TLS stands in for the key Pyro5 lacks: a key beside it is allowed.
    let key = rmi::Key::new(b"pyro5 over tls".to_vec());
    let d = TestDaemon::start(builder().tls(Some(tls)).key(Some(key)).pyro5(Pyro5Mode::On)).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location().clone() else { panic!("not TCP") };
    // (Each in its own process: Pyro5 keeps its first TLS context.)
    let certs = dir.path().display().to_string();
    let out = python(OVER_TLS, vec![hp.port.to_string(), certs.clone(), "cert".into()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out, serde_json::json!(["answered", 42]));
    let out = python(OVER_TLS, vec![hp.port.to_string(), certs, "none".into()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_ne!(out[0], "answered", "{out}");
    d.stop().await;
}

const STREAMS: &str = r#"
import json, sys
import Pyro5.api
uri = "PYRO:shapes@127.0.0.1:" + sys.argv[1]
out = {}
with Pyro5.api.Proxy(uri) as p:
    out["count"] = list(p.count(5))
    out["empty"] = list(p.count(0))
    out["many"] = sum(1 for _ in p.count(3000))
    got = []
    try:
        for point in p.points_then_fail(3):
            got.append(point)
    except Exception as e:
        got.append([type(e).__name__, str(e)])
    out["failing"] = got
    # Read two, close it, and the connection serves on.
    it = p.count(1000)
    out["first_two"] = [next(it), next(it)]
    it.close()
    out["after_close"] = p.add(1, 2)
    try:
        out["again"] = list(p.count(2))
    except Exception as e:
        out["again"] = [type(e).__name__, str(e)]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmi_streams_reach_python_as_pyro5_iterators() {
    let (d, port) = shapes_daemon(Pyro5Mode::On).await;
    let out = python(STREAMS, vec![port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    assert_eq!(out["count"], serde_json::json!([0, 1, 2, 3, 4]));
    assert_eq!(out["empty"], serde_json::json!([]));
    assert_eq!(out["many"], 3000);
    assert_eq!(
        out["failing"],
        serde_json::json!([{"x": 0, "y": 0}, {"x": 1, "y": -1}, {"x": 2, "y": -2}, ["RuntimeError", "no shape called \"point 3\""]])
    );
    assert_eq!(out["first_two"], serde_json::json!([0, 1]));
    assert_eq!(out["after_close"], 3);
    assert_eq!(out["again"], serde_json::json!([0, 1]));
    d.stop().await;
}

const OVERSIZED: &str = r#"
import json, sys
import Pyro5.api
uri = "PYRO:shapes@127.0.0.1:" + sys.argv[1]
out = {}
with Pyro5.api.Proxy(uri) as p:
    out["one_mib"] = len(p.greet("x" * (1 << 20)))
try:
    with Pyro5.api.Proxy(uri) as p:
        p.greet("x" * (3 << 20))
    out["three_mib"] = "answered"
except Exception as e:
    out["three_mib"] = type(e).__name__
with Pyro5.api.Proxy(uri) as p:
    out["after"] = p.add(1, 1)
print(json.dumps(out))
"#;

/// A Pyro5 message over the Pyro5 bound (2 MiB: its json is parsed whole)
/// closes its connection; the daemon serves the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_pyro5_message_is_refused_and_others_are_served() {
    let (d, port) = shapes_daemon(Pyro5Mode::On).await;
    let out = python(OVERSIZED, vec![port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out["one_mib"], (1 << 20) + "Hello, !".len());
    assert_ne!(out["three_mib"], "answered", "{out}");
    assert_eq!(out["after"], 2);
    d.stop().await;
}

const DISCOVER: &str = r#"
import json, sys
import Pyro5.api
from Pyro5 import config
config.BROADCAST_ADDRS = ["127.0.0.1"]
ns = Pyro5.api.locate_ns(port=int(sys.argv[1]))
print(json.dumps([str(ns._pyroUri), ns.count()]))
"#;

/// Pyro5's `locate_ns()` finds `rmi-naming` by its UDP discovery (the same
/// `GET_NSURI` question rmi's clients ask), and rmi's clients still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyro5s_locate_ns_discovers_rmi_naming_and_so_do_rmi_clients() {
    let mut config = rmi::Config::default();
    config.pyro5 = Pyro5Mode::On;
    let mut options = rmi_naming::NameServerOptions::from_config(&config);
    options.port = 0;
    options.broadcast_port = Some(0);
    let ns = rmi_naming::start(options).await.unwrap();
    let bcport = ns.discovery_address().unwrap().port();
    let rmi::Location::Tcp(at) = ns.uri().location.clone() else { panic!("tcp") };
    let out = python(DISCOVER, vec![bcport.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out, serde_json::json!([format!("PYRO:Pyro.NameServer@{at}"), 0]));
    let mut client = rmi::Config::default();
    client.ns_bcport = bcport;
    let found = rmi_proxy::locate_ns_with(&client, None).await.unwrap();
    assert_eq!(found.uri().to_string(), ns.uri().to_string());
    assert_eq!(found.count().await.unwrap(), 0);
    ns.stop().await.unwrap();
}

/// Counts its own calls: one per Pyro5 connection when made per session.
#[derive(Debug, Default)]
pub struct Tally(std::sync::atomic::AtomicU32);

#[rmi::expose]
impl Tally {
    pub fn next(&self) -> u32 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

const SESSIONS: &str = r#"
import json, sys
import Pyro5.api
uri = "PYRO:tally@127.0.0.1:" + sys.argv[1]
with Pyro5.api.Proxy(uri) as a, Pyro5.api.Proxy(uri) as b:
    out = [a.next(), a.next(), b.next(), a.next(), b.next()]
with Pyro5.api.Proxy(uri) as c:
    out.append(c.next())
print(json.dumps(out))
"#;

/// An object made per connection (`InstanceMode::Session`) has one instance
/// per Pyro5 connection, as Pyro5's `instance_mode="session"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_objects_have_an_instance_per_pyro5_connection() {
    let d = TestDaemon::start(builder().pyro5(Pyro5Mode::On)).await;
    d.daemon.register_factory(rmi::InstanceMode::Session, Tally::default, Some("tally")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location().clone() else { panic!("not TCP") };
    let out = python(SESSIONS, vec![hp.port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out, serde_json::json!([1, 2, 1, 3, 2, 1]));
    d.stop().await;
}

const COMPRESSED_CALLS: &str = r#"
import json, sys
import Pyro5.api
from Pyro5 import config
config.SERIALIZER = "json"
config.COMPRESSION = True
long = "x" * 5000
with Pyro5.api.Proxy("PYRO:shapes@127.0.0.1:" + sys.argv[1]) as p:
    print(json.dumps({"greet": p.greet(long), "names": p.names(200)}))
"#;

/// Pyro5's `COMPRESSION=True` both ways: a Python client's compressed
/// calls are read by an rmi daemon, and a Python daemon's compressed
/// replies by an rmi proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_pyro5_messages_are_read_both_ways() {
    let (d, port) = shapes_daemon(Pyro5Mode::On).await;
    let out = python(COMPRESSED_CALLS, vec![port.to_string()]).await;
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(out["greet"], format!("Hello, {}!", "x".repeat(5000)));
    assert_eq!(out["names"].as_array().map(Vec::len), Some(200));
    d.stop().await;

    let (_python, uri) = python_daemon_with(None, &[("PYRO_COMPRESSION", "true")]).await;
    let proxy = rmi::Proxy::new(uri.as_str()).unwrap();
    let long = "rmi".repeat(2000);
    let back: String = proxy.call("greet", (long.as_str(),)).await.unwrap();
    assert_eq!(back, format!("Hello from Python, {long}"));
}

/// A Pyro5 message from `rmi_core`'s own codec, as a Pyro5 client sends it.
fn pyro5_message(kind: rmi_core::pyro5::MessageType, seq: u16, payload: &str) -> Vec<u8> {
    use rmi_core::pyro5::{Flags, Message, Serializer};
    let message =
        Message::new(kind, Serializer::Json, Flags::default(), seq, payload.as_bytes().to_vec().into());
    message.encode(1 << 20).unwrap()
}

/// Connects to the Pyro5 door and handshakes for the object `shapes`.
async fn pyro5_connection(port: u16) -> tokio::net::TcpStream {
    use rmi_core::pyro5::{MessageType, read_message};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connect = pyro5_message(MessageType::Connect, 0, r#"{"handshake": "hello", "object": "shapes"}"#);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &connect).await.unwrap();
    let ok = read_message(&mut stream, 1 << 20).await.unwrap();
    assert_eq!(ok.header.kind, MessageType::ConnectOk);
    stream
}

/// Calls arriving in pieces, or several in one write, are each answered; a
/// Pyro5 connection quiet past the idle timeout is closed, and one open
/// when the daemon shuts down does not hold the shutdown up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyro5_connections_read_calls_in_any_pieces_and_end_when_idle_or_shut_down() {
    use rmi_core::pyro5::{MessageType, read_message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idle = Duration::from_millis(400);
    let d = TestDaemon::start(builder().pyro5(Pyro5Mode::On).idle_timeout(Some(idle))).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location() else { panic!("not TCP") };
    let mut stream = pyro5_connection(hp.port).await;
    let call = |seq: u16, a: i64| {
        let body = format!(r#"{{"object": "shapes", "method": "add", "params": [{a}, 1], "kwargs": {{}}}}"#);
        pyro5_message(MessageType::Invoke, seq, &body)
    };
    // One call a byte at a time, then three in one write.
    for byte in call(1, 10) {
        stream.write_all(&[byte]).await.unwrap();
    }
    let reply = read_message(&mut stream, 1 << 20).await.unwrap();
    assert_eq!((reply.header.seq, &reply.payload[..]), (1, &b"11"[..]));
    let three: Vec<u8> = (2..5).flat_map(|seq| call(seq, i64::from(seq) * 100)).collect();
    stream.write_all(&three).await.unwrap();
    for seq in 2..5u16 {
        let reply = read_message(&mut stream, 1 << 20).await.unwrap();
        assert_eq!(reply.header.seq, seq);
        assert_eq!(reply.payload, format!("{}", i64::from(seq) * 100 + 1).into_bytes());
    }
    // A call longer than the idle timeout: answered, and the connection
    // is idle only from the answer on.
    let slow = r#"{"object": "shapes", "method": "slow", "params": [700], "kwargs": {}}"#;
    stream.write_all(&pyro5_message(MessageType::Invoke, 5, slow)).await.unwrap();
    let reply = read_message(&mut stream, 1 << 20).await.unwrap();
    assert_eq!((reply.header.seq, &reply.payload[..]), (5, &b"700"[..]));
    tokio::time::sleep(idle / 4).await;
    stream.write_all(&call(6, 1)).await.unwrap();
    let reply = read_message(&mut stream, 1 << 20).await.unwrap();
    assert_eq!((reply.header.seq, &reply.payload[..]), (6, &b"2"[..]));
    // Quiet: closed after the idle timeout, not before, and within a bound.
    let quiet = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "the idle connection was not closed: {read:?}");
    assert!(quiet.elapsed() >= idle - Duration::from_millis(50), "closed after {:?}", quiet.elapsed());
    d.stop().await;
    // A daemon without an idle timeout: a connection open (mid-message,
    // even) when it shuts down ends with the shutdown.
    let d = TestDaemon::start(builder().pyro5(Pyro5Mode::On).idle_timeout(None)).await;
    d.daemon.register(Shapes::default(), Some("shapes")).unwrap();
    let rmi::Location::Tcp(hp) = d.daemon.location() else { panic!("not TCP") };
    let mut open = pyro5_connection(hp.port).await;
    open.write_all(&call(1, 1)[..10]).await.unwrap();
    let shutting = std::time::Instant::now();
    d.stop().await;
    let read = tokio::time::timeout(Duration::from_secs(1), open.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open after the daemon shut down");
    assert!(shutting.elapsed() < Duration::from_secs(1), "the shutdown took {:?}", shutting.elapsed());
}
