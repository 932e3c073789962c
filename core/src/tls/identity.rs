//! A verified peer's identity, read from its certificate.
//!
//! rustls verifies the chain; this reads what an application decides on:
//! the subject and issuer names, the subject alternative names, and the
//! certificate's SHA-256 fingerprint. The certificate's DER is walked with a
//! small bounded reader (no allocation beyond the strings it returns, no
//! recursion deeper than the certificate's fixed shape): a certificate that
//! verifies but is odd yields fewer names, never a panic.

use std::fmt;

use sha2::{Digest, Sha256};

/// Who the peer is, by its verified certificate.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// SHA-256 of the certificate's DER: the one value that names exactly
    /// this certificate (pin it, or log it).
    pub fingerprint: [u8; 32],
    /// The subject's distinguished name, as `CN=alice, O=Example` (most
    /// specific first, RFC 4514's order).
    pub subject: String,
    /// The issuer's distinguished name, in the same form.
    pub issuer: String,
    /// The subject alternative names: `DNS:host`, `IP:10.0.0.1`,
    /// `URI:spiffe://…`, `email:a@b`.
    pub subject_alt_names: Vec<String>,
}

impl PeerIdentity {
    /// The identity in `der`, an X.509 certificate rustls has verified.
    pub fn from_der(der: &[u8]) -> Self {
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        let mut identity = PeerIdentity {
            fingerprint,
            subject: String::new(),
            issuer: String::new(),
            subject_alt_names: Vec::new(),
        };
        // A certificate that does not have the expected shape keeps its
        // fingerprint and loses its names.
        let _ = read_certificate(der, &mut identity);
        identity
    }

    /// The fingerprint in lowercase hex, as `openssl x509 -fingerprint
    /// -sha256` prints it without the colons.
    pub fn fingerprint_hex(&self) -> String {
        use fmt::Write;
        self.fingerprint.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The subject's common name (`CN`), if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.split(", ").find_map(|part| part.strip_prefix("CN="))
    }

    /// Whether the certificate names `dns` among its DNS subject
    /// alternative names (exactly, without regard to case).
    pub fn has_dns_name(&self, dns: &str) -> bool {
        self.subject_alt_names
            .iter()
            .filter_map(|n| n.strip_prefix("DNS:"))
            .any(|n| n.eq_ignore_ascii_case(dns))
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("subject_alt_names", &self.subject_alt_names)
            .field("fingerprint", &self.fingerprint_hex())
            .finish()
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (issued by {}, sha256 {})", self.subject, self.issuer, self.fingerprint_hex())
    }
}

/// A DER element: its tag and its contents.
struct Element<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads DER elements off the front of a slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<Element<'a>> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let (bytes, tail) = rest.split_at_checked(count)?;
            rest = tail;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        let (body, tail) = rest.split_at_checked(len)?;
        self.0 = tail;
        Some(Element { tag, body })
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let element = self.next()?;
        (element.tag == tag).then_some(element.body)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
/// `[0]` explicit: the certificate's version.
const VERSION: u8 = 0xa0;
/// `[3]` explicit: the certificate's extensions.
const EXTENSIONS: u8 = 0xa3;

/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

fn read_certificate(der: &[u8], identity: &mut PeerIdentity) -> Option<()> {
    let certificate = Der(der).expect(SEQUENCE)?;
    let mut tbs = Der(Der(certificate).expect(SEQUENCE)?);
    if tbs.next()?.tag == VERSION {
        let _serial = tbs.next()?;
    }
    let _signature = tbs.expect(SEQUENCE)?;
    identity.issuer = name(tbs.expect(SEQUENCE)?);
    let _validity = tbs.expect(SEQUENCE)?;
    identity.subject = name(tbs.expect(SEQUENCE)?);
    let _key = tbs.expect(SEQUENCE)?;
    while let Some(element) = tbs.next() {
        if element.tag == EXTENSIONS {
            read_extensions(element.body, identity);
        }
    }
    Some(())
}

fn read_extensions(body: &[u8], identity: &mut PeerIdentity) -> Option<()> {
    let mut extensions = Der(Der(body).expect(SEQUENCE)?);
    while let Some(extension) = extensions.next() {
        let mut fields = Der(extension.body);
        if fields.expect(OID)? != SUBJECT_ALT_NAME {
            continue;
        }
        let mut value = fields.next()?;
        if value.tag == BOOLEAN {
            value = fields.next()?; // critical
        }
        if value.tag != OCTET_STRING {
            return None;
        }
        let mut names = Der(Der(value.body).expect(SEQUENCE)?);
        while let Some(general) = names.next() {
            if let Some(text) = general_name(&general) {
                identity.subject_alt_names.push(text);
            }
        }
    }
    Some(())
}

/// One GeneralName, as text; `None` for the kinds not shown.
fn general_name(name: &Element<'_>) -> Option<String> {
    let text = || String::from_utf8_lossy(name.body).into_owned();
    match name.tag {
        0x81 => Some(format!("email:{}", text())),
        0x82 => Some(format!("DNS:{}", text())),
        0x86 => Some(format!("URI:{}", text())),
        0x87 => match name.body.len() {
            4 => {
                let octets: [u8; 4] = name.body.try_into().ok()?;
                Some(format!("IP:{}", std::net::Ipv4Addr::from(octets)))
            }
            16 => {
                let octets: [u8; 16] = name.body.try_into().ok()?;
                Some(format!("IP:{}", std::net::Ipv6Addr::from(octets)))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A distinguished name as `CN=…, O=…`, most specific (last) first.
fn name(body: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rdns = Der(body);
    while let Some(rdn) = rdns.next() {
        if rdn.tag != SET {
            continue;
        }
        let mut attributes = Der(rdn.body);
        while let Some(attribute) = attributes.next() {
            let mut fields = Der(attribute.body);
            let (Some(oid), Some(value)) = (fields.expect(OID), fields.next()) else { continue };
            parts.push(format!("{}={}", attribute_name(oid), String::from_utf8_lossy(value.body)));
        }
    }
    parts.reverse();
    parts.join(", ")
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        other => {
            let hex: String = other.iter().map(|b| format!("{b:02x}")).collect();
            format!("OID.{hex}")
        }
    }
}
