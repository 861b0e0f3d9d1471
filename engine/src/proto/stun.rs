//! STUN (RFC 5389 / RFC 8489) as ICE-lite needs it: parse Binding requests, check
//! MESSAGE-INTEGRITY (short-term credentials, RFC 8489 §9.1) and FINGERPRINT (§14.7), and build
//! Binding responses into a caller's buffer.
//!
//! Parsing walks the attributes once and records what ICE uses (RFC 8445 §7.1.1, §16); nothing
//! is copied or allocated.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The fixed magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_a442;
/// Header length.
pub const HEADER_LEN: usize = 20;
/// The value FINGERPRINT's CRC-32 is XOR-ed with (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// The Binding method.
pub const METHOD_BINDING: u16 = 0x001;

/// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000a;
    /// REALM.
    pub const REALM: u16 = 0x0014;
    /// NONCE.
    pub const NONCE: u16 = 0x0015;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY.
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE.
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING.
    pub const ICE_CONTROLLING: u16 = 0x802a;
}

/// The message class (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Request.
    Request,
    /// Indication.
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// Interleaves method and class into the 14-bit message type (RFC 8489 §5).
fn message_type(method: u16, class: Class) -> u16 {
    (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | class.bits()
}

fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    let class = match t & 0x0110 {
        0x000 => Class::Request,
        0x010 => Class::Indication,
        0x100 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

/// Why a datagram is not a usable STUN message, or a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Shorter than a header, or than its length field says.
    #[error("STUN message truncated: need {need} bytes, have {have}")]
    TooShort { need: usize, have: usize },
    /// Top bits set, wrong cookie, or a length not a multiple of 4: not STUN.
    #[error("not a STUN message")]
    NotStun,
    /// An attribute runs past the message, or has the wrong size for its type.
    #[error("malformed attribute {0:#06x}")]
    BadAttribute(u16),
    /// An attribute other than FINGERPRINT follows FINGERPRINT.
    #[error("attribute after FINGERPRINT")]
    AfterFingerprint,
    /// MESSAGE-INTEGRITY is absent.
    #[error("no MESSAGE-INTEGRITY")]
    NoIntegrity,
    /// MESSAGE-INTEGRITY does not match the key.
    #[error("MESSAGE-INTEGRITY mismatch")]
    IntegrityMismatch,
    /// FINGERPRINT is absent.
    #[error("no FINGERPRINT")]
    NoFingerprint,
    /// FINGERPRINT does not match the message.
    #[error("FINGERPRINT mismatch")]
    FingerprintMismatch,
    /// The caller's buffer cannot hold the message being built.
    #[error("buffer too small to build the STUN message")]
    BufferTooSmall,
}

/// A parsed STUN message borrowing its datagram. Attributes after MESSAGE-INTEGRITY other than
/// FINGERPRINT are ignored (RFC 8489 §14.5).
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<'a> {
    buf: &'a [u8],
    method: u16,
    class: Class,
    username: Option<&'a [u8]>,
    realm: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
    software: Option<&'a [u8]>,
    priority: Option<u32>,
    use_candidate: bool,
    ice_controlling: Option<u64>,
    ice_controlled: Option<u64>,
    error_code: Option<(u16, &'a [u8])>,
    xor_mapped: Option<SocketAddr>,
    integrity_at: Option<usize>,
    fingerprint_at: Option<usize>,
    unknown_required: Option<u16>,
}

/// True if the datagram looks like STUN (first two bits zero, magic cookie): a cheap check
/// before a full parse.
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && buf[0] & 0xc0 == 0 && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
}

impl<'a> StunMessage<'a> {
    /// Parses header and attributes. Trailing bytes past the length field are not part of the
    /// message and are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, StunError> {
        if buf.len() < HEADER_LEN {
            return Err(StunError::TooShort {
                need: HEADER_LEN,
                have: buf.len(),
            });
        }
        if !is_stun(buf) {
            return Err(StunError::NotStun);
        }
        let body = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if body % 4 != 0 {
            return Err(StunError::NotStun);
        }
        if buf.len() < HEADER_LEN + body {
            return Err(StunError::TooShort {
                need: HEADER_LEN + body,
                have: buf.len(),
            });
        }
        let buf = &buf[..HEADER_LEN + body];
        let (method, class) = split_type(u16::from_be_bytes([buf[0], buf[1]]));
        let mut m = StunMessage {
            buf,
            method,
            class,
            username: None,
            realm: None,
            nonce: None,
            software: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            error_code: None,
            xor_mapped: None,
            integrity_at: None,
            fingerprint_at: None,
            unknown_required: None,
        };
        let mut at = HEADER_LEN;
        while at < buf.len() {
            if buf.len() - at < 4 {
                return Err(StunError::BadAttribute(0));
            }
            let ty = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let len = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
            let start = at + 4;
            let padded = (len + 3) & !3;
            if buf.len() - start < padded {
                return Err(StunError::BadAttribute(ty));
            }
            let value = &buf[start..start + len];
            if m.fingerprint_at.is_some() {
                return Err(StunError::AfterFingerprint);
            }
            if m.integrity_at.is_some() && ty != attr::FINGERPRINT {
                at = start + padded;
                continue;
            }
            m.record(ty, value, at)?;
            at = start + padded;
        }
        Ok(m)
    }

    fn record(&mut self, ty: u16, value: &'a [u8], at: usize) -> Result<(), StunError> {
        let bad = StunError::BadAttribute(ty);
        match ty {
            attr::USERNAME => self.username = Some(value),
            attr::REALM => self.realm = Some(value),
            attr::NONCE => self.nonce = Some(value),
            attr::SOFTWARE => self.software = Some(value),
            attr::PRIORITY => {
                let v: [u8; 4] = value.try_into().map_err(|_| bad)?;
                self.priority = Some(u32::from_be_bytes(v));
            }
            attr::USE_CANDIDATE => {
                if !value.is_empty() {
                    return Err(bad);
                }
                self.use_candidate = true;
            }
            attr::ICE_CONTROLLING | attr::ICE_CONTROLLED => {
                let v: [u8; 8] = value.try_into().map_err(|_| bad)?;
                let tie = Some(u64::from_be_bytes(v));
                if ty == attr::ICE_CONTROLLING {
                    self.ice_controlling = tie;
                } else {
                    self.ice_controlled = tie;
                }
            }
            attr::ERROR_CODE => {
                if value.len() < 4 {
                    return Err(bad);
                }
                let code = u16::from(value[2] & 0x07) * 100 + u16::from(value[3]);
                self.error_code = Some((code, &value[4..]));
            }
            attr::XOR_MAPPED_ADDRESS => {
                self.xor_mapped = Some(decode_xor_address(value, self.txid()).ok_or(bad)?);
            }
            attr::MESSAGE_INTEGRITY => {
                if value.len() != 20 {
                    return Err(bad);
                }
                self.integrity_at = Some(at);
            }
            attr::FINGERPRINT => {
                if value.len() != 4 {
                    return Err(bad);
                }
                self.fingerprint_at = Some(at);
            }
            attr::MAPPED_ADDRESS | attr::UNKNOWN_ATTRIBUTES => {}
            0x0000..=0x7fff if self.unknown_required.is_none() => {
                self.unknown_required = Some(ty);
            }
            _ => {}
        }
        Ok(())
    }

    /// The method (0x001 for Binding).
    pub fn method(&self) -> u16 {
        self.method
    }
    /// The class.
    pub fn class(&self) -> Class {
        self.class
    }
    /// True for a Binding request, the only message an ICE-lite agent answers.
    pub fn is_binding_request(&self) -> bool {
        self.method == METHOD_BINDING && self.class == Class::Request
    }
    /// The 96-bit transaction id.
    pub fn txid(&self) -> &'a [u8; 12] {
        self.buf[8..20]
            .try_into()
            .expect("a parsed message has a 20-byte header")
    }
    /// The whole message (up to its length field).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// USERNAME, raw (ICE: `local-ufrag:remote-ufrag`, RFC 8445 §7.2.2).
    pub fn username(&self) -> Option<&'a [u8]> {
        self.username
    }
    /// REALM (long-term credentials; parsed only).
    pub fn realm(&self) -> Option<&'a [u8]> {
        self.realm
    }
    /// NONCE (long-term credentials; parsed only).
    pub fn nonce(&self) -> Option<&'a [u8]> {
        self.nonce
    }
    /// SOFTWARE.
    pub fn software(&self) -> Option<&'a [u8]> {
        self.software
    }
    /// PRIORITY (RFC 8445 §7.1.1).
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }
    /// USE-CANDIDATE present (RFC 8445 §7.1.2).
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }
    /// ICE-CONTROLLING tie-breaker.
    pub fn ice_controlling(&self) -> Option<u64> {
        self.ice_controlling
    }
    /// ICE-CONTROLLED tie-breaker.
    pub fn ice_controlled(&self) -> Option<u64> {
        self.ice_controlled
    }
    /// ERROR-CODE as (code, reason phrase bytes).
    pub fn error_code(&self) -> Option<(u16, &'a [u8])> {
        self.error_code
    }
    /// XOR-MAPPED-ADDRESS, decoded.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped
    }
    /// The first comprehension-required attribute (type < 0x8000) this parser does not know;
    /// a request carrying one gets a 420 (RFC 8489 §6.3.1).
    pub fn unknown_comprehension_required(&self) -> Option<u16> {
        self.unknown_required
    }
    /// True if MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }
    /// True if FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_at.is_some()
    }

    /// Checks MESSAGE-INTEGRITY with `key` (the short-term password, or MD5(user:realm:pass)
    /// for long-term credentials): HMAC-SHA1 over the message up to the attribute, with the
    /// length field counting up to and including it (RFC 8489 §14.5).
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        let at = self.integrity_at.ok_or(StunError::NoIntegrity)?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let len = u16::try_from(at + 24 - HEADER_LEN).map_err(|_| StunError::NotStun)?;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        let mut mac = hmac_sha1(key);
        mac.update(&header);
        mac.update(&self.buf[HEADER_LEN..at]);
        mac.verify_slice(&self.buf[at + 4..at + 24])
            .map_err(|_| StunError::IntegrityMismatch)
    }

    /// Checks FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554e (RFC 8489 §14.7).
    pub fn verify_fingerprint(&self) -> Result<(), StunError> {
        let at = self.fingerprint_at.ok_or(StunError::NoFingerprint)?;
        let want = u32::from_be_bytes(self.buf[at + 4..at + 8].try_into().expect("4 bytes"));
        if crc32fast::hash(&self.buf[..at]) ^ FINGERPRINT_XOR == want {
            Ok(())
        } else {
            Err(StunError::FingerprintMismatch)
        }
    }
}

fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Decodes an (XOR-)MAPPED-ADDRESS value: family, port and address XOR-ed with the cookie and,
/// for IPv6, the transaction id (RFC 8489 §14.2).
fn decode_xor_address(value: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (value[1], value.len()) {
        (0x01, 8) => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = value[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        (0x02, 20) => {
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                let k = if i < 4 { cookie[i] } else { txid[i - 4] };
                *b = value[4 + i] ^ k;
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

/// Writes a STUN message attribute by attribute into a caller's buffer, then MESSAGE-INTEGRITY
/// and FINGERPRINT, keeping the header length current. Never allocates.
#[derive(Debug)]
pub struct StunWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    pad: u8,
}

impl<'b> StunWriter<'b> {
    /// Starts a message of `method`/`class` with transaction id `txid`.
    pub fn new(
        buf: &'b mut [u8],
        method: u16,
        class: Class,
        txid: &[u8; 12],
    ) -> Result<Self, StunError> {
        if buf.len() < HEADER_LEN {
            return Err(StunError::BufferTooSmall);
        }
        buf[0..2].copy_from_slice(&message_type(method, class).to_be_bytes());
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..20].copy_from_slice(txid);
        Ok(Self {
            buf,
            len: HEADER_LEN,
            pad: 0,
        })
    }

    /// Sets the byte used to pad attribute values to 4 bytes (0 by default; RFC 8489 §14 lets
    /// any value through, RFC 5769's vectors use spaces).
    pub fn padding_byte(mut self, pad: u8) -> Self {
        self.pad = pad;
        self
    }

    fn set_body_len(&mut self, body: usize) {
        let body = u16::try_from(body).expect("buffers are checked before writing");
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
    }

    /// Appends one attribute with raw value bytes.
    pub fn attr(mut self, ty: u16, value: &[u8]) -> Result<Self, StunError> {
        let padded = (value.len() + 3) & !3;
        let end = self.len + 4 + padded;
        if end > self.buf.len() || end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(StunError::BufferTooSmall);
        }
        let len = u16::try_from(value.len()).map_err(|_| StunError::BufferTooSmall)?;
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&ty.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        self.buf[at + 4..at + 4 + value.len()].copy_from_slice(value);
        self.buf[at + 4 + value.len()..end].fill(self.pad);
        self.len = end;
        self.set_body_len(end - HEADER_LEN);
        Ok(self)
    }

    /// USERNAME.
    pub fn username(self, username: &[u8]) -> Result<Self, StunError> {
        self.attr(attr::USERNAME, username)
    }
    /// SOFTWARE.
    pub fn software(self, software: &[u8]) -> Result<Self, StunError> {
        self.attr(attr::SOFTWARE, software)
    }
    /// PRIORITY.
    pub fn priority(self, priority: u32) -> Result<Self, StunError> {
        self.attr(attr::PRIORITY, &priority.to_be_bytes())
    }
    /// USE-CANDIDATE.
    pub fn use_candidate(self) -> Result<Self, StunError> {
        self.attr(attr::USE_CANDIDATE, &[])
    }
    /// ICE-CONTROLLING with its tie-breaker.
    pub fn ice_controlling(self, tie_breaker: u64) -> Result<Self, StunError> {
        self.attr(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())
    }
    /// ICE-CONTROLLED with its tie-breaker.
    pub fn ice_controlled(self, tie_breaker: u64) -> Result<Self, StunError> {
        self.attr(attr::ICE_CONTROLLED, &tie_breaker.to_be_bytes())
    }

    /// ERROR-CODE with `code` (300..=699) and a reason phrase (RFC 8489 §14.8).
    pub fn error_code(self, code: u16, reason: &[u8]) -> Result<Self, StunError> {
        let mut v = [0u8; 4 + 128];
        let reason = &reason[..reason.len().min(128)];
        v[2] = ((code / 100) & 0x07) as u8;
        v[3] = (code % 100) as u8;
        v[4..4 + reason.len()].copy_from_slice(reason);
        self.attr(attr::ERROR_CODE, &v[..4 + reason.len()])
    }

    /// XOR-MAPPED-ADDRESS of `addr` (RFC 8489 §14.2). An IPv4-mapped IPv6 address is written
    /// as the IPv4 address it is.
    pub fn xor_mapped_address(self, addr: SocketAddr) -> Result<Self, StunError> {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let port = (addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes();
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let mut v = [0u8; 20];
        v[2..4].copy_from_slice(&port);
        let n = match ip {
            IpAddr::V4(a) => {
                v[1] = 0x01;
                for (i, b) in a.octets().iter().enumerate() {
                    v[4 + i] = b ^ cookie[i];
                }
                8
            }
            IpAddr::V6(a) => {
                v[1] = 0x02;
                let txid: [u8; 12] = self.buf[8..20].try_into().expect("header written");
                for (i, b) in a.octets().iter().enumerate() {
                    let k = if i < 4 { cookie[i] } else { txid[i - 4] };
                    v[4 + i] = b ^ k;
                }
                20
            }
        };
        self.attr(attr::XOR_MAPPED_ADDRESS, &v[..n])
    }

    /// MESSAGE-INTEGRITY under `key` (RFC 8489 §14.5).
    pub fn message_integrity(mut self, key: &[u8]) -> Result<Self, StunError> {
        if self.len + 24 > self.buf.len() {
            return Err(StunError::BufferTooSmall);
        }
        let at = self.len;
        self.set_body_len(at + 24 - HEADER_LEN);
        let mut mac = hmac_sha1(key);
        mac.update(&self.buf[..at]);
        let tag = mac.finalize().into_bytes();
        self.buf[at..at + 4].copy_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        self.buf[at + 4..at + 24].copy_from_slice(&tag);
        self.len = at + 24;
        Ok(self)
    }

    /// FINGERPRINT, the last attribute (RFC 8489 §14.7).
    pub fn fingerprint(mut self) -> Result<Self, StunError> {
        if self.len + 8 > self.buf.len() {
            return Err(StunError::BufferTooSmall);
        }
        let at = self.len;
        self.set_body_len(at + 8 - HEADER_LEN);
        let crc = crc32fast::hash(&self.buf[..at]) ^ FINGERPRINT_XOR;
        self.buf[at..at + 4].copy_from_slice(&[0x80, 0x28, 0x00, 0x04]);
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        self.len = at + 8;
        Ok(self)
    }

    /// The message length written so far.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// Builds the ICE Binding success response to `request_txid`: XOR-MAPPED-ADDRESS of the
/// request's source, MESSAGE-INTEGRITY under the local password, FINGERPRINT
/// (RFC 8445 §7.3.1.4). Returns the length written into `buf`.
pub fn build_binding_success(
    buf: &mut [u8],
    request_txid: &[u8; 12],
    mapped: SocketAddr,
    local_pwd: &[u8],
) -> Result<usize, StunError> {
    Ok(
        StunWriter::new(buf, METHOD_BINDING, Class::Success, request_txid)?
            .xor_mapped_address(mapped)?
            .message_integrity(local_pwd)?
            .fingerprint()?
            .finish(),
    )
}

/// Builds a Binding error response (e.g. 400 Bad Request, 401 Unauthorized, 487 Role Conflict)
/// with FINGERPRINT and, if `key` is given, MESSAGE-INTEGRITY.
pub fn build_binding_error(
    buf: &mut [u8],
    request_txid: &[u8; 12],
    code: u16,
    reason: &[u8],
    key: Option<&[u8]>,
) -> Result<usize, StunError> {
    let mut w = StunWriter::new(buf, METHOD_BINDING, Class::Error, request_txid)?
        .error_code(code, reason)?;
    if let Some(key) = key {
        w = w.message_integrity(key)?;
    }
    Ok(w.fingerprint()?.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        d.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    /// RFC 5769 §2.1 Sample Request.
    const SAMPLE_REQUEST: &str = "
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf";

    /// RFC 5769 §2.2 Sample IPv4 Response.
    const SAMPLE_IPV4_RESPONSE: &str = "
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96";

    /// RFC 5769 §2.3 Sample IPv6 Response.
    const SAMPLE_IPV6_RESPONSE: &str = "
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c";

    /// RFC 5769 §2.4 Sample Request with Long-Term Authentication.
    const SAMPLE_LONG_TERM_REQUEST: &str = "
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";

    const TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    #[test]
    fn rfc5769_sample_request_parses_and_verifies() {
        let bytes = hex(SAMPLE_REQUEST);
        assert_eq!(bytes.len(), 108);
        let m = StunMessage::parse(&bytes).unwrap();
        assert!(m.is_binding_request());
        assert_eq!(m.txid(), &TXID);
        assert_eq!(m.software(), Some(&b"STUN test client"[..]));
        assert_eq!(m.priority(), Some(0x6e0001ff));
        assert_eq!(m.ice_controlled(), Some(0x932ff9b151263b36));
        assert_eq!(m.ice_controlling(), None);
        assert!(!m.use_candidate());
        assert_eq!(m.username(), Some(&b"evtj:h6vY"[..]));
        assert_eq!(m.unknown_comprehension_required(), None);
        assert_eq!(m.verify_integrity(PASSWORD), Ok(()));
        assert_eq!(
            m.verify_integrity(b"wrong"),
            Err(StunError::IntegrityMismatch)
        );
        assert_eq!(m.verify_fingerprint(), Ok(()));
    }

    #[test]
    fn rfc5769_sample_request_rebuilt_byte_for_byte() {
        let mut buf = [0u8; 256];
        let n = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &TXID)
            .unwrap()
            .padding_byte(0x20)
            .software(b"STUN test client")
            .and_then(|w| w.priority(0x6e0001ff))
            .and_then(|w| w.ice_controlled(0x932ff9b151263b36))
            .and_then(|w| w.username(b"evtj:h6vY"))
            .and_then(|w| w.message_integrity(PASSWORD))
            .and_then(StunWriter::fingerprint)
            .unwrap()
            .finish();
        assert_eq!(&buf[..n], &hex(SAMPLE_REQUEST)[..]);
    }

    #[test]
    fn rfc5769_responses_parse_verify_and_rebuild() {
        for (vector, mapped) in [
            (SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853"),
            (
                SAMPLE_IPV6_RESPONSE,
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let want = hex(vector);
            let mapped: SocketAddr = mapped.parse().unwrap();
            let m = StunMessage::parse(&want).unwrap();
            assert_eq!((m.method(), m.class()), (METHOD_BINDING, Class::Success));
            assert_eq!(m.xor_mapped_address(), Some(mapped));
            assert_eq!(m.software(), Some(&b"test vector"[..]));
            assert_eq!(m.verify_integrity(PASSWORD), Ok(()), "{mapped}");
            assert_eq!(m.verify_fingerprint(), Ok(()), "{mapped}");

            let mut buf = [0u8; 128];
            let n = StunWriter::new(&mut buf, METHOD_BINDING, Class::Success, &TXID)
                .unwrap()
                .padding_byte(0x20)
                .software(b"test vector")
                .and_then(|w| w.xor_mapped_address(mapped))
                .and_then(|w| w.message_integrity(PASSWORD))
                .and_then(StunWriter::fingerprint)
                .unwrap()
                .finish();
            assert_eq!(&buf[..n], &want[..], "{mapped}");
        }
    }

    #[test]
    fn rfc5769_long_term_request_parses() {
        let bytes = hex(SAMPLE_LONG_TERM_REQUEST);
        let m = StunMessage::parse(&bytes).unwrap();
        assert_eq!(
            m.username(),
            Some("\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}".as_bytes())
        );
        assert_eq!(m.nonce(), Some(&b"f//499k954d6OL34oL9FSTvy64sA"[..]));
        assert_eq!(m.realm(), Some(&b"example.org"[..]));
        assert_eq!(m.verify_fingerprint(), Err(StunError::NoFingerprint));
        // Long-term key = MD5(username ":" realm ":" SASLprep(password)) (RFC 8489 §9.2.2).
        let mut input = m.username().unwrap().to_vec();
        input.extend_from_slice(b":example.org:TheMatrIX");
        let key = openssl::hash::hash(openssl::hash::MessageDigest::md5(), &input).unwrap();
        assert_eq!(m.verify_integrity(&key), Ok(()));
    }

    #[test]
    fn binding_success_round_trips() {
        let mut buf = [0u8; 128];
        for mapped in ["203.0.113.7:50000", "[2001:db8::42]:443"] {
            let mapped: SocketAddr = mapped.parse().unwrap();
            let n = build_binding_success(&mut buf, &TXID, mapped, b"pwd").unwrap();
            let m = StunMessage::parse(&buf[..n]).unwrap();
            assert_eq!(m.class(), Class::Success);
            assert_eq!(m.txid(), &TXID);
            assert_eq!(m.xor_mapped_address(), Some(mapped));
            assert_eq!(m.verify_integrity(b"pwd"), Ok(()));
            assert_eq!(m.verify_fingerprint(), Ok(()));
        }
        // A v4-mapped v6 source is answered as IPv4.
        let n = build_binding_success(
            &mut buf,
            &TXID,
            "[::ffff:192.0.2.9]:9".parse().unwrap(),
            b"p",
        )
        .unwrap();
        assert_eq!(
            StunMessage::parse(&buf[..n]).unwrap().xor_mapped_address(),
            Some("192.0.2.9:9".parse().unwrap())
        );
        assert_eq!(
            build_binding_success(
                &mut buf[..60],
                &TXID,
                "[2001:db8::1]:1".parse().unwrap(),
                b"p"
            ),
            Err(StunError::BufferTooSmall)
        );
    }

    #[test]
    fn ice_request_and_error_response_round_trip() {
        let mut buf = [0u8; 256];
        let n = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &TXID)
            .unwrap()
            .username(b"abcd:efgh")
            .and_then(|w| w.priority(1))
            .and_then(|w| w.ice_controlling(42))
            .and_then(StunWriter::use_candidate)
            .and_then(|w| w.message_integrity(b"k"))
            .and_then(StunWriter::fingerprint)
            .unwrap()
            .finish();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert!(m.use_candidate());
        assert_eq!(m.ice_controlling(), Some(42));
        assert_eq!(m.verify_integrity(b"k"), Ok(()));

        let n = build_binding_error(&mut buf, &TXID, 487, b"Role Conflict", Some(b"k")).unwrap();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert_eq!(m.class(), Class::Error);
        assert_eq!(m.error_code(), Some((487, &b"Role Conflict"[..])));
        assert_eq!(m.verify_integrity(b"k"), Ok(()));
        assert_eq!(m.verify_fingerprint(), Ok(()));
    }

    #[test]
    fn malformed_messages_are_errors() {
        let good = hex(SAMPLE_REQUEST);
        assert!(matches!(
            StunMessage::parse(&good[..19]),
            Err(StunError::TooShort { .. })
        ));
        let mut b = good.clone();
        b[4] ^= 1;
        assert_eq!(StunMessage::parse(&b).unwrap_err(), StunError::NotStun);
        let mut b = good.clone();
        b[3] = 0x5c;
        assert!(matches!(
            StunMessage::parse(&b),
            Err(StunError::TooShort { .. })
        ));
        let mut b = good.clone();
        b[23] = 0x40;
        assert!(matches!(
            StunMessage::parse(&b),
            Err(StunError::BadAttribute(_))
        ));
        let mut b = good.clone();
        b[30] ^= 1;
        let m = StunMessage::parse(&b).unwrap();
        assert_eq!(m.verify_fingerprint(), Err(StunError::FingerprintMismatch));
        assert_eq!(
            m.verify_integrity(PASSWORD),
            Err(StunError::IntegrityMismatch)
        );
    }

    #[test]
    fn never_panics_on_any_input() {
        let sample = hex(SAMPLE_REQUEST);
        let mut state = 0x0123_4567_89ab_cdefu64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buf = [0u8; 160];
        for i in 0..100_000 {
            let len = (next() % 161) as usize;
            if i % 2 == 0 {
                // Mutate the sample: flip a few bytes, truncate.
                let n = len.min(sample.len());
                buf[..n].copy_from_slice(&sample[..n]);
                for _ in 0..(next() % 4) {
                    let at = (next() % 108) as usize;
                    if at < n {
                        buf[at] = next() as u8;
                    }
                }
            } else {
                for b in buf.iter_mut().take(len) {
                    *b = next() as u8;
                }
                if len >= 8 {
                    buf[0] &= 0x3f;
                    buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                    let body = (len.saturating_sub(20) & !3) as u16;
                    buf[2..4].copy_from_slice(&body.to_be_bytes());
                }
            }
            if let Ok(m) = StunMessage::parse(&buf[..len]) {
                let _ = (
                    m.verify_integrity(PASSWORD),
                    m.verify_fingerprint(),
                    m.txid(),
                );
            }
        }
    }
}
