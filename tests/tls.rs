//! TLS on loopback: calls over TLS and mutual TLS on every transport, the
//! caller's certificate identity in methods and hooks, and each refusal
//! with its own error, the daemon serving a good client afterwards.
//! Certificates are made at test time (nothing committed expires).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Calculator, CalculatorProxy, PATIENCE, TestDaemon, builder, proxy_builder};
use rmi::tls::rustls::{AlertDescription, CertificateError};
use rmi::tls::{ClientAuth, ClientTls, PeerIdentity, ServerTls, roots};
use rmi::{AuthError, Blob, Config, ConnectionInfo, Error, Key, NameServerProxy, ObjectUri, Proxy};
use rmi_naming::devcerts::{DevCa, DevCert, Usage, Validity};

/// How quickly a refusal must arrive: no hang, no timeout.
const QUICK: Duration = Duration::from_secs(3);

/// A CA with a server certificate for loopback and two client certificates.
struct Pki {
    ca: DevCa,
    server: DevCert,
    alice: DevCert,
}

impl Pki {
    fn new() -> Self {
        let ca = DevCa::new("test CA").unwrap();
        let server =
            ca.issue("daemon", &["localhost", "127.0.0.1", "::1"], Usage::Server, Validity::days(1)).unwrap();
        let alice = ca.issue("alice", &[], Usage::Client, Validity::days(1)).unwrap();
        Pki { ca, server, alice }
    }

    fn roots(&self) -> rmi::tls::rustls::RootCertStore {
        roots([self.ca.cert().der().clone()]).unwrap()
    }

    fn server_tls(&self, clients: Clients) -> ServerTls {
        server_tls(&self.server, clients.auth(self))
    }

    fn client(&self) -> ClientTls {
        ClientTls::new(self.roots(), None).unwrap()
    }

    fn client_as(&self, who: &DevCert) -> ClientTls {
        ClientTls::new(self.roots(), Some((who.chain(), who.key()))).unwrap()
    }
}

#[derive(Clone, Copy)]
enum Clients {
    Anyone,
    Optional,
    Required,
}

impl Clients {
    fn auth(self, pki: &Pki) -> ClientAuth {
        match self {
            Clients::Anyone => ClientAuth::None,
            Clients::Optional => ClientAuth::Optional(pki.roots()),
            Clients::Required => ClientAuth::Required(pki.roots()),
        }
    }
}

fn server_tls(cert: &DevCert, clients: ClientAuth) -> ServerTls {
    ServerTls::new(cert.chain(), cert.key(), clients).unwrap()
}

/// Tells a caller who it is, by its certificate.
#[derive(Debug)]
pub struct Whoami;

/// A caller's certificate subject, subject alternative names and fingerprint.
type Who = Option<(String, Vec<String>, String)>;

#[rmi::expose]
impl Whoami {
    /// The caller's certificate subject and SANs, or `None` without one.
    pub fn whoami(&self) -> Who {
        let context = rmi::context()?;
        let identity = context.identity()?;
        Some((identity.subject.clone(), identity.subject_alt_names.clone(), identity.fingerprint_hex()))
    }
}

async fn tls_daemon(tls: ServerTls, address: &str) -> (TestDaemon, ObjectUri) {
    let daemon = TestDaemon::start_at(builder().tls(Some(tls)), address).await;
    let uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    daemon.daemon.register(Whoami, Some("whoami")).unwrap();
    (daemon, uri)
}

fn calc(uri: &ObjectUri, tls: Option<ClientTls>) -> CalculatorProxy {
    CalculatorProxy::from_proxy(proxy_builder(uri).tls(tls).build().unwrap())
}

fn whoami_uri(calc: &ObjectUri) -> ObjectUri {
    format!("RMI:whoami@{}", calc.location).parse().unwrap()
}

/// A good client's call succeeds, quickly.
async fn still_serves(uri: &ObjectUri, tls: ClientTls, after: &str) {
    let started = Instant::now();
    let sum = tokio::time::timeout(QUICK, calc(uri, Some(tls)).add(20, 22)).await;
    assert!(matches!(sum, Ok(Ok(42))), "after {after}: {sum:?}");
    assert!(started.elapsed() < QUICK);
}

/// A call's error, arriving quickly.
async fn refused(uri: &ObjectUri, tls: Option<ClientTls>) -> Error {
    let started = Instant::now();
    let result = tokio::time::timeout(QUICK, calc(uri, tls).add(1, 2)).await.expect("an answer, not a hang");
    let error = result.expect_err("refused");
    assert!(started.elapsed() < QUICK, "{error}: {:?}", started.elapsed());
    error
}

fn tls_failure(error: &Error) -> &rmi::tls::TlsError {
    match error {
        Error::Tls(t) => t,
        other => panic!("expected a TLS error, got {other:?} ({other})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_on_ipv4_ipv6_and_unix_sockets() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let unix = format!("./u:{}", dir.path().join("tls.sock").display());
    for address in ["127.0.0.1:0", "[::1]:0", unix.as_str()] {
        let (daemon, uri) = tls_daemon(pki.server_tls(Clients::Anyone), address).await;
        let proxy = calc(&uri, Some(pki.client()));
        assert_eq!(proxy.add(2, 3).await.unwrap(), 5, "{address}");
        // Bytes both ways, past rustls's buffers and the socket's.
        let payload: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i * 7 % 251) as u8).collect();
        let back = proxy.echo_blob(Blob::from(payload.clone())).await.unwrap();
        assert_eq!(back.as_ref(), payload.as_slice(), "{address}");
        // Many calls in flight on the one connection.
        let sums = futures::future::join_all((0..64).map(|i| proxy.add(i, 1))).await;
        for (i, sum) in sums.into_iter().enumerate() {
            assert_eq!(sum.unwrap(), i as i64 + 1);
        }
        // No client certificate: no identity.
        let who = Proxy::builder_with_config(whoami_uri(&uri), &Config::default())
            .tls(Some(pki.client()))
            .build()
            .unwrap();
        let none: Who = who.call("whoami", ()).await.unwrap();
        assert_eq!(none, None);
        daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_gives_methods_and_hooks_the_callers_identity() {
    struct OnlyAlice(Arc<std::sync::Mutex<Vec<String>>>);
    impl rmi::Hooks for OnlyAlice {
        fn validate(&self, connection: &ConnectionInfo) -> Result<(), String> {
            let identity: Option<&PeerIdentity> = connection.identity.as_deref();
            let name = identity.and_then(PeerIdentity::common_name).unwrap_or("nobody").to_owned();
            self.0.lock().unwrap().push(name.clone());
            if name == "alice" { Ok(()) } else { Err(format!("{name} may not connect")) }
        }
    }
    let pki = Pki::new();
    let bob = pki.ca.issue("bob", &[], Usage::Client, Validity::days(1)).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let daemon = TestDaemon::start(
        builder().tls(Some(pki.server_tls(Clients::Required))).hooks(OnlyAlice(seen.clone())),
    )
    .await;
    let uri = daemon.daemon.register(Whoami, Some("whoami")).unwrap();
    let alice = Proxy::builder_with_config(&uri, &Config::default())
        .tls(Some(pki.client_as(&pki.alice)))
        .build()
        .unwrap();
    let (subject, names, fingerprint): (String, Vec<String>, String) =
        alice.call::<Who>("whoami", ()).await.unwrap().expect("an identity");
    assert_eq!(subject, "CN=alice,O=rmi development (not for production)");
    assert_eq!(names, vec!["URI:rmi://client/alice".to_owned()]);
    assert_eq!(fingerprint, PeerIdentity::from_der(pki.alice.der()).fingerprint_hex());
    let bob =
        Proxy::builder_with_config(&uri, &Config::default()).tls(Some(pki.client_as(&bob))).build().unwrap();
    let refused = bob.call::<Who>("whoami", ()).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Refused(reason) if reason.contains("bob may not connect")),
        "{refused:?}"
    );
    assert_eq!(*seen.lock().unwrap(), vec!["alice".to_owned(), "bob".to_owned()]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_has_its_own_error_and_the_daemon_serves_on() {
    let pki = Pki::new();
    let (daemon, uri) = tls_daemon(pki.server_tls(Clients::Optional), "127.0.0.1:0").await;

    // A client that trusts another CA.
    let stranger = DevCa::new("another CA").unwrap();
    let other_roots = ClientTls::new(roots([stranger.cert().der().clone()]).unwrap(), None).unwrap();
    let e = refused(&uri, Some(other_roots)).await;
    assert_eq!(tls_failure(&e).certificate_error(), Some(&CertificateError::UnknownIssuer), "{e}");
    assert!(e.to_string().contains("not signed by a CA this side trusts"), "{e}");
    still_serves(&uri, pki.client(), "an unknown CA").await;

    // A client certificate from another CA.
    let intruder = stranger.issue("mallory", &[], Usage::Client, Validity::days(1)).unwrap();
    let e = refused(&uri, Some(pki.client_as(&intruder))).await;
    let alert = tls_failure(&e).alert();
    assert!(matches!(alert, Some(AlertDescription::UnknownCA | AlertDescription::BadCertificate)), "{e}");
    still_serves(&uri, pki.client(), "a client certificate from another CA").await;

    // A plaintext client.
    let e = refused(&uri, None).await;
    assert!(matches!(e, Error::Auth(AuthError::TlsRequired)), "{e:?}");
    assert!(e.to_string().contains("authentication failed") || format!("{e:?}").contains("TlsRequired"));
    still_serves(&uri, pki.client(), "a plaintext client").await;
    daemon.stop().await;

    // The server's certificate has expired.
    let expired = pki.ca.issue("daemon", &["127.0.0.1"], Usage::Server, Validity::expired()).unwrap();
    let (daemon, uri) = tls_daemon(server_tls(&expired, ClientAuth::None), "127.0.0.1:0").await;
    let e = refused(&uri, Some(pki.client())).await;
    let certificate = tls_failure(&e).certificate_error().cloned();
    assert!(
        matches!(certificate, Some(CertificateError::Expired | CertificateError::ExpiredContext { .. })),
        "{e}"
    );
    daemon.stop().await;

    // The server's certificate names another host.
    let elsewhere = pki.ca.issue("daemon", &["db.example.org"], Usage::Server, Validity::days(1)).unwrap();
    let (daemon, uri) = tls_daemon(server_tls(&elsewhere, ClientAuth::None), "127.0.0.1:0").await;
    let e = refused(&uri, Some(pki.client())).await;
    let certificate = tls_failure(&e).certificate_error().cloned();
    assert!(
        matches!(
            certificate,
            Some(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })
        ),
        "{e}"
    );
    // Verified against the name it does hold, it is accepted.
    still_serves(&uri, pki.client().server_name("db.example.org").unwrap(), "a wrong host name").await;
    daemon.stop().await;

    // No client certificate where one is required.
    let (daemon, uri) = tls_daemon(pki.server_tls(Clients::Required), "127.0.0.1:0").await;
    let e = refused(&uri, Some(pki.client())).await;
    assert_eq!(tls_failure(&e).alert(), Some(AlertDescription::CertificateRequired), "{e}");
    assert!(e.to_string().contains("requires a client certificate"), "{e}");
    still_serves(&uri, pki.client_as(&pki.alice), "no client certificate").await;
    daemon.stop().await;

    // A TLS client meeting a plaintext daemon.
    let (plain, uri) = TestDaemon::calculator().await;
    let e = refused(&uri, Some(pki.client())).await;
    assert!(matches!(e, Error::Auth(AuthError::ServerHasNoTls)), "{e:?}");
    let sum = calc(&uri, None).add(1, 1).await;
    assert!(matches!(sum, Ok(2)), "the plaintext daemon after a TLS client: {sum:?}");
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_by_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let timeout = Duration::from_millis(300);
    let daemon =
        TestDaemon::start(builder().tls(Some(pki.server_tls(Clients::Anyone))).handshake_timeout(timeout))
            .await;
    let uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let address = match &uri.location {
        rmi::Location::Tcp(hp) => format!("{hp}"),
        other => panic!("{other}"),
    };
    // One sends nothing; one opens a TLS record and stops halfway.
    let opened = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut halfway = tokio::net::TcpStream::connect(&address).await.unwrap();
    halfway.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).await.unwrap();
    for stream in [&mut silent, &mut halfway] {
        let mut buf = [0u8; 64];
        let read =
            tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("closed, not left open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let waited = opened.elapsed();
        assert!(waited >= timeout - Duration::from_millis(50) && waited < timeout * 10, "{waited:?}");
    }
    still_serves(&uri, pki.client(), "stalled handshakes").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_the_shared_key_together() {
    let pki = Pki::new();
    let key = Key::new(b"defence in depth".to_vec());
    let daemon =
        TestDaemon::start(builder().tls(Some(pki.server_tls(Clients::Anyone))).key(Some(key.clone()))).await;
    let uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let both = CalculatorProxy::from_proxy(
        proxy_builder(&uri).tls(Some(pki.client())).key(Some(key.clone())).build().unwrap(),
    );
    assert_eq!(both.add(40, 2).await.unwrap(), 42);
    let payload = vec![9u8; 1 << 20];
    assert_eq!(both.blob_len(Blob::from(payload)).await.unwrap(), 1 << 20);
    let wrong = CalculatorProxy::from_proxy(
        proxy_builder(&uri).tls(Some(pki.client())).key(Some(Key::new(b"another".to_vec()))).build().unwrap(),
    );
    let e = wrong.add(1, 1).await.unwrap_err();
    assert!(matches!(e, Error::Auth(AuthError::WrongKey)), "{e:?}");
    let keyless = calc(&uri, Some(pki.client()));
    let e = keyless.add(1, 1).await.unwrap_err();
    assert!(matches!(e, Error::Auth(AuthError::KeyRequired)), "{e:?}");
    assert_eq!(both.add(1, 1).await.unwrap(), 2);
    daemon.stop().await;
}

/// The `RMI_TLS_*` variables of a process, from files `rmi-naming dev-certs`
/// would write.
fn tls_env(dir: &std::path::Path, require_client_cert: bool) -> Config {
    rmi_naming::devcerts::write_dev_files(dir, &["localhost", "127.0.0.1"], 1).unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    let vars: Vec<(&str, String)> = vec![
        ("RMI_TLS", "on".into()),
        ("RMI_TLS_CA", file("ca.pem")),
        ("RMI_TLS_SERVER_CERT", file("server.pem")),
        ("RMI_TLS_SERVER_KEY", file("server.key")),
        ("RMI_TLS_REQUIRE_CLIENT_CERT", if require_client_cert { "on" } else { "off" }.into()),
        ("RMI_TLS_CLIENT_CERT", file("client.pem")),
        ("RMI_TLS_CLIENT_KEY", file("client.key")),
    ];
    Config::from_lookup(|var| vars.iter().find(|(v, _)| *v == var).map(|(_, value)| value.clone())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_turns_on_mutual_tls_for_daemons_proxies_and_the_name_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = tls_env(dir.path(), true);
    let mut options = rmi_naming::NameServerOptions::from_config(&config);
    options.port = 0;
    options.broadcast_port = None;
    let ns = rmi_naming::start(options).await.unwrap();
    let daemon = TestDaemon::start(rmi::Daemon::builder_with_config(&config)).await;
    daemon.daemon.register(Whoami, Some("whoami")).unwrap();
    let calc_uri = daemon.daemon.register(Calculator::default(), Some("calc")).unwrap();
    let names = NameServerProxy::from_proxy(Proxy::builder_with_config(ns.uri(), &config).build().unwrap());
    names.register("example.calc", &calc_uri).await.unwrap();

    // A client configured by the same variables resolves the name over TLS
    // and calls over mutual TLS.
    let rmi::Location::Tcp(ns_at) = &ns.uri().location else { panic!() };
    let by_name = format!("RMINAME:example.calc@{ns_at}");
    let proxy =
        CalculatorProxy::from_proxy(Proxy::builder_with_config(by_name.as_str(), &config).build().unwrap());
    assert_eq!(proxy.add(1, 2).await.unwrap(), 3);
    let who = Proxy::builder_with_config(whoami_uri(&calc_uri), &config).build().unwrap();
    let (subject, _, _): (String, Vec<String>, String) =
        who.call::<Who>("whoami", ()).await.unwrap().unwrap();
    assert!(subject.starts_with("CN=client"), "{subject}");

    // A plaintext client of either is refused, saying why.
    let plain = NameServerProxy::from_proxy(proxy_builder(ns.uri()).build().unwrap());
    let e = plain.ping().await.unwrap_err();
    assert!(matches!(e, Error::Auth(AuthError::TlsRequired)), "{e:?}");
    daemon.stop().await;
    ns.stop().await.unwrap();
}

#[test]
fn tls_variables_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    rmi_naming::devcerts::write_dev_files(dir.path(), &["localhost"], 1).unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let lookup = |vars: Vec<(&'static str, String)>| {
        Config::from_lookup(move |var| vars.iter().find(|(v, _)| *v == var).map(|(_, value)| value.clone()))
    };
    type Vars = Vec<(&'static str, String)>;
    let cases: Vec<(Vars, &str, &str)> = vec![
        (vec![("RMI_TLS_CA", file("ca.pem"))], "RMI_TLS_CA", "RMI_TLS is not on"),
        (vec![("RMI_TLS", "on".into())], "RMI_TLS_CA", "needs the PEM bundle"),
        (vec![("RMI_TLS", "maybe".into())], "RMI_TLS", "neither on nor off"),
        (vec![("RMI_TLS", "on".into()), ("RMI_TLS_CA", file("missing.pem"))], "RMI_TLS_CA", "missing.pem"),
        (
            vec![
                ("RMI_TLS", "on".into()),
                ("RMI_TLS_CA", file("ca.pem")),
                ("RMI_TLS_SERVER_CERT", file("server.pem")),
            ],
            "RMI_TLS_SERVER_CERT",
            "without its _KEY",
        ),
        (
            vec![
                ("RMI_TLS", "on".into()),
                ("RMI_TLS_CA", file("ca.pem")),
                ("RMI_TLS_SERVER_CERT", file("server.pem")),
                ("RMI_TLS_SERVER_KEY", file("client.key")),
            ],
            "RMI_TLS_SERVER_CERT",
            "do not go together",
        ),
        (
            vec![
                ("RMI_TLS", "on".into()),
                ("RMI_TLS_CA", file("ca.pem")),
                ("RMI_TLS_REQUIRE_CLIENT_CERT", "on".into()),
            ],
            "RMI_TLS_REQUIRE_CLIENT_CERT",
            "applies to a daemon",
        ),
    ];
    for (vars, var, says) in cases {
        let shown = format!("{vars:?}");
        let e = lookup(vars).expect_err(&shown);
        assert_eq!(e.var(), var, "{shown}: {e}");
        assert!(e.to_string().contains(says), "{shown}: {e}");
    }
    // A client-only process needs only the CA; a daemon then says what it lacks.
    let client_only = lookup(vec![("RMI_TLS", "on".into()), ("RMI_TLS_CA", file("ca.pem"))]).unwrap();
    assert!(client_only.tls.as_ref().is_some_and(|t| t.server.is_none()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = runtime.block_on(rmi::Daemon::builder_with_config(&client_only).bind("127.0.0.1:0")).unwrap_err();
    assert!(e.to_string().contains("RMI_TLS_SERVER_CERT"), "{e}");
}
