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
    /// The subject's distinguished name in RFC 4514's form, as
    /// `CN=alice,O=Example` (most specific first; special characters
    /// escaped, so that no value can pass for another attribute). Compare
    /// it whole; to read one attribute, use [`PeerIdentity::subject_attribute`].
    pub subject: String,
    /// The issuer's distinguished name, in the same form.
    pub issuer: String,
    /// The subject alternative names: `DNS:host`, `IP:10.0.0.1`,
    /// `URI:spiffe://…`, `email:a@b` (control characters shown as `\xNN`).
    pub subject_alt_names: Vec<String>,
    /// The subject's attributes, most specific first, values unescaped.
    subject_attributes: Vec<(String, String)>,
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
            subject_attributes: Vec::new(),
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

    /// The subject's common name (`CN`, the most specific one), if it has
    /// one: the value as the certificate holds it.
    pub fn common_name(&self) -> Option<&str> {
        self.subject_attribute("CN")
    }

    /// The value of the subject's most specific attribute named `name`
    /// (`CN`, `O`, `OU`, `C`, `DC`, … or a dotted OID), as the certificate
    /// holds it.
    pub fn subject_attribute(&self, name: &str) -> Option<&str> {
        self.subject_attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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
    identity.issuer = rfc4514(&name(tbs.expect(SEQUENCE)?));
    let _validity = tbs.expect(SEQUENCE)?;
    let subject = name(tbs.expect(SEQUENCE)?);
    identity.subject = rfc4514(&subject);
    identity.subject_attributes =
        subject.into_iter().rev().flatten().map(|(name, value, _)| (name, value)).collect();
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
    let text = || printable(&String::from_utf8_lossy(name.body));
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

/// `text` with control characters shown as `\xNN`, so that it cannot
/// break a log line.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A relative distinguished name: its attributes (more than one in a
/// multi-valued RDN): name, value, and whether the value is the hex of a
/// value that is not a string (shown as it is, never escaped).
type Rdn = Vec<(String, String, bool)>;

/// A distinguished name's RDNs, in the certificate's order (most general
/// first).
fn name(body: &[u8]) -> Vec<Rdn> {
    let mut rdns = Vec::new();
    let mut elements = Der(body);
    while let Some(rdn) = elements.next() {
        if rdn.tag != SET {
            continue;
        }
        let mut attributes = Der(rdn.body);
        let mut parts = Vec::new();
        while let Some(attribute) = attributes.next() {
            let mut fields = Der(attribute.body);
            let (Some(oid), Some(value)) = (fields.expect(OID), fields.next()) else { continue };
            let (text, hex) = string_value(&value);
            parts.push((attribute_name(oid), text, hex));
        }
        if !parts.is_empty() {
            rdns.push(parts);
        }
    }
    rdns
}

/// A directory string's text, by its type; another type as `#` and the
/// hex of its encoding (RFC 4514's form for values that are not strings),
/// said by the flag.
fn string_value(value: &Element<'_>) -> (String, bool) {
    let text = match value.tag {
        // UTF8String, PrintableString, IA5String, VisibleString, NumericString.
        0x0c | 0x13 | 0x16 | 0x1a | 0x12 => String::from_utf8_lossy(value.body).into_owned(),
        // TeletexString: in practice Latin-1.
        0x14 => value.body.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16, big-endian.
        0x1e => {
            let units = value.body.chunks_exact(2).filter_map(|p| p.try_into().ok()).map(u16::from_be_bytes);
            char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
        }
        // UniversalString: UTF-32, big-endian.
        0x1c => value
            .body
            .chunks_exact(4)
            .filter_map(|q| q.try_into().ok())
            .map(|q| char::from_u32(u32::from_be_bytes(q)).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        _ => {
            let mut hex = format!("#{:02x}", value.tag);
            let len = value.body.len();
            if len < 0x80 {
                hex.push_str(&format!("{len:02x}"));
            } else {
                let bytes = len.to_be_bytes();
                let significant: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
                hex.push_str(&format!("{:02x}", 0x80 | significant.len()));
                significant.iter().for_each(|b| hex.push_str(&format!("{b:02x}")));
            }
            value.body.iter().for_each(|b| hex.push_str(&format!("{b:02x}")));
            return (hex, true);
        }
    };
    (text, false)
}

/// RDNs in RFC 4514's text form: most specific first, separated by `,`,
/// the attributes of a multi-valued RDN by `+`, values escaped.
fn rfc4514(rdns: &[Rdn]) -> String {
    let rdn_text = |rdn: &Rdn| {
        let attribute = |(name, value, hex): &(String, String, bool)| {
            if *hex { format!("{name}={value}") } else { format!("{name}={}", escape(value)) }
        };
        rdn.iter().map(attribute).collect::<Vec<_>>().join("+")
    };
    rdns.iter().rev().map(rdn_text).collect::<Vec<_>>().join(",")
}

/// A value escaped as RFC 4514 says (and control characters as `\XX`).
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        other => dotted(other),
    }
}

/// An OID in dotted decimal (RFC 4514's form for attributes it has no
/// short name for).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc: u64 = 0;
    for &byte in oid {
        arc = arc.saturating_mul(128).saturating_add(u64::from(byte & 0x7f));
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (arc / 40).min(2);
                arcs.push(first);
                arcs.push(arc - first * 40);
            } else {
                arcs.push(arc);
            }
            arc = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}
