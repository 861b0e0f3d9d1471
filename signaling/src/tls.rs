//! TLS material for HTTPS and WSS: PEM files when given, otherwise a self-signed ECDSA P-256
//! certificate generated once into the state dir and reused on every later start, so the
//! exception a browser user accepted stays valid.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{ConfigError, TlsSource};

/// The certificate chain and key in use, and where they came from.
pub struct TlsMaterial {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    /// Where the certificate is on disk (the generated one or TLS_CERT).
    pub cert_path: PathBuf,
    /// True when this start generated a new certificate.
    pub generated_now: bool,
}

impl TlsMaterial {
    /// SHA-256 fingerprint of the leaf certificate, colon-separated upper-case hex.
    pub fn fingerprint_sha256(&self) -> String {
        self.chain[0]
            .digest(MessageDigest::sha256())
            .map(|d| {
                d.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default()
    }

    /// A rustls server configuration: TLS 1.2 and 1.3 only, ALPN http/1.1.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, ConfigError> {
        let setting = "TLS_CERT";
        let chain = self
            .chain
            .iter()
            .map(|c| c.to_der().map(CertificateDer::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(setting, e))?;
        let key = self
            .key
            .private_key_to_pkcs8()
            .map_err(|e| ConfigError::new("TLS_KEY", e))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConfigError::new(setting, e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| ConfigError::new("TLS_KEY", e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Loads the configured files, or the generated certificate (creating it on first start).
pub fn load(
    source: &TlsSource,
    state_dir: &Path,
    advertise: IpAddr,
) -> Result<TlsMaterial, ConfigError> {
    match source {
        TlsSource::Files { cert, key } => {
            let (chain, key) = read_pair(cert, key, "TLS_CERT", "TLS_KEY")?;
            Ok(TlsMaterial {
                chain,
                key,
                cert_path: cert.clone(),
                generated_now: false,
            })
        }
        TlsSource::Generated => {
            let dir = state_dir.join("tls");
            let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
            if cert_path.exists() || key_path.exists() {
                let (chain, key) = read_pair(&cert_path, &key_path, "STATE_DIR", "STATE_DIR")?;
                return Ok(TlsMaterial {
                    chain,
                    key,
                    cert_path,
                    generated_now: false,
                });
            }
            let (cert, key) = generate(advertise).map_err(|e| ConfigError::new("STATE_DIR", e))?;
            write_pair(&dir, &cert_path, &key_path, &cert, &key).map_err(|e| {
                ConfigError::new("STATE_DIR", format!("cannot write {}: {e}", dir.display()))
            })?;
            Ok(TlsMaterial {
                chain: vec![cert],
                key,
                cert_path,
                generated_now: true,
            })
        }
    }
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    cert_setting: &'static str,
    key_setting: &'static str,
) -> Result<(Vec<X509>, PKey<Private>), ConfigError> {
    let cert_pem = fs::read(cert_path).map_err(|e| {
        ConfigError::new(
            cert_setting,
            format!("cannot read {}: {e}", cert_path.display()),
        )
    })?;
    let chain = X509::stack_from_pem(&cert_pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ConfigError::new(
                cert_setting,
                format!("{} holds no PEM certificate", cert_path.display()),
            )
        })?;
    let key_pem = fs::read(key_path).map_err(|e| {
        ConfigError::new(
            key_setting,
            format!("cannot read {}: {e}", key_path.display()),
        )
    })?;
    let key = PKey::private_key_from_pem(&key_pem).map_err(|_| {
        ConfigError::new(
            key_setting,
            format!("{} holds no PEM private key", key_path.display()),
        )
    })?;
    let matches = chain[0].public_key().is_ok_and(|pk| pk.public_eq(&key));
    if !matches {
        return Err(ConfigError::new(
            key_setting,
            format!(
                "{} does not match the certificate {}",
                key_path.display(),
                cert_path.display()
            ),
        ));
    }
    Ok((chain, key))
}

/// A self-signed ECDSA P-256 certificate for localhost, 127.0.0.1, the advertise address and the
/// host name.
fn generate(advertise: IpAddr) -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let host = host_name();
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, host.as_deref().unwrap_or("localhost"))?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "webrtc-phone self-signed")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    // Valid from now for ten years: long enough that a user accepts the exception once.
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    san.dns("localhost").ip("127.0.0.1").ip("::1");
    let adv = advertise.to_string();
    if !advertise.is_loopback() {
        san.ip(&adv);
    }
    if let Some(h) = host.as_deref().filter(|h| *h != "localhost") {
        san.dns(h);
    }
    let san = san.build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

fn write_pair(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    cert: &X509,
    key: &PKey<Private>,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let key_pem = key
        .private_key_to_pem_pkcs8()
        .map_err(std::io::Error::other)?;
    let cert_pem = cert.to_pem().map_err(std::io::Error::other)?;
    // Write to temporary names and rename, so a crash never leaves half a pair behind.
    let key_tmp = dir.join(".key.pem.tmp");
    let cert_tmp = dir.join(".cert.pem.tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_tmp)?;
    f.write_all(&key_pem)?;
    f.sync_all()?;
    fs::write(&cert_tmp, cert_pem)?;
    fs::rename(key_tmp, key_path)?;
    fs::rename(cert_tmp, cert_path)?;
    Ok(())
}

fn host_name() -> Option<String> {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    .then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wp-tls-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tmpdir("reuse");
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let a = load(&TlsSource::Generated, &dir, ip).unwrap();
        assert!(a.generated_now);
        let b = load(&TlsSource::Generated, &dir, ip).unwrap();
        assert!(!b.generated_now);
        assert_eq!(a.fingerprint_sha256(), b.fingerprint_sha256());
        let mode = fs::metadata(dir.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key must not be readable by others");
        let san = a.chain[0].subject_alt_names().unwrap();
        let ips: Vec<Vec<u8>> = san
            .iter()
            .filter_map(|n| n.ipaddress().map(<[u8]>::to_vec))
            .collect();
        assert!(ips.contains(&vec![127, 0, 0, 1]));
        assert!(ips.contains(&vec![192, 0, 2, 10]));
        assert!(san.iter().any(|n| n.dnsname() == Some("localhost")));
        a.server_config().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn mismatched_and_unreadable_files_are_named() {
        let dir = tmpdir("mismatch");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        load(&TlsSource::Generated, &dir.join("a"), ip).unwrap();
        load(&TlsSource::Generated, &dir.join("b"), ip).unwrap();
        let e = load(
            &TlsSource::Files {
                cert: dir.join("a/tls/cert.pem"),
                key: dir.join("b/tls/key.pem"),
            },
            &dir,
            ip,
        )
        .err()
        .unwrap();
        assert_eq!(e.setting, "TLS_KEY");
        let e = load(
            &TlsSource::Files {
                cert: dir.join("missing.pem"),
                key: dir.join("b/tls/key.pem"),
            },
            &dir,
            ip,
        )
        .err()
        .unwrap();
        assert_eq!(e.setting, "TLS_CERT");
        let ok = load(
            &TlsSource::Files {
                cert: dir.join("a/tls/cert.pem"),
                key: dir.join("a/tls/key.pem"),
            },
            &dir,
            ip,
        )
        .unwrap();
        ok.server_config().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }
}
