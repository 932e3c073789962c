//! `rmi-naming describe NAME` (and `--json`): a registered object's type,
//! instance mode and methods with their signatures and flags, asked of its
//! daemon through the name server, from the command line; and `rmi-naming
//! call NAME METHOD JSON`, a method called with JSON arguments.

mod common;

use common::{Calculator, TestDaemon, builder, naming_bin};
use rmi::{Config, InstanceMode};
use rmi_naming::NameServerOptions;

/// A little of everything `describe` tells apart.
#[derive(Debug, Default)]
pub struct Sensor;

#[rmi::expose]
impl Sensor {
    /// One reading.
    pub fn read(&self, channel: u8) -> f64 {
        f64::from(channel)
    }

    /// Readings as they come.
    pub async fn watch(&self, channel: u8) -> rmi::Stream<f64> {
        rmi::Stream::iter([f64::from(channel)])
    }

    /// Fire and forget.
    #[rmi::oneway]
    pub fn reset(&self) {}
}

async fn describe(port: u16, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(naming_bin())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .env_remove("RMI_NS_HOST")
        .env_remove("RMI_HMAC_KEY")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(common::PATIENCE, output).await.expect("in time").expect("ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn describe_prints_methods_flags_and_instance_mode() {
    let mut options = NameServerOptions::from_config(&Config::default());
    options.port = 0;
    options.broadcast_port = None;
    let ns_server = rmi_naming::start(options).await.unwrap();
    let rmi::Location::Tcp(hp) = &ns_server.uri().location else { panic!("tcp") };
    let port = hp.port;
    let ns = rmi::NameServerProxy::new(ns_server.uri().clone()).unwrap();
    let d = TestDaemon::start(builder()).await;
    let sensor = d.daemon.register(Sensor, Some("sensor")).unwrap();
    ns.register("lab.sensor", &sensor).await.unwrap();
    let per_client =
        d.daemon.register_factory(InstanceMode::Session, Calculator::default, Some("calc")).unwrap();
    ns.register("lab.calc", &per_client).await.unwrap();

    let (ok, out, err) = describe(port, &["describe", "lab.sensor"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "lab.sensor --> {sensor}\n    type: Sensor\n    instances: single\n    methods:\n\
             \x20       fn read(&self, channel: u8) -> f64\n\
             \x20       async fn watch(&self, channel: u8) -> rmi::Stream<f64>   [stream]\n\
             \x20       fn reset(&self)   [oneway]\n"
        )
    );
    let (ok, out, err) = describe(port, &["--json", "describe", "lab.calc"]).await;
    assert!(ok, "{err}");
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(described["instance_mode"], "session");
    assert_eq!(described["uri"], per_client.to_string());
    let methods = described["methods"].as_array().unwrap();
    let add = methods.iter().find(|m| m["name"] == "add").unwrap();
    assert_eq!(add["signature"], "fn add(&self, a: i64, b: i64) -> i64");
    assert_eq!((add["oneway"].as_bool(), add["stream"].as_bool()), (Some(false), Some(false)));
    let record = methods.iter().find(|m| m["name"] == "record").unwrap();
    assert_eq!(record["oneway"], true);

    // A name nobody registered: one line, and a failure.
    let (ok, _, err) = describe(port, &["describe", "lab.nothing"]).await;
    assert!(!ok);
    assert!(err.contains("lab.nothing"), "{err}");
}

/// `rmi-naming call NAME METHOD JSON`: any method of any registered object,
/// arguments and result in JSON, errors on stderr with a non-zero exit; the
/// daemon's hooks and typing apply as to any call.
#[tokio::test]
async fn call_runs_a_method_with_json_arguments_and_prints_json() {
    let mut options = NameServerOptions::from_config(&Config::default());
    options.port = 0;
    options.broadcast_port = None;
    let ns_server = rmi_naming::start(options).await.unwrap();
    let rmi::Location::Tcp(hp) = &ns_server.uri().location else { panic!("tcp") };
    let port = hp.port;
    let ns = rmi::NameServerProxy::new(ns_server.uri().clone()).unwrap();
    let d = TestDaemon::start(builder()).await;
    let calc = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    ns.register("lab.calc", &calc).await.unwrap();
    let sensor = d.daemon.register(Sensor, Some("sensor")).unwrap();
    ns.register("lab.sensor", &sensor).await.unwrap();

    let (ok, out, err) = describe(port, &["call", "lab.calc", "add", "[40, 2]"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "42\n");
    let (ok, out, err) = describe(port, &["call", "lab.sensor", "read", "[3]"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "3.0\n");
    // Arguments default to none; a unit result is null.
    let (ok, out, err) = describe(port, &["call", "lab.calc", "nothing"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "null\n");
    // A oneway method runs too; its effect shows in the next call.
    let (ok, _, err) = describe(port, &["call", "lab.calc", "record", r#"["from the shell"]"#]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = describe(port, &["call", "lab.calc", "records"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "[\"from the shell\"]\n");
    // Errors: the method's own (with its cause), bad arguments, unknown
    // method or name, text that is not a JSON array.
    for (args, wanted) in [
        (&["call", "lab.calc", "divide", "[1, 0]"][..], "cannot divide 1 by zero"),
        (&["call", "lab.calc", "add", r#"["one", 2]"#], "fn add(&self, a: i64, b: i64) -> i64"),
        (&["call", "lab.calc", "add", "[1]"], "bad arguments"),
        (&["call", "lab.calc", "subtract", "[1, 2]"], "no exposed method \"subtract\""),
        (&["call", "lab.nothing", "add", "[1, 2]"], "no name \"lab.nothing\""),
        (&["call", "lab.calc", "add", "{\"a\": 1}"], "must be a JSON array"),
        (&["call", "lab.calc", "add", "[1, 2"], "not JSON"),
    ] {
        let (ok, out, err) = describe(port, args).await;
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
    // The daemon serves rmi's own calls as before.
    let proxy = rmi::Proxy::connect(calc.clone()).await.unwrap();
    assert_eq!(proxy.call::<i64>("add", &(1i64, 1i64)).await.unwrap(), 2);
    d.stop().await;
    ns_server.stop().await.unwrap();
}
