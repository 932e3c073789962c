use std::time::Duration;

use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::net::Listener;

/// A CA and a certificate it issued for `names`.
fn issue(names: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "unit CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    // Most general first, as in the certificate: shown most specific first.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "Example");
    params.distinguished_name.push(DnType::CommonName, "server one");
    params.subject_alt_names.push(SanType::URI("spiffe://example/one".try_into().unwrap()));
    params.subject_alt_names.push(SanType::Rfc822Name("ops@example.org".try_into().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (ca_cert.der().clone(), cert.der().clone(), key)
}

#[test]
fn an_identity_names_the_subject_issuer_and_alternative_names() {
    let (_, cert, _) = issue(&["one.example", "127.0.0.1", "::1"]);
    let identity = PeerIdentity::from_der(&cert);
    assert_eq!(identity.subject, "CN=server one,O=Example");
    assert_eq!(identity.issuer, "CN=unit CA");
    assert_eq!(identity.common_name(), Some("server one"));
    assert_eq!(
        identity.subject_alt_names,
        ["DNS:one.example", "IP:127.0.0.1", "IP:::1", "URI:spiffe://example/one", "email:ops@example.org"]
    );
    assert!(identity.has_dns_name("ONE.example"));
    assert!(!identity.has_dns_name("two.example"));
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(cert.as_ref()).into();
    assert_eq!(identity.fingerprint, digest);
    assert_eq!(identity.fingerprint_hex().len(), 64);
}

/// A self-signed certificate whose subject is `attributes`, in order.
fn with_subject(attributes: &[(DnType, &str)]) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in attributes {
        params.distinguished_name.push(kind.clone(), *value);
    }
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

#[test]
fn no_attribute_value_passes_for_another_attribute() {
    // A common name smuggled into another attribute's value is not one.
    let bob = PeerIdentity::from_der(&with_subject(&[
        (DnType::CommonName, "bob"),
        (DnType::OrganizationalUnitName, "z, CN=admin"),
    ]));
    assert_eq!(bob.common_name(), Some("bob"));
    assert_eq!(bob.subject_attribute("OU"), Some("z, CN=admin"));
    assert_eq!(bob.subject, "OU=z\\, CN=admin,CN=bob");
    let nobody = PeerIdentity::from_der(&with_subject(&[(DnType::OrganizationName, "x, CN=alice")]));
    assert_eq!(nobody.common_name(), None);
    let alice = PeerIdentity::from_der(&with_subject(&[
        (DnType::OrganizationName, "x"),
        (DnType::CommonName, "alice"),
    ]));
    assert_ne!(nobody.subject, alice.subject);
    assert_eq!(alice.subject, "CN=alice,O=x");
    // Characters that end lines, or RFC 4514's specials, are escaped.
    let odd = PeerIdentity::from_der(&with_subject(&[(DnType::CommonName, " #a+b;c<d>\"q\\\nend ")]));
    assert_eq!(odd.subject, "CN=\\ #a\\+b\\;c\\<d\\>\\\"q\\\\\\0Aend\\ ");
    assert_eq!(odd.common_name(), Some(" #a+b;c<d>\"q\\\nend "));
    assert!(!odd.to_string().contains('\n'));
}

#[test]
fn a_certificate_of_another_shape_loses_its_names_not_the_process() {
    let (_, cert, _) = issue(&["one.example"]);
    // Every prefix of a real certificate, and bytes flipped anywhere in it.
    for len in 0..cert.len() {
        let identity = PeerIdentity::from_der(cert.get(..len).unwrap());
        assert!(identity.subject_alt_names.len() <= 3);
    }
    let mut bytes = cert.to_vec();
    for i in 0..bytes.len() {
        bytes[i] ^= 0x5a;
        let _ = PeerIdentity::from_der(&bytes);
        bytes[i] ^= 0x5a;
    }
    // Lengths that claim more than there is, in every length form.
    for lying in
        [&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x30, 0x80], &[0x30]]
    {
        let identity = PeerIdentity::from_der(lying);
        assert!(identity.subject.is_empty() && identity.subject_alt_names.is_empty());
    }
}

/// A TLS listener on loopback accepting `count` connections, each answering
/// one line with what it read, upper-cased.
async fn echo_server(server: ServerTls, count: usize) -> Location {
    let listener = Listener::bind_tcp("127.0.0.1:0").await.unwrap();
    let location = listener.location().unwrap();
    tokio::spawn(async move {
        for _ in 0..count {
            let Ok(connection) = listener.accept().await else { return };
            let Ok(mut tls) = server.accept(connection).await else { continue };
            let mut buf = vec![0u8; 1 << 20];
            let mut got = Vec::new();
            while !got.ends_with(b"\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got.make_ascii_uppercase();
            let _ = tls.write_all(&got).await;
            let _ = tls.flush().await;
        }
    });
    location
}

#[tokio::test]
async fn bytes_cross_both_ways_and_a_reconnect_resumes_the_session() {
    let (ca, cert, key) = issue(&["127.0.0.1"]);
    let server = ServerTls::new(vec![cert], key, ClientAuth::None).unwrap();
    let location = echo_server(server, 3).await;
    let client = ClientTls::new(roots([ca]).unwrap(), None).unwrap();
    let mut resumed = Vec::new();
    for size in [10usize, 3 << 20, 100] {
        let connection = Connection::connect(&location).await.unwrap();
        let mut tls = client.connect(connection, &location).await.unwrap();
        let Connection::Tls(stream) = &tls else { panic!("not TLS") };
        resumed.push(stream.resumed());
        let mut line: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        line.push(b'\n');
        tls.write_all(&line).await.unwrap();
        tls.flush().await.unwrap();
        let mut back = vec![0u8; line.len()];
        tokio::time::timeout(Duration::from_secs(20), tls.read_exact(&mut back)).await.unwrap().unwrap();
        line.make_ascii_uppercase();
        assert!(back == line, "{size} bytes came back altered");
    }
    assert_eq!(resumed, [false, true, true]);
}

#[tokio::test]
async fn a_plaintext_rmi_client_is_told_that_tls_is_required_and_the_reverse() {
    let (ca, cert, key) = issue(&["127.0.0.1"]);
    let server = ServerTls::new(vec![cert], key, ClientAuth::None).unwrap();
    let location = echo_server(server, 1).await;
    let mut plain = Connection::connect(&location).await.unwrap();
    let refused = crate::handshake::client_handshake(&mut plain, None).await.unwrap_err();
    assert!(matches!(refused, TransportError::Auth(AuthError::TlsRequired)), "{refused:?}");

    // A plaintext rmi server, met by a TLS client.
    let listener = Listener::bind_tcp("127.0.0.1:0").await.unwrap();
    let plain_at = listener.location().unwrap();
    let served = tokio::spawn(async move {
        let mut connection = listener.accept().await.unwrap();
        crate::handshake::server_handshake(&mut connection, None).await
    });
    let client = ClientTls::new(roots([ca]).unwrap(), None).unwrap();
    let connection = Connection::connect(&plain_at).await.unwrap();
    let refused = client.connect(connection, &plain_at).await.unwrap_err();
    assert!(matches!(refused, TransportError::Auth(AuthError::ServerHasNoTls)), "{refused:?}");
    let server_side = served.await.unwrap().unwrap_err();
    assert!(matches!(server_side, TransportError::Auth(AuthError::ClientUsesTls)), "{server_side:?}");
}

/// Bytes as a message, for the link.
struct Chunk(Vec<u8>);

impl crate::frame::Encode for Chunk {
    fn encode(&self, out: &mut Vec<u8>, _: &mut Vec<bytes::Bytes>) {
        out.extend_from_slice(&self.0);
    }
}

impl crate::frame::Wire for Chunk {
    fn decode(envelope: &bytes::Bytes, _: &mut bytes::Bytes) -> Result<Self, String> {
        Ok(Chunk(envelope.to_vec()))
    }
}

#[tokio::test]
async fn a_peer_reading_slowly_but_steadily_is_not_cut_off_by_the_write_timeout() {
    // What rustls holds for the socket counts as queued: it draining is
    // progress, and the link's queue alone may be empty meanwhile.
    let (ca, cert, key) = issue(&["127.0.0.1"]);
    let server = ServerTls::new(vec![cert], key, ClientAuth::None).unwrap();
    let client = ClientTls::new(roots([ca]).unwrap(), None).unwrap();
    let listener = Listener::bind_tcp("127.0.0.1:0").await.unwrap();
    let location = listener.location().unwrap();
    let total = 768 * 1024;
    let sender = tokio::spawn(async move {
        let connection = listener.accept().await.unwrap();
        if let Connection::Tcp(s) = &connection {
            socket2::SockRef::from(s).set_send_buffer_size(16 * 1024).unwrap();
        }
        let connection = server.accept(connection).await.unwrap();
        let options = crate::link::LinkOptions::new(1 << 20).write_timeout(Some(Duration::from_millis(400)));
        let (reader, writer) = crate::link::split_with(connection, None, options);
        for _ in 0..total / (64 * 1024) {
            writer.send(&Chunk(vec![7; 64 * 1024])).unwrap();
        }
        assert!(writer.queued() > 0, "the socket took everything at once: nothing is tested");
        // Until the reader has it all (it closes), or the link gives up.
        while !writer.is_closed() && !reader.peer_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        writer.is_closed()
    });
    let connection = Connection::connect(&location).await.unwrap();
    if let Connection::Tcp(s) = &connection {
        socket2::SockRef::from(s).set_recv_buffer_size(16 * 1024).unwrap();
    }
    let mut tls = client.connect(connection, &location).await.unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    // 16 KiB every 40 ms: about 400 KiB/s, two seconds in all, well past
    // the write timeout.
    while got < total {
        tokio::time::sleep(Duration::from_millis(40)).await;
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got >= total, "cut off after {got} of {total} bytes");
    drop(tls);
    let cut_off = tokio::time::timeout(Duration::from_secs(10), sender).await.unwrap().unwrap();
    assert!(!cut_off, "the link gave up on a peer that read everything");
}

#[tokio::test]
async fn reads_of_any_size_get_every_byte_in_order_and_then_the_end() {
    // Large reads go through the inbox, small ones through rustls's own
    // reads; switching between them with ciphertext left in the inbox, and
    // a close_notify after the data, loses nothing and adds nothing.
    let (ca, cert, key) = issue(&["127.0.0.1"]);
    let server = ServerTls::new(vec![cert], key, ClientAuth::None).unwrap();
    let listener = Listener::bind_tcp("127.0.0.1:0").await.unwrap();
    let location = listener.location().unwrap();
    let sent: Vec<u8> = (0..(2usize << 20) + 12_345).map(|i| (i * 7 + i / 4099) as u8).collect();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        let connection = listener.accept().await.unwrap();
        let mut tls = server.accept(connection).await.unwrap();
        for piece in to_send.chunks(100_003) {
            tls.write_all(piece).await.unwrap();
        }
        tls.shutdown().await.unwrap();
    });
    let client = ClientTls::new(roots([ca]).unwrap(), None).unwrap();
    let mut tls = client.connect(Connection::connect(&location).await.unwrap(), &location).await.unwrap();
    let sizes = [33 * 1024, 100, 40 * 1024, 1, 200 * 1024, 32 * 1024 - 1, 5];
    let mut got = Vec::with_capacity(sent.len());
    let mut buf = vec![0u8; 200 * 1024];
    for round in 0.. {
        assert!(round < 100_000, "the reads never ended");
        let want = sizes[round % sizes.len()];
        let n =
            tokio::time::timeout(Duration::from_secs(20), tls.read(&mut buf[..want])).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes came altered or out of order");
    writer.await.unwrap();
}
