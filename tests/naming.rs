//! The name server in-process: its operations, name resolution in proxies,
//! discovery, keys.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Calculator, CalculatorProxy, TestDaemon, builder};
use rmi::{Config, Error, Key, MetaMatch, NameFilter, NameServerProxy, ObjectUri, Proxy};
use rmi_naming::{NameServerOptions, RunningNameServer};

/// A name server on a free port, no discovery, in memory.
async fn name_server(key: Option<Key>) -> RunningNameServer {
    let mut options = NameServerOptions::from_config(&Config::default());
    options.port = 0;
    options.broadcast_port = None;
    options.key = key;
    rmi_naming::start(options).await.expect("name server starts")
}

/// A client configuration that finds `ns` directly.
fn config_for(ns: &RunningNameServer) -> Config {
    let mut config = Config::default();
    let rmi::Location::Tcp(hp) = &ns.uri().location else { panic!("a TCP name server") };
    config.ns_hosts = vec![rmi::NsHost { host: hp.host.clone(), port: None }];
    config.ns_port = hp.port;
    config
}

fn client(ns: &RunningNameServer) -> NameServerProxy {
    NameServerProxy::from_proxy(Proxy::builder_with_config(ns.uri(), &Config::default()).build().unwrap())
}

fn uri(n: u16) -> ObjectUri {
    format!("RMI:obj{n}@127.0.0.1:{}", 1000 + n).parse().unwrap()
}

fn names(found: &[rmi::Registration]) -> Vec<&str> {
    found.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn every_operation() {
    let ns = name_server(None).await;
    let c = client(&ns);
    c.ping().await.unwrap();
    assert_eq!(c.count().await.unwrap(), 0);
    c.register("app.db", &uri(1)).await.unwrap();
    c.register_with("app.web.1", &uri(2), ["class:web", "zone:a"], false).await.unwrap();
    c.register_with("app.web.2", &uri(3), ["class:web", "zone:b"], false).await.unwrap();
    c.register_with("other", &uri(4), ["zone:a"], true).await.unwrap();
    assert_eq!(c.count().await.unwrap(), 4);

    assert_eq!(c.lookup("app.db").await.unwrap(), uri(1));
    let web1 = c.lookup_registration("app.web.1").await.unwrap();
    assert_eq!(web1.metadata, BTreeSet::from(["class:web".to_owned(), "zone:a".to_owned()]));

    assert_eq!(names(&c.list(NameFilter::All).await.unwrap()), ["app.db", "app.web.1", "app.web.2", "other"]);
    assert_eq!(
        names(&c.list(NameFilter::Prefix("app.web".into())).await.unwrap()),
        ["app.web.1", "app.web.2"]
    );
    assert_eq!(
        names(&c.list(NameFilter::Regex(r"app\.(db|web\.2)".into())).await.unwrap()),
        ["app.db", "app.web.2"]
    );
    // The whole name must match.
    assert!(c.list(NameFilter::Regex("app".into())).await.unwrap().is_empty());

    assert_eq!(names(&c.yplookup(["class:web", "zone:a"], MetaMatch::All).await.unwrap()), ["app.web.1"]);
    assert_eq!(
        names(&c.yplookup(["zone:a", "zone:b"], MetaMatch::Any).await.unwrap()),
        ["app.web.1", "app.web.2", "other"]
    );

    c.set_metadata("app.db", ["class:db"]).await.unwrap();
    assert_eq!(names(&c.yplookup(["class:db"], MetaMatch::All).await.unwrap()), ["app.db"]);

    // Registering again replaces, unless safe.
    c.register("app.db", &uri(9)).await.unwrap();
    assert_eq!(c.lookup("app.db").await.unwrap(), uri(9));
    let err = c.register_with("app.db", &uri(1), Vec::<String>::new(), true).await.unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    assert_eq!(c.lookup("app.db").await.unwrap(), uri(9));

    assert!(c.remove("other").await.unwrap());
    assert!(!c.remove("other").await.unwrap());
    assert_eq!(c.remove_matching(NameFilter::Regex(r"app\.web\.\d".into())).await.unwrap(), 2);
    assert_eq!(c.remove_matching(NameFilter::Prefix("app.".into())).await.unwrap(), 1);
    assert_eq!(c.count().await.unwrap(), 0);
    ns.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let ns = name_server(None).await;
    let c = client(&ns);
    for (bad, says) in [("", "cannot be empty"), ("two words", "spaces"), ("a@b", "'@'")] {
        let err = c.register(bad, &uri(1)).await.unwrap_err();
        assert!(err.to_string().contains("invalid name") && err.to_string().contains(says), "{bad:?}: {err}");
    }
    let long = "n".repeat(600);
    assert!(c.register(&long, &uri(1)).await.unwrap_err().to_string().contains("at most 512"));
    let err = c.register_with("ok", &uri(1), ["a,b"], false).await.unwrap_err();
    assert!(err.to_string().contains("invalid metadata tag"), "{err}");
    let err = c.list(NameFilter::Regex("((".into())).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid regular expression \"((\": unclosed group");
    let err = c.lookup("missing").await.unwrap_err();
    assert_eq!(err.to_string(), "no name \"missing\" is registered");
    let err = c.set_metadata("missing", ["x"]).await.unwrap_err();
    assert!(err.to_string().contains("no name"), "{err}");
    assert!("RMI:nohost".parse::<ObjectUri>().is_err());
    // Nothing of that changed anything.
    assert_eq!(c.count().await.unwrap(), 0);
}

#[tokio::test]
async fn proxies_resolve_rminame_and_rmimeta() {
    let ns = name_server(None).await;
    let (_d, calc_uri) = TestDaemon::calculator().await;
    let c = client(&ns);
    c.register_with("app.calc", &calc_uri, ["class:calculator"], false).await.unwrap();

    // The name server named in the URI.
    let rmi::Location::Tcp(at) = &ns.uri().location else { unreachable!() };
    let direct = CalculatorProxy::new(format!("RMINAME:app.calc@{at}")).unwrap();
    assert_eq!(direct.add(1, 2).await.unwrap(), 3);
    assert_eq!(direct.proxy().target(), Some(calc_uri.clone()));

    // The name server the configuration points at.
    let config = config_for(&ns);
    let by_config =
        CalculatorProxy::from_proxy(Proxy::builder_with_config("RMINAME:app.calc", &config).build().unwrap());
    assert_eq!(by_config.add(2, 2).await.unwrap(), 4);

    let by_meta = CalculatorProxy::from_proxy(
        Proxy::builder_with_config("RMIMETA:class:calculator", &config).build().unwrap(),
    );
    assert_eq!(by_meta.add(3, 3).await.unwrap(), 6);

    let missing =
        CalculatorProxy::from_proxy(Proxy::builder_with_config("RMINAME:app.none", &config).build().unwrap());
    let err = missing.add(1, 1).await.unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("RMINAME:app.none"), "{err}");
    let nothing = CalculatorProxy::from_proxy(
        Proxy::builder_with_config("RMIMETA:class:none", &config).build().unwrap(),
    );
    assert!(matches!(nothing.add(1, 1).await.unwrap_err(), Error::ObjectNotFound(_)));
}

#[tokio::test]
async fn a_moved_object_is_resolved_again_on_reconnect() {
    let ns = name_server(None).await;
    let c = client(&ns);
    let first = TestDaemon::start(builder()).await;
    let first_uri = first.daemon.register(Calculator::default(), Some("calc")).unwrap();
    c.register("app.calc", &first_uri).await.unwrap();

    let calc = CalculatorProxy::from_proxy(
        Proxy::builder_with_config("RMINAME:app.calc", &config_for(&ns)).build().unwrap(),
    );
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    assert_eq!(calc.proxy().target(), Some(first_uri.clone()));

    // The daemon restarts elsewhere (another port) and registers again.
    first.stop().await;
    let second = TestDaemon::start(builder()).await;
    let second_uri = second.daemon.register(Calculator::default(), Some("calc")).unwrap();
    assert_ne!(first_uri, second_uri);
    c.register("app.calc", &second_uri).await.unwrap();

    let mut result = calc.add(2, 2).await;
    if matches!(result, Err(Error::ConnectionLost(_))) {
        // The old connection's end had not been seen yet when the call went out.
        result = calc.add(2, 2).await;
    }
    assert_eq!(result.unwrap(), 4);
    assert_eq!(calc.proxy().target(), Some(second_uri));
}

#[tokio::test]
async fn locate_ns_finds_it_by_discovery_on_loopback() {
    let mut options = NameServerOptions::from_config(&Config::default());
    options.port = 0;
    options.broadcast_port = Some(0);
    let ns = rmi_naming::start(options).await.unwrap();
    let bcport = ns.discovery_address().unwrap().port();
    let mut config = Config::default();
    config.ns_bcport = bcport;
    // A port where nothing listens, so that only discovery can find it.
    config.ns_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let found = tokio::time::timeout(Duration::from_secs(10), rmi::locate_ns_with(&config, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.uri().to_string(), ns.uri().to_string());
    found.ping().await.unwrap();

    // An explicit address wins over everything else.
    let rmi::Location::Tcp(at) = &ns.uri().location else { unreachable!() };
    let direct = rmi::locate_ns_with(&Config::default(), Some(&at.to_string())).await.unwrap();
    direct.ping().await.unwrap();

    // Nobody there: a clear error that says where it looked.
    let mut nowhere = Config::default();
    nowhere.ns_port = config.ns_port;
    nowhere.ns_bcport = config.ns_port;
    let err = rmi::locate_ns_with(&nowhere, None).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("broadcast on UDP port"), "{err}");
}

#[tokio::test]
async fn a_keyed_name_server_refuses_clients_without_the_key() {
    let key = Key::from("ns-key");
    let ns = name_server(Some(key.clone())).await;
    let keyless = client(&ns);
    let err = keyless.ping().await.unwrap_err();
    assert!(matches!(err, Error::Auth(rmi::AuthError::KeyRequired)), "{err:?}");

    let mut config = config_for(&ns);
    config.hmac_key = Some(key.clone());
    let keyed = rmi::locate_ns_with(&config, None).await.unwrap();
    // A keyed daemon registers, and a keyed proxy resolves through the
    // keyed name server with the same key.
    let d = TestDaemon::start(builder().key(Some(key.clone()))).await;
    let calc_uri = d.daemon.register(Calculator::default(), Some("calc")).unwrap();
    keyed.register("app.calc", &calc_uri).await.unwrap();
    let calc =
        CalculatorProxy::from_proxy(Proxy::builder_with_config("RMINAME:app.calc", &config).build().unwrap());
    assert_eq!(calc.add(5, 5).await.unwrap(), 10);

    let mut no_key = config_for(&ns);
    no_key.hmac_key = None;
    let err = rmi::locate_ns_with(&no_key, None).await.unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
}
