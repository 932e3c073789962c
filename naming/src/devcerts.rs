//! Certificates for local development and tests — **not for production.**
//!
//! A [`DevCa`] is a throwaway certificate authority made in memory; it
//! issues server and client certificates for the names given, valid for a
//! chosen window. `rmi-naming dev-certs DIR` writes one CA, a server
//! certificate and a client certificate there as PEM files, ready for the
//! `RMI_TLS_*` variables. A real deployment takes its certificates from its
//! own CA (or ACME), keeps keys out of world-readable files, and renews
//! them; nothing here does any of that.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rmi_core::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// rcgen refused the parameters (a name that is not a DNS name, say).
    #[error("cannot make the certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// From.
    pub not_before: SystemTime,
    /// Until.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago for `days` days (at most about 100 years).
    pub fn days(days: u64) -> Self {
        let now = SystemTime::now();
        let days = days.min(36_500);
        Validity {
            not_before: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
            not_after: now.checked_add(Duration::from_secs(days * 86_400)).unwrap_or(now),
        }
    }

    /// Ended an hour ago (for tests of expired certificates).
    pub fn expired() -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(48 * 3600),
            not_after: now - Duration::from_secs(3600),
        }
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A daemon's or name server's certificate (TLS server authentication).
    Server,
    /// A client's certificate (TLS client authentication).
    Client,
}

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl DevCert {
    /// The certificate chain (this certificate alone: the CA is the trust
    /// anchor).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A throwaway certificate authority.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert: DevCert,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new CA named `name` (its common name), valid for ten years.
    ///
    /// # Errors
    ///
    /// rcgen's error.
    pub fn new(name: &str) -> Result<Self, DevCertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let validity = Validity::days(3650);
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        let key = KeyPair::generate()?;
        let certificate = params.self_signed(&key)?;
        let cert = DevCert {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().clone(),
            key_der: key.serialize_der(),
        };
        Ok(DevCa { issuer: Issuer::new(params, key), cert })
    }

    /// The CA's own certificate: what `RMI_TLS_CA` points at.
    pub fn cert(&self) -> &DevCert {
        &self.cert
    }

    /// A certificate for `common_name` with `names` as its subject
    /// alternative names (DNS names, or IP addresses), for `usage`.
    ///
    /// # Errors
    ///
    /// rcgen's error (a name that is neither a DNS name nor an address).
    pub fn issue(
        &self,
        common_name: &str,
        names: &[&str],
        usage: Usage,
        validity: Validity,
    ) -> Result<DevCert, DevCertError> {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        if usage == Usage::Client && names.is_empty() {
            params.subject_alt_names.push(SanType::URI(format!("rmi://client/{common_name}").try_into()?));
        }
        params.distinguished_name = distinguished(common_name);
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(DevCert {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

fn distinguished(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "rmi development (not for production)");
    name.push(DnType::CommonName, common_name);
    name
}

/// The files [`write_dev_files`] writes, by their `RMI_TLS_*` variable.
pub const DEV_FILES: &[(&str, &str)] = &[
    ("RMI_TLS_CA", "ca.pem"),
    ("RMI_TLS_SERVER_CERT", "server.pem"),
    ("RMI_TLS_SERVER_KEY", "server.key"),
    ("RMI_TLS_CLIENT_CERT", "client.pem"),
    ("RMI_TLS_CLIENT_KEY", "client.key"),
];

/// Writes a new CA (`ca.pem`), a server certificate for `hosts` with its
/// key (`server.pem`, `server.key`) and a client certificate named
/// `client` with its key (`client.pem`, `client.key`) into `dir`, valid for
/// `days` days. Keys are written readable by their owner only. The CA's
/// key is not kept: nothing more can be issued by it.
///
/// # Errors
///
/// A certificate that cannot be made, or a file that cannot be written.
pub fn write_dev_files(dir: &Path, hosts: &[&str], days: u64) -> Result<Vec<PathBuf>, DevCertError> {
    let ca = DevCa::new("rmi development CA")?;
    let server =
        ca.issue(hosts.first().copied().unwrap_or("localhost"), hosts, Usage::Server, Validity::days(days))?;
    let client = ca.issue("client", &[], Usage::Client, Validity::days(days))?;
    std::fs::create_dir_all(dir).map_err(|source| DevCertError::Write { path: dir.to_path_buf(), source })?;
    let files = [
        ("ca.pem", &ca.cert().cert_pem, false),
        ("server.pem", &server.cert_pem, false),
        ("server.key", &server.key_pem, true),
        ("client.pem", &client.cert_pem, false),
        ("client.key", &client.key_pem, true),
    ];
    let mut written = Vec::new();
    for (name, text, secret) in files {
        let path = dir.join(name);
        write_file(&path, text, secret)
            .map_err(|source| DevCertError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    if secret {
        // A file that was there already keeps its mode when opened: set it,
        // before the key is written.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}
