//! DTLS 1.2 for DTLS-SRTP (RFC 5764, RFC 8842) over OpenSSL, sans-IO: datagrams go in through
//! [`DtlsEndpoint::handle_input`] and come out of [`DtlsEndpoint::poll_transmit`]; OpenSSL sees
//! an in-memory datagram BIO and never a socket.
//!
//! Certificates are self-signed and not chain-checked: the peer's certificate digest is
//! compared with the `a=fingerprint` from its SDP once the handshake ends (RFC 8122 §5).
//!
//! The retransmit timer is the one documented seam with OpenSSL's own clock: OpenSSL starts and
//! expires its timer on the wall clock (`DTLSv1_get_timeout` reports what is left,
//! `DTLSv1_handle_timeout` retransmits only once that has run out). We turn what is left into a
//! deadline on the caller's `now`, and poke OpenSSL only from [`DtlsEndpoint::handle_timeout`].
//! If the caller's clock runs ahead of the wall clock, the poke is a no-op and the deadline is
//! re-armed from what OpenSSL still reports.

#![deny(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::c_uint;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509NameBuilder, X509Ref, X509};

use super::srtp::{split_keying_material, SrtpError, SrtpKeys, SrtpProfile};
use ffi::{clear_error_queue, MAX_TIMEOUT_US};

// OpenSSL's C API beyond the openssl crate lives in `ffi`, the one file of DTLS with `unsafe`.
mod ffi;

/// The MTU OpenSSL fragments handshake flights to.
pub const DTLS_MTU: u32 = 1200;
/// The `use_srtp` list we offer, in preference order.
pub const SRTP_PROFILES: &str =
    "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32";
/// Ciphers: ECDHE with ECDSA (browsers' certificates and ours) or RSA, AEAD only.
const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-RSA-CHACHA20-POLY1305";
/// The RFC 5705 exporter label for DTLS-SRTP keys (RFC 5764 §4.2).
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// RFC 6347 §4.2.4.1: start at 1 s, double per retransmission, at most 60 s.
pub const DEFAULT_INITIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Why DTLS failed, or could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The peer's certificate digest differs from its SDP fingerprint (a misbehaving or
    /// impersonating peer).
    #[error("peer certificate does not match the SDP fingerprint")]
    FingerprintMismatch,
    /// The peer sent no certificate.
    #[error("peer sent no certificate")]
    NoPeerCertificate,
    /// The handshake ended without a `use_srtp` profile we support (incompatible peer).
    #[error("no common SRTP protection profile")]
    NoSrtpProfile,
    /// OpenSSL gave up after too many retransmissions.
    #[error("DTLS handshake timed out")]
    Timeout,
    /// The handshake failed inside OpenSSL (alert, bad message).
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// An SDP fingerprint we cannot read (unknown algorithm, bad hex).
    #[error("bad fingerprint: {0}")]
    BadFingerprint(String),
    /// Key export or split failed.
    #[error("SRTP key export failed: {0}")]
    KeyExport(String),
    /// Building the certificate or the OpenSSL context failed.
    #[error("DTLS setup failed: {0}")]
    Setup(String),
}

impl From<ErrorStack> for DtlsError {
    fn from(e: ErrorStack) -> Self {
        DtlsError::Setup(e.to_string())
    }
}

/// Hash algorithms of `a=fingerprint` (RFC 8122 §5; RFC 8842 requires sha-256 support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// sha-1.
    Sha1,
    /// sha-224.
    Sha224,
    /// sha-256.
    Sha256,
    /// sha-384.
    Sha384,
    /// sha-512.
    Sha512,
}

impl HashAlg {
    /// The SDP token.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha-1",
            HashAlg::Sha224 => "sha-224",
            HashAlg::Sha256 => "sha-256",
            HashAlg::Sha384 => "sha-384",
            HashAlg::Sha512 => "sha-512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            HashAlg::Sha1 => MessageDigest::sha1(),
            HashAlg::Sha224 => MessageDigest::sha224(),
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
        }
    }

    fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

impl FromStr for HashAlg {
    type Err = DtlsError;
    fn from_str(s: &str) -> Result<Self, DtlsError> {
        [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| DtlsError::BadFingerprint(format!("unknown hash function {s:?}")))
    }
}

/// A certificate fingerprint: algorithm and digest (RFC 8122 §5).
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    alg: HashAlg,
    digest: [u8; 64],
}

impl Fingerprint {
    /// Parses the SDP form `sha-256 AB:CD:...`; algorithm and hex are case-insensitive.
    pub fn parse(sdp_value: &str) -> Result<Self, DtlsError> {
        let (alg, hex) = sdp_value
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| DtlsError::BadFingerprint(sdp_value.to_owned()))?;
        Self::from_parts(alg.parse()?, hex.trim())
    }

    /// Parses the colon-separated hex digest for `alg`.
    pub fn from_parts(alg: HashAlg, hex: &str) -> Result<Self, DtlsError> {
        let bad = || DtlsError::BadFingerprint(hex.to_owned());
        let mut digest = [0u8; 64];
        let mut n = 0;
        for pair in hex.split(':') {
            if pair.len() != 2 || n == alg.len() {
                return Err(bad());
            }
            digest[n] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != alg.len() {
            return Err(bad());
        }
        Ok(Self { alg, digest })
    }

    /// The fingerprint of `cert` under `alg`.
    pub fn of(cert: &X509Ref, alg: HashAlg) -> Result<Self, DtlsError> {
        let d = cert.digest(alg.digest())?;
        let mut digest = [0u8; 64];
        digest[..d.len()].copy_from_slice(&d);
        Ok(Self { alg, digest })
    }

    /// The algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest[..self.alg.len()]
    }

    /// The SDP attribute value: `sha-256 AB:CD:...`.
    pub fn to_sdp(&self) -> String {
        format!("{} {self}", self.alg.name())
    }
}

/// Upper-case colon-separated hex, as browsers print it: `AB:CD:...`.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.digest().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({} {self})", self.alg.name())
    }
}

/// The process-wide DTLS identity: one self-signed ECDSA P-256 certificate and the OpenSSL
/// context every endpoint shares, so every session shows the same fingerprint. Cloning is
/// cheap (reference counted).
#[derive(Clone)]
pub struct DtlsIdentity {
    ctx: SslContext,
    fingerprint: Fingerprint,
}

impl fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// A self-signed ECDSA P-256 certificate valid from a year before `now` to ten years after.
pub(crate) fn self_signed(
    now: SystemTime,
    common_name: &str,
) -> Result<(X509, PKey<openssl::pkey::Private>), ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    const YEAR: i64 = 365 * 24 * 3600;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let not_before = Asn1Time::from_unix((secs - YEAR) as libc::time_t)?;
    let not_after = Asn1Time::from_unix((secs + 10 * YEAR) as libc::time_t)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

impl DtlsIdentity {
    /// Generates the certificate (≈ 2.4 ms) and the shared context. `now` sets the validity
    /// window; the caller reads the clock.
    pub fn generate(now: SystemTime) -> Result<Self, DtlsError> {
        let (cert, key) = self_signed(now, "webrtc-phone")?;
        let mut b = SslContextBuilder::new(SslMethod::dtls())?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_cipher_list(CIPHERS)?;
        b.set_tlsext_use_srtp(SRTP_PROFILES)?;
        b.set_certificate(&cert)?;
        b.set_private_key(&key)?;
        b.check_private_key()?;
        // Self-signed peers: accept any chain, demand a certificate, compare its digest later.
        b.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            |_, _| true,
        );
        b.set_options(SslOptions::NO_QUERY_MTU | SslOptions::SINGLE_ECDH_USE);
        let fingerprint = Fingerprint::of(&cert, HashAlg::Sha256)?;
        Ok(Self {
            ctx: b.build(),
            fingerprint,
        })
    }

    /// The SHA-256 fingerprint for our SDP (`a=fingerprint:sha-256 AB:CD:...`).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

/// Our DTLS role, from the peer's `a=setup` (RFC 5763 §5): `active` is the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello (`a=setup:active`).
    Client,
    /// We wait for it (`a=setup:passive`).
    Server,
}

/// What an endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsEvent {
    /// The handshake finished and the peer's fingerprint matched.
    Connected {
        /// The negotiated profile.
        profile: SrtpProfile,
        /// Our send and receive keys.
        keys: SrtpKeys,
    },
    /// The handshake failed; the endpoint ignores everything from now on.
    Failed(DtlsError),
    /// The peer sent close_notify.
    Closed,
}

/// The in-memory datagram BIO: one `write` is one datagram out; a `read` hands OpenSSL the one
/// pending datagram, or `WouldBlock`.
#[derive(Debug, Default)]
struct Pipe {
    inbound: Vec<u8>,
    has_inbound: bool,
    outbound: VecDeque<Vec<u8>>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.has_inbound {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.has_inbound = false;
        let n = buf.len().min(self.inbound.len());
        buf[..n].copy_from_slice(&self.inbound[..n]);
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.push_back(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum State {
    Handshaking,
    Connected,
    Done,
}

/// Settings of one endpoint.
#[derive(Debug, Clone)]
pub struct DtlsConfig {
    /// Our role.
    pub role: DtlsRole,
    /// The peer's `a=fingerprint`.
    pub remote_fingerprint: Fingerprint,
    /// First retransmit timeout (RFC 6347 §4.2.4.1 suggests 1 s); at least 20 ms, because
    /// OpenSSL treats a timer with less than 15 ms left as expired.
    pub initial_timeout: Duration,
}

impl DtlsConfig {
    /// `role`, the peer's fingerprint, and the default 1 s initial timeout.
    pub fn new(role: DtlsRole, remote_fingerprint: Fingerprint) -> Self {
        Self {
            role,
            remote_fingerprint,
            initial_timeout: DEFAULT_INITIAL_TIMEOUT,
        }
    }
}

/// One DTLS association of one WebRTC leg.
pub struct DtlsEndpoint {
    stream: SslStream<Pipe>,
    role: DtlsRole,
    state: State,
    expected: Fingerprint,
    events: VecDeque<DtlsEvent>,
    deadline: Option<Instant>,
    /// OpenSSL may have written since the outbound queue was last found empty. Reaching the
    /// queue goes through `SSL_get_rbio` and `BIO_get_data` (3 % of the gateway's CPU at 500
    /// calls when it was asked once per relayed packet), so `poll_transmit` asks only when a
    /// call into OpenSSL came in between.
    may_transmit: bool,
}

impl fmt::Debug for DtlsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsEndpoint")
            .field("role", &self.role)
            .field("connected", &self.is_connected())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl DtlsEndpoint {
    /// Creates the endpoint; a client sends its ClientHello at once (collect it with
    /// [`DtlsEndpoint::poll_transmit`]).
    pub fn new(
        identity: &DtlsIdentity,
        config: DtlsConfig,
        now: Instant,
    ) -> Result<Self, DtlsError> {
        let mut ssl = Ssl::new(&identity.ctx)?;
        ssl.set_mtu(DTLS_MTU)?;
        let initial_us = c_uint::try_from(config.initial_timeout.as_micros())
            .unwrap_or(MAX_TIMEOUT_US)
            .clamp(20_000, MAX_TIMEOUT_US);
        ffi::install_retransmit_timer(&mut ssl, initial_us)?;
        match config.role {
            DtlsRole::Client => ssl.set_connect_state(),
            DtlsRole::Server => ssl.set_accept_state(),
        }
        let stream = SslStream::new(ssl, Pipe::default())?;
        let mut ep = Self {
            stream,
            role: config.role,
            state: State::Handshaking,
            expected: config.remote_fingerprint,
            events: VecDeque::with_capacity(2),
            deadline: None,
            may_transmit: true,
        };
        if ep.role == DtlsRole::Client {
            ep.drive(now);
        }
        Ok(ep)
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// True once the handshake succeeded (and until close or failure).
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected)
    }

    /// Feeds one received DTLS datagram (first byte 20..=63).
    pub fn handle_input(&mut self, now: Instant, datagram: &[u8]) {
        if matches!(self.state, State::Done) {
            return;
        }
        let pipe = self.stream.get_mut();
        pipe.inbound.clear();
        pipe.inbound.extend_from_slice(datagram);
        pipe.has_inbound = true;
        self.may_transmit = true;
        self.drive(now);
        self.stream.get_mut().has_inbound = false;
    }

    /// Fires OpenSSL's retransmit timer if our deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if now >= d && !matches!(self.state, State::Done) => {}
            _ => return,
        }
        clear_error_queue();
        self.may_transmit = true;
        if !ffi::handle_timeout(self.stream.ssl()) {
            self.fail(DtlsError::Timeout);
            return;
        }
        self.update_timer(now);
    }

    /// Sends close_notify (RFC 5246 §7.2.1) if connected, and ignores everything after.
    pub fn close(&mut self) {
        if matches!(self.state, State::Connected) {
            clear_error_queue();
            // One call queues the alert; we do not wait for the peer's.
            self.may_transmit = true;
            let _ = self.stream.shutdown();
        }
        self.state = State::Done;
        self.deadline = None;
    }

    /// The next datagram OpenSSL wrote, to send to the peer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if !self.may_transmit {
            return None;
        }
        let d = self.stream.get_mut().outbound.pop_front();
        self.may_transmit = d.is_some();
        d
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.events.pop_front()
    }

    /// When [`DtlsEndpoint::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn fail(&mut self, e: DtlsError) {
        self.state = State::Done;
        self.deadline = None;
        self.events.push_back(DtlsEvent::Failed(e));
    }

    fn drive(&mut self, now: Instant) {
        clear_error_queue();
        if matches!(self.state, State::Handshaking) {
            match self.stream.do_handshake() {
                Ok(()) => match self.finish_handshake() {
                    Ok(ev) => {
                        self.state = State::Connected;
                        self.events.push_back(ev);
                    }
                    Err(e) => return self.fail(e),
                },
                Err(e) if is_retry(e.code()) => {}
                Err(e) => return self.fail(DtlsError::Handshake(e.to_string())),
            }
        }
        if matches!(self.state, State::Connected) {
            // After the handshake OpenSSL still answers a retransmitted final flight; any
            // application data (no data channels here) is read and dropped.
            let mut scratch = [0u8; 1500];
            loop {
                match self.stream.ssl_read(&mut scratch) {
                    Ok(_) => continue,
                    Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                        self.state = State::Done;
                        self.deadline = None;
                        self.events.push_back(DtlsEvent::Closed);
                        return;
                    }
                    Err(e) if is_retry(e.code()) => break,
                    Err(e) => return self.fail(DtlsError::Handshake(e.to_string())),
                }
            }
        }
        self.update_timer(now);
    }

    fn finish_handshake(&mut self) -> Result<DtlsEvent, DtlsError> {
        let ssl = self.stream.ssl();
        let cert = ssl.peer_certificate().ok_or(DtlsError::NoPeerCertificate)?;
        if Fingerprint::of(&cert, self.expected.alg())? != self.expected {
            return Err(DtlsError::FingerprintMismatch);
        }
        let profile = ssl
            .selected_srtp_profile()
            .and_then(|p| u16::try_from(p.id().as_raw()).ok())
            .and_then(SrtpProfile::from_id)
            .ok_or(DtlsError::NoSrtpProfile)?;
        let mut material = [0u8; 88];
        let material = &mut material[..profile.keying_material_len()];
        ssl.export_keying_material(material, EXPORTER_LABEL, None)
            .map_err(|e| DtlsError::KeyExport(e.to_string()))?;
        let keys = split_keying_material(profile, material, self.role == DtlsRole::Client)
            .map_err(|e: SrtpError| DtlsError::KeyExport(e.to_string()))?;
        material.fill(0);
        Ok(DtlsEvent::Connected { profile, keys })
    }

    fn update_timer(&mut self, now: Instant) {
        self.deadline = ffi::timeout_left(self.stream.ssl()).map(|left| now + left);
    }
}

fn is_retry(code: ErrorCode) -> bool {
    code == ErrorCode::WANT_READ || code == ErrorCode::WANT_WRITE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use testkit::VirtualClock;

    fn identity() -> DtlsIdentity {
        static ID: OnceLock<DtlsIdentity> = OnceLock::new();
        ID.get_or_init(|| {
            DtlsIdentity::generate(UNIX_EPOCH + Duration::from_secs(1_750_000_000)).unwrap()
        })
        .clone()
    }

    fn endpoint(role: DtlsRole, peer: &Fingerprint, now: Instant) -> DtlsEndpoint {
        DtlsEndpoint::new(&identity(), DtlsConfig::new(role, peer.clone()), now).unwrap()
    }

    fn connected(ev: Option<DtlsEvent>) -> SrtpKeys {
        match ev {
            Some(DtlsEvent::Connected { profile, keys }) => {
                assert_eq!(profile, keys.profile);
                keys
            }
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    /// Moves datagrams between two endpoints until both are quiet; `drop` decides, per
    /// (direction, datagram number), which are lost.
    fn shuttle(
        a: &mut DtlsEndpoint,
        b: &mut DtlsEndpoint,
        now: Instant,
        sent: &mut [usize; 2],
        drop: &mut dyn FnMut(usize, usize) -> bool,
    ) {
        loop {
            let mut moved = false;
            while let Some(d) = a.poll_transmit() {
                moved = true;
                sent[0] += 1;
                if !drop(0, sent[0]) {
                    b.handle_input(now, &d);
                }
            }
            while let Some(d) = b.poll_transmit() {
                moved = true;
                sent[1] += 1;
                if !drop(1, sent[1]) {
                    a.handle_input(now, &d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn identity_fingerprint_is_sha256_upper_hex() {
        let id = identity();
        let fp = id.fingerprint().to_string();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp
            .bytes()
            .all(|c| c == b':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        let sdp = id.fingerprint().to_sdp();
        assert!(sdp.starts_with("sha-256 "));
        assert_eq!(
            &Fingerprint::parse(&sdp.to_lowercase()).unwrap(),
            id.fingerprint()
        );
        assert_eq!(
            &Fingerprint::parse(&format!("SHA-256  {fp}")).unwrap(),
            id.fingerprint()
        );
        assert!(Fingerprint::parse("sha-256 AB:CD").is_err());
        assert!(Fingerprint::parse("md5 AB:CD").is_err());
        assert!(Fingerprint::parse(&format!("sha-1 {fp}")).is_err());
    }

    #[test]
    fn our_endpoints_handshake_in_both_roles() {
        let fp = identity().fingerprint().clone();
        let now = VirtualClock::new().now();
        let mut client = endpoint(DtlsRole::Client, &fp, now);
        let mut server = endpoint(DtlsRole::Server, &fp, now);
        assert!(
            client.poll_timeout().is_some(),
            "the ClientHello arms the timer"
        );
        shuttle(&mut client, &mut server, now, &mut [0; 2], &mut |_, _| {
            false
        });
        let c = connected(client.poll_event());
        let s = connected(server.poll_event());
        assert_eq!(
            c.profile,
            SrtpProfile::AeadAes256Gcm,
            "our first preference"
        );
        assert_eq!(c.local, s.remote);
        assert_eq!(c.remote, s.local);
        assert_ne!(c.local, c.remote);
        assert!(client.is_connected() && server.is_connected());
        assert_eq!(client.poll_event(), None);
    }

    #[test]
    fn other_fingerprint_algorithms_verify() {
        let id = identity();
        let cert = id.ctx.certificate().unwrap();
        for alg in [HashAlg::Sha1, HashAlg::Sha384, HashAlg::Sha512] {
            let fp = Fingerprint::of(cert, alg).unwrap();
            let fp = Fingerprint::parse(&fp.to_sdp()).unwrap();
            let now = VirtualClock::new().now();
            let mut client = endpoint(DtlsRole::Client, &fp, now);
            let mut server = endpoint(DtlsRole::Server, &fp, now);
            shuttle(&mut client, &mut server, now, &mut [0; 2], &mut |_, _| {
                false
            });
            connected(client.poll_event());
            connected(server.poll_event());
        }
    }

    #[test]
    fn fingerprint_mismatch_fails() {
        let good = identity().fingerprint().clone();
        let mut bad_digest = good.digest().to_vec();
        bad_digest[0] ^= 1;
        let hex: Vec<String> = bad_digest.iter().map(|b| format!("{b:02x}")).collect();
        let bad = Fingerprint::from_parts(HashAlg::Sha256, &hex.join(":")).unwrap();
        let now = VirtualClock::new().now();
        let mut client = endpoint(DtlsRole::Client, &good, now);
        let mut server = endpoint(DtlsRole::Server, &bad, now);
        shuttle(&mut client, &mut server, now, &mut [0; 2], &mut |_, _| {
            false
        });
        assert_eq!(
            server.poll_event(),
            Some(DtlsEvent::Failed(DtlsError::FingerprintMismatch))
        );
        assert!(!server.is_connected());
        assert_eq!(server.poll_timeout(), None);
        // The failed side ignores whatever comes later.
        server.handle_input(now, &[22, 254, 253, 0, 0]);
        assert_eq!(server.poll_event(), None);
    }

    #[test]
    fn duplicated_final_flights_after_connected_do_not_fail() {
        let fp = identity().fingerprint().clone();
        let now = VirtualClock::new().now();
        let mut client = endpoint(DtlsRole::Client, &fp, now);
        let mut server = endpoint(DtlsRole::Server, &fp, now);
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        loop {
            let mut moved = false;
            while let Some(d) = client.poll_transmit() {
                moved = true;
                server.handle_input(now, &d);
                to_server.push(d);
            }
            while let Some(d) = server.poll_transmit() {
                moved = true;
                client.handle_input(now, &d);
                to_client.push(d);
            }
            if !moved {
                break;
            }
        }
        connected(client.poll_event());
        connected(server.poll_event());
        // Replay every flight to both sides, twice.
        for _ in 0..2 {
            for d in &to_server {
                server.handle_input(now, d);
            }
            for d in &to_client {
                client.handle_input(now, d);
            }
            while let Some(d) = server.poll_transmit() {
                client.handle_input(now, &d);
            }
            while let Some(d) = client.poll_transmit() {
                server.handle_input(now, &d);
            }
        }
        assert!(client.is_connected() && server.is_connected());
        assert_eq!(client.poll_event(), None);
        assert_eq!(server.poll_event(), None);
    }

    /// OpenSSL runs its retransmit timer on the wall clock, so after moving the virtual clock
    /// past the deadline the test lets just enough real time pass for OpenSSL to agree: the
    /// endpoints use a 40 ms initial timeout, and OpenSSL treats < 15 ms left as expired.
    fn lossy_handshake(drop: &mut dyn FnMut(usize, usize) -> bool) -> usize {
        let fp = identity().fingerprint().clone();
        let mut now = VirtualClock::new().now();
        let config = |role| DtlsConfig {
            initial_timeout: Duration::from_millis(40),
            ..DtlsConfig::new(role, fp.clone())
        };
        let mut client = DtlsEndpoint::new(&identity(), config(DtlsRole::Client), now).unwrap();
        let mut server = DtlsEndpoint::new(&identity(), config(DtlsRole::Server), now).unwrap();
        let mut sent = [0; 2];
        let mut timeouts = 0;
        for _ in 0..20 {
            shuttle(&mut client, &mut server, now, &mut sent, drop);
            if client.is_connected() && server.is_connected() {
                break;
            }
            let next = [client.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            now = next.expect("a side that still waits has a timer");
            std::thread::sleep(Duration::from_millis(30));
            client.handle_timeout(now);
            server.handle_timeout(now);
            timeouts += 1;
        }
        let c = connected(client.poll_event());
        let s = connected(server.poll_event());
        assert_eq!((c.local, c.remote), (s.remote, s.local));
        timeouts
    }

    #[test]
    fn lost_client_hello_is_retransmitted_on_the_timer() {
        let timeouts = lossy_handshake(&mut |dir, n| dir == 0 && n == 1);
        assert!(timeouts >= 1);
    }

    #[test]
    fn lost_final_server_flight_is_recovered_after_server_connected() {
        // Flights: client 1 (ClientHello), server 1.., client (Certificate..Finished), server
        // final (ChangeCipherSpec, Finished). Drop every server datagram sent after the
        // client's second flight has reached the server, once.
        let mut seen_client = 0;
        let mut dropped = false;
        let timeouts = lossy_handshake(&mut |dir, n| {
            if dir == 0 {
                seen_client = n;
                return false;
            }
            if seen_client >= 2 && !dropped {
                dropped = true;
                return true;
            }
            false
        });
        assert!(dropped && timeouts >= 1);
    }

    /// A plain OpenSSL DTLS peer, configured directly, over the same kind of memory pipe.
    fn plain_peer(server: bool, profiles: &str) -> SslStream<Pipe> {
        let (cert, key) =
            self_signed(UNIX_EPOCH + Duration::from_secs(1_750_000_000), "plain").unwrap();
        let mut b = SslContextBuilder::new(SslMethod::dtls()).unwrap();
        b.set_tlsext_use_srtp(profiles).unwrap();
        b.set_certificate(&cert).unwrap();
        b.set_private_key(&key).unwrap();
        b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        b.set_options(SslOptions::NO_QUERY_MTU);
        let mut ssl = Ssl::new(&b.build()).unwrap();
        ssl.set_mtu(1200).unwrap();
        if server {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        SslStream::new(ssl, Pipe::default()).unwrap()
    }

    fn plain_handshake(ours: DtlsRole, profiles: &str, want: SrtpProfile) {
        let mut peer = plain_peer(ours == DtlsRole::Client, profiles);
        let peer_fp = Fingerprint::of(peer.ssl().certificate().unwrap(), HashAlg::Sha256).unwrap();
        let now = VirtualClock::new().now();
        let mut ep = endpoint(ours, &peer_fp, now);
        let mut peer_done = false;
        for _ in 0..20 {
            if !peer_done {
                match peer.do_handshake() {
                    Ok(()) => peer_done = true,
                    Err(e) => assert!(is_retry(e.code()), "{e}"),
                }
            }
            while let Some(d) = peer.get_mut().outbound.pop_front() {
                ep.handle_input(now, &d);
            }
            while let Some(d) = ep.poll_transmit() {
                let p = peer.get_mut();
                p.inbound = d;
                p.has_inbound = true;
                if !peer_done {
                    match peer.do_handshake() {
                        Ok(()) => peer_done = true,
                        Err(e) => assert!(is_retry(e.code()), "{e}"),
                    }
                }
            }
            if peer_done && ep.is_connected() {
                break;
            }
        }
        let keys = connected(ep.poll_event());
        assert_eq!(keys.profile, want);
        let ssl = peer.ssl();
        let peer_fp_of_us =
            Fingerprint::of(&ssl.peer_certificate().unwrap(), HashAlg::Sha256).unwrap();
        assert_eq!(&peer_fp_of_us, identity().fingerprint());
        let mut material = vec![0u8; want.keying_material_len()];
        ssl.export_keying_material(&mut material, EXPORTER_LABEL, None)
            .unwrap();
        let peer_keys = split_keying_material(want, &material, ours == DtlsRole::Server).unwrap();
        assert_eq!(keys.local, peer_keys.remote);
        assert_eq!(keys.remote, peer_keys.local);
    }

    #[test]
    fn handshake_with_plain_openssl_server() {
        // The server's preference decides (RFC 5764 §4.1.1): its first profile we offer.
        plain_handshake(
            DtlsRole::Client,
            "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
            SrtpProfile::Aes128CmSha1_80,
        );
    }

    #[test]
    fn handshake_with_plain_openssl_client() {
        // As the server our order decides: SHA1_80 before SHA1_32.
        plain_handshake(
            DtlsRole::Server,
            "SRTP_AES128_CM_SHA1_32:SRTP_AES128_CM_SHA1_80",
            SrtpProfile::Aes128CmSha1_80,
        );
    }

    /// Leaves an entry on this thread's OpenSSL error queue the way another OpenSSL user on
    /// the reactor thread can: the refused call unpatched libsrtp 2.3 made for every AES-GCM
    /// packet it protected (a tag set on an encrypting context; see
    /// third_party/srtp2-sys/PATCHES.md), put back on the queue after the openssl crate took it.
    fn dirty_error_queue() {
        use openssl::symm::{Cipher, Crypter, Mode};
        let mut gcm = Crypter::new(
            Cipher::aes_256_gcm(),
            Mode::Encrypt,
            &[7; 32],
            Some(&[9; 12]),
        )
        .unwrap();
        let refused = gcm
            .set_tag(&[0; 16])
            .expect_err("no tag on an encrypting context");
        refused.put();
        let last = ffi::peek_last_error();
        assert_ne!(last, 0, "an error left behind");
    }

    /// The e2e "DTLS failed ~90 ms after the 200 OK" (1 in 12 calls): the browser's second
    /// flight arrived again after the relay (DTLS server) connected and SRTP had gone out; the
    /// retransmission and the close_notify at hang-up failed on the stale error queue.
    #[test]
    fn stale_thread_errors_do_not_fail_a_retransmitted_flight_or_close_notify() {
        let fp = identity().fingerprint().clone();
        let mut now = VirtualClock::new().now();
        let config = |role| DtlsConfig {
            initial_timeout: Duration::from_millis(40),
            ..DtlsConfig::new(role, fp.clone())
        };
        let mut client = DtlsEndpoint::new(&identity(), config(DtlsRole::Client), now).unwrap();
        let mut server = DtlsEndpoint::new(&identity(), config(DtlsRole::Server), now).unwrap();
        let mut client_flights = Vec::new();
        dirty_error_queue();
        loop {
            let mut moved = false;
            while let Some(d) = client.poll_transmit() {
                moved = true;
                dirty_error_queue();
                server.handle_input(now, &d);
                client_flights.push(d);
            }
            // The server's final flight is lost: the client keeps waiting.
            while let Some(d) = server.poll_transmit() {
                if !server.is_connected() {
                    moved = true;
                    dirty_error_queue();
                    client.handle_input(now, &d);
                }
            }
            if !moved {
                break;
            }
        }
        connected(server.poll_event());
        assert!(!client.is_connected());
        // SRTP goes out; the network duplicates the client's second flight...
        dirty_error_queue();
        for d in &client_flights[1..] {
            server.handle_input(now, d);
        }
        assert_eq!(server.poll_event(), None, "a duplicate is not a failure");
        // ... and the client retransmits it (OpenSSL's timer runs on the wall clock).
        now = client
            .poll_timeout()
            .expect("the client waits for the final flight");
        std::thread::sleep(Duration::from_millis(30));
        client.handle_timeout(now);
        let mut retransmitted = 0;
        while let Some(d) = client.poll_transmit() {
            retransmitted += 1;
            dirty_error_queue();
            server.handle_input(now, &d);
        }
        assert!(retransmitted > 0);
        assert_eq!(
            server.poll_event(),
            None,
            "a retransmission is not a failure"
        );
        let mut answered = false;
        while let Some(d) = server.poll_transmit() {
            answered = true;
            client.handle_input(now, &d);
        }
        assert!(answered, "the final flight is sent again");
        connected(client.poll_event());
        // Hang-up: close_notify after more SRTP.
        client.close();
        let alert = client.poll_transmit().expect("close_notify");
        dirty_error_queue();
        server.handle_input(now, &alert);
        assert_eq!(server.poll_event(), Some(DtlsEvent::Closed));
        assert!(!server.is_connected());
    }
}
