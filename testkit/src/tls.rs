//! The TLS client side of tests and the load generator: any server certificate is accepted
//! (the gateway's is self-signed; tests that care check it by fingerprint). Loopback only.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts any server certificate; signatures are still checked with the provider's
/// algorithms, so the handshake itself is real.
#[derive(Debug)]
pub struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl AnyCert {
    /// A verifier that checks signatures with `provider`.
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        AnyCert(provider)
    }
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration (ring provider, no client certificate) offering `versions` and
/// accepting any server certificate.
pub fn any_cert_client_config_with(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert::new(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// [`any_cert_client_config_with`] offering TLS 1.3 and 1.2.
pub fn any_cert_client_config() -> Arc<rustls::ClientConfig> {
    any_cert_client_config_with(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2")
}
