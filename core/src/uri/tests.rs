use super::*;
use proptest::prelude::*;

#[test]
fn parses_every_form() {
    let cases = [
        "RMI:greeter@127.0.0.1:9090",
        "RMI:obj_42@localhost:1",
        "RMI:Pyro.NameServer@server.example.org:65535",
        "RMI:x@[::1]:9090",
        "RMI:x@[2001:db8::7]:80",
        "RMI:x@./u:/tmp/rmi.sock",
        "RMI:x@./u:relative/sock@with-at",
        "RMINAME:example.greeting",
        "RMINAME:example.greeting@10.0.0.1:9090",
        "RMINAME:n@[::1]:9090",
        "RMIMETA:class:weather",
        "RMIMETA:a,b,c@ns.local:9090",
    ];
    for text in cases {
        let uri: Uri = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(uri.to_string(), text, "display of {text}");
    }
}

#[test]
fn object_uri_fields() {
    let uri: ObjectUri = "RMI:greeter@[::1]:4000".parse().unwrap();
    assert_eq!(uri.object, "greeter");
    assert_eq!(uri.location, Location::Tcp(HostPort { host: Host::V6(Ipv6Addr::LOCALHOST), port: 4000 }));
    let unix: ObjectUri = "RMI:o@./u:/run/a@b.sock".parse().unwrap();
    assert_eq!(unix.location, Location::Unix(PathBuf::from("/run/a@b.sock")));
}

#[test]
fn scheme_is_case_insensitive_and_printed_in_capitals() {
    let uri: Uri = "rmi:obj@localhost:9090".parse().unwrap();
    assert_eq!(uri.to_string(), "RMI:obj@localhost:9090");
    let uri: Uri = "RmiName:x".parse().unwrap();
    assert_eq!(uri.to_string(), "RMINAME:x");
}

#[test]
fn meta_tags_keep_their_order() {
    let uri: MetaUri = "RMIMETA:b,a,c".parse().unwrap();
    assert_eq!(uri.tags, ["b", "a", "c"]);
    assert_eq!(uri.name_servers, []);
}

#[test]
fn names_may_list_several_name_servers() {
    let uri: NameUri = "RMINAME:a.b@127.0.0.1:9090,[::1]:9092".parse().unwrap();
    assert_eq!(uri.name_servers.len(), 2);
    assert_eq!(uri.name_servers[1], HostPort { host: Host::V6(Ipv6Addr::LOCALHOST), port: 9092 });
    assert_eq!(uri.to_string(), "RMINAME:a.b@127.0.0.1:9090,[::1]:9092");
    let meta: MetaUri = "RMIMETA:x,y@h:1,k:2".parse().unwrap();
    assert_eq!((meta.tags.len(), meta.name_servers.len()), (2, 2));
    assert!("RMINAME:a@h:1,".parse::<NameUri>().is_err(), "an empty entry");
}

/// Each malformed input gets an error that quotes it, says what is wrong and
/// what was expected.
#[test]
fn pyro5_uris_name_a_pyro5_daemons_object() {
    let uri: Uri = "PYRO:thing@127.0.0.1:4444".parse().unwrap();
    let Uri::Pyro5(object) = &uri else { panic!("not a Pyro5 URI: {uri:?}") };
    assert_eq!(object.object, "thing");
    assert_eq!(uri.to_string(), "PYRO:thing@127.0.0.1:4444");
    assert_eq!("pyro:t@[::1]:1".parse::<Uri>().unwrap().to_string(), "PYRO:t@[::1]:1");
    let e = "PYRO:obj".parse::<Uri>().unwrap_err().to_string();
    assert!(e.contains("no '@'") && e.contains("expected PYRO:<object-id>@<host>:<port>"), "{e}");
}

#[test]
fn malformed_inputs_are_explained() {
    let cases: &[(&str, &str)] = &[
        ("", "unknown scheme"),
        // Pyro5's names are not rmi's: PYRONAME: goes through rmi-naming as RMINAME:.
        ("PYRONAME:obj", "unknown scheme"),
        ("RMI:obj", "no '@'"),
        ("RMI:@localhost:9090", "object id is empty"),
        ("RMI:obj@localhost", "has no ':<port>'"),
        ("RMI:obj@localhost:99999", "not a number from 1 to 65535"),
        ("RMI:obj@localhost:+80", "not a number from 1 to 65535"),
        ("RMI:obj@localhost:0", "port 0"),
        ("RMI:obj@::1:9090", "must be written in brackets"),
        ("RMI:obj@[::1:9090", "no closing ']'"),
        ("RMI:obj@[fe80::zz]:9090", "not an IPv6 address"),
        ("RMI:obj@[::1]9090", "port is missing"),
        ("RMI:obj@256.1.1.1:9090", "not an IPv4 address"),
        ("RMI:obj@bad_host!:9090", "not a valid host name"),
        ("RMI:obj@-lead.example:9090", "not a valid host name"),
        ("RMI:obj@:9090", "host is empty"),
        ("RMI:obj@./u:", "Unix socket path is empty"),
        ("RMI:two words@localhost:9090", "spaces and control characters"),
        ("RMINAME:", "name is empty"),
        ("RMINAME:x@nsonly", "has no ':<port>'"),
        ("RMIMETA:", "tag is empty"),
        ("RMIMETA:a,,b", "tag is empty"),
    ];
    for (input, problem) in cases {
        let err = input.parse::<Uri>().expect_err(input);
        let text = err.to_string();
        assert_eq!(err.input(), *input);
        assert!(text.contains(&format!("{input:?}")), "{text} does not quote the input");
        assert!(text.contains(problem), "{text} does not say {problem:?}");
        assert!(text.contains("expected RMI"), "{text} does not say what was expected");
    }
}

#[test]
fn long_host_names_are_refused() {
    let label = "a".repeat(64);
    let err = format!("RMI:o@{label}.org:1").parse::<Uri>().unwrap_err();
    assert!(err.problem().contains("not a valid host name"));
    let name = ["abcdefghij"; 26].join(".");
    let err = format!("RMI:o@{name}:1").parse::<Uri>().unwrap_err();
    assert!(err.problem().contains("longer than 253"));
}

#[test]
fn uris_travel_as_text() {
    let uri: Uri = "RMINAME:example.greeting@127.0.0.1:9090".parse().unwrap();
    let bytes = postcard::to_allocvec(&uri).unwrap();
    let back: Uri = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, uri);
    let bad = postcard::to_allocvec("RMI:nope").unwrap();
    assert!(postcard::from_bytes::<Uri>(&bad).is_err());
}

fn word() -> impl Strategy<Value = String> {
    // Anything but '@', ',', whitespace and control characters, so that the
    // same strategy serves ids, names and tags.
    "[a-zA-Z0-9_.:/#$%^&*()+=~é-]{1,20}"
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Host::V4(Ipv4Addr::from(b))),
        any::<[u16; 8]>().prop_map(|s| Host::V6(Ipv6Addr::from(s))),
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}"
            .prop_filter("not all digits", |n| !n.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            .prop_map(Host::Name),
    ]
}

fn host_port() -> impl Strategy<Value = HostPort> {
    (host(), 1..=u16::MAX).prop_map(|(host, port)| HostPort { host, port })
}

fn uri() -> impl Strategy<Value = Uri> {
    let location = prop_oneof![
        host_port().prop_map(Location::Tcp),
        "/[a-zA-Z0-9_./@-]{1,30}".prop_map(|p| Location::Unix(PathBuf::from(p))),
    ];
    prop_oneof![
        (word(), location).prop_map(|(object, location)| Uri::Object(ObjectUri { object, location })),
        (word(), proptest::collection::vec(host_port(), 0..3))
            .prop_map(|(name, name_servers)| Uri::Name(NameUri { name, name_servers })),
        (proptest::collection::vec(word(), 1..5), proptest::collection::vec(host_port(), 0..3))
            .prop_map(|(tags, name_servers)| Uri::Meta(MetaUri { tags, name_servers })),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(uri in uri()) {
        let text = uri.to_string();
        let back: Uri = text.parse().map_err(|e: UriError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, uri);
    }

    #[test]
    fn parse_never_panics_and_accepted_text_round_trips(text in "(?i:rmi|rminame|rmimeta)?:?[ -~]{0,40}") {
        if let Ok(uri) = text.parse::<Uri>() {
            let again: Uri = uri.to_string().parse().map_err(|e: UriError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, uri);
        }
    }
}
