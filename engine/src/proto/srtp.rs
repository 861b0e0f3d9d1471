//! SRTP and SRTCP (RFC 3711, RFC 7714) in place, over libsrtp 2 built with OpenSSL
//! (`srtp2-sys` features `build,enable-openssl`; never the system NSS build, see
//! shared/notes/measured-limits.md §2).
//!
//! One [`SrtpSession`] per direction: an outbound one protects everything we send on a leg, an
//! inbound one unprotects everything we receive. Both accept any SSRC (libsrtp's
//! `ssrc_any_outbound` / `ssrc_any_inbound` templates), with a replay window of 128.
//! Packets are transformed in the caller's buffer; nothing is allocated per packet (libsrtp
//! allocates once per new SSRC).

#![allow(
    unsafe_code,
    reason = "the libsrtp binding: each call's safety argued at the call"
)]

use std::ffi::c_int;
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use srtp2_sys as sys;

use super::wire::{RtcpHeader, RtpHeader};

/// Bytes libsrtp may write after the packet on protect (`SRTP_MAX_TRAILER_LEN`): the buffer
/// passed to the protect calls must have this much room past the packet.
pub const MAX_TRAILER_LEN: usize = sys::SRTP_MAX_TRAILER_LEN as usize;

/// Longest master key + salt of the supported profiles (AES-256-GCM: 32 + 12).
pub const MAX_KEY_SALT_LEN: usize = 44;

/// The DTLS-SRTP protection profiles webrtc-phone supports (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// SRTP_AES128_CM_HMAC_SHA1_80 (0x0001).
    Aes128CmSha1_80,
    /// SRTP_AES128_CM_HMAC_SHA1_32 (0x0002): 32-bit tag on SRTP, 80-bit on SRTCP.
    Aes128CmSha1_32,
    /// SRTP_AEAD_AES_128_GCM (0x0007).
    AeadAes128Gcm,
    /// SRTP_AEAD_AES_256_GCM (0x0008).
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// All four, in webrtc-phone's preference order (strongest first).
    pub const ALL: [SrtpProfile; 4] = [
        SrtpProfile::AeadAes256Gcm,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::Aes128CmSha1_80,
        SrtpProfile::Aes128CmSha1_32,
    ];

    /// The profile from its DTLS `use_srtp` identifier (RFC 5764 §4.1.2).
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(SrtpProfile::Aes128CmSha1_80),
            0x0002 => Some(SrtpProfile::Aes128CmSha1_32),
            0x0007 => Some(SrtpProfile::AeadAes128Gcm),
            0x0008 => Some(SrtpProfile::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The DTLS `use_srtp` identifier.
    pub fn id(self) -> u16 {
        match self {
            SrtpProfile::Aes128CmSha1_80 => 0x0001,
            SrtpProfile::Aes128CmSha1_32 => 0x0002,
            SrtpProfile::AeadAes128Gcm => 0x0007,
            SrtpProfile::AeadAes256Gcm => 0x0008,
        }
    }

    /// The OpenSSL name used in `SSL_CTX_set_tlsext_use_srtp`.
    pub fn openssl_name(self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmSha1_80 => "SRTP_AES128_CM_SHA1_80",
            SrtpProfile::Aes128CmSha1_32 => "SRTP_AES128_CM_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes (112 bits for AES-CM, 96 for AEAD, RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        match self {
            SrtpProfile::Aes128CmSha1_80 | SrtpProfile::Aes128CmSha1_32 => 14,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
        }
    }

    /// Bytes of keying material to export from DTLS: 2 x (key + salt) (RFC 5764 §4.2).
    pub fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }
}

/// One direction's master key followed by its master salt, as libsrtp takes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    bytes: [u8; MAX_KEY_SALT_LEN],
    len: u8,
}

impl SrtpKey {
    /// Key and salt concatenated; `None` if longer than any profile needs.
    pub fn from_key_salt(key: &[u8], salt: &[u8]) -> Option<Self> {
        let len = key.len() + salt.len();
        if len > MAX_KEY_SALT_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_KEY_SALT_LEN];
        bytes[..key.len()].copy_from_slice(key);
        bytes[key.len()..len].copy_from_slice(salt);
        Some(Self {
            bytes,
            len: len as u8,
        })
    }

    /// Key || salt.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKey({} bytes)", self.len)
    }
}

/// The two directions' keys of one DTLS-SRTP association, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: SrtpProfile,
    /// Protects what we send.
    pub local: SrtpKey,
    /// Unprotects what we receive.
    pub remote: SrtpKey,
}

/// Splits DTLS-SRTP exported keying material, laid out client key, server key, client salt,
/// server salt (RFC 5764 §4.2), into our keys: the DTLS client sends with the client key.
pub fn split_keying_material(
    profile: SrtpProfile,
    material: &[u8],
    is_dtls_client: bool,
) -> Result<SrtpKeys, SrtpError> {
    if material.len() != profile.keying_material_len() {
        return Err(SrtpError::BadKeyLength {
            want: profile.keying_material_len(),
            have: material.len(),
        });
    }
    let (k, s) = (profile.key_len(), profile.salt_len());
    let client_key = &material[..k];
    let server_key = &material[k..2 * k];
    let client_salt = &material[2 * k..2 * k + s];
    let server_salt = &material[2 * k + s..];
    let client = SrtpKey::from_key_salt(client_key, client_salt).expect("profile lengths fit");
    let server = SrtpKey::from_key_salt(server_key, server_salt).expect("profile lengths fit");
    let (local, remote) = if is_dtls_client {
        (client, server)
    } else {
        (server, client)
    };
    Ok(SrtpKeys {
        profile,
        local,
        remote,
    })
}

/// Which way a session transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Unprotects what arrives (`ssrc_any_inbound`).
    Inbound,
    /// Protects what leaves (`ssrc_any_outbound`).
    Outbound,
}

/// Why an SRTP operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// The authentication tag did not verify: a forged, corrupted or wrongly keyed packet.
    #[error("SRTP authentication failed")]
    AuthFail,
    /// The packet index was seen before (replay window 128).
    #[error("SRTP replayed packet")]
    Replay,
    /// The packet index is older than the replay window.
    #[error("SRTP packet too old for the replay window")]
    ReplayOld,
    /// Not a valid RTP/RTCP packet for libsrtp (short, bad header).
    #[error("malformed packet for SRTP")]
    BadPacket,
    /// The buffer has no room for the authentication tag.
    #[error("no room after the packet: need {need} bytes of buffer, have {have}")]
    NoTailRoom { need: usize, have: usize },
    /// Key and salt of the wrong length for the profile.
    #[error("keying material of {have} bytes, profile needs {want}")]
    BadKeyLength { want: usize, have: usize },
    /// Protect on an inbound session or unprotect on an outbound one.
    #[error("operation does not match the session's direction")]
    WrongDirection,
    /// The master key's packet budget is exhausted (2^48 SRTP / 2^31 SRTCP).
    #[error("SRTP master key expired")]
    KeyExpired,
    /// `srtp_init` or `srtp_create` failed.
    #[error("libsrtp initialisation failed (status {0})")]
    Init(u32),
    /// Any other libsrtp status.
    #[error("libsrtp error status {0}")]
    Other(u32),
}

fn map_status(status: sys::srtp_err_status_t) -> Result<(), SrtpError> {
    Err(match status {
        sys::srtp_err_status_t_srtp_err_status_ok => return Ok(()),
        sys::srtp_err_status_t_srtp_err_status_auth_fail => SrtpError::AuthFail,
        sys::srtp_err_status_t_srtp_err_status_replay_fail => SrtpError::Replay,
        sys::srtp_err_status_t_srtp_err_status_replay_old => SrtpError::ReplayOld,
        sys::srtp_err_status_t_srtp_err_status_bad_param
        | sys::srtp_err_status_t_srtp_err_status_parse_err => SrtpError::BadPacket,
        sys::srtp_err_status_t_srtp_err_status_key_expired => SrtpError::KeyExpired,
        other => SrtpError::Other(other),
    })
}

/// Runs `srtp_init` exactly once per process.
fn init() -> Result<(), SrtpError> {
    static INIT: OnceLock<sys::srtp_err_status_t> = OnceLock::new();
    // SAFETY: srtp_init has no preconditions; OnceLock (built on std::sync::Once) runs it once
    // even when sessions are created from several threads at the same time.
    let status = *INIT.get_or_init(|| unsafe { sys::srtp_init() });
    map_status(status).map_err(|_| SrtpError::Init(status))
}

/// One libsrtp session for one direction of one leg.
#[derive(Debug)]
pub struct SrtpSession {
    ctx: NonNull<sys::srtp_ctx_t>,
    profile: SrtpProfile,
    direction: Direction,
}

// SAFETY: the session owns its libsrtp context outright (no other pointer to it exists); libsrtp
// keeps no thread-local state for it, so moving it to another thread is sound. It is not Sync:
// every operation takes `&mut self`.
unsafe impl Send for SrtpSession {}

impl SrtpSession {
    /// Creates a session for `direction` from one direction's key || salt.
    pub fn new(
        profile: SrtpProfile,
        key: &SrtpKey,
        direction: Direction,
    ) -> Result<Self, SrtpError> {
        let key = key.as_bytes();
        let want = profile.key_len() + profile.salt_len();
        if key.len() != want {
            return Err(SrtpError::BadKeyLength {
                want,
                have: key.len(),
            });
        }
        init()?;
        // libsrtp copies the key during srtp_create; this copy only has to outlive the call.
        let mut key_copy = [0u8; MAX_KEY_SALT_LEN];
        key_copy[..key.len()].copy_from_slice(key);
        // SAFETY: srtp_policy_t is a plain C struct of integers and pointers, for which all-zero
        // is the documented "unset" value (libsrtp's own tests memset it to 0).
        let mut policy: sys::srtp_policy_t = unsafe { std::mem::zeroed() };
        // SAFETY: the setters only write the crypto policy structs they are given.
        unsafe {
            match profile {
                SrtpProfile::Aes128CmSha1_80 => {
                    sys::srtp_crypto_policy_set_rtp_default(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_rtcp_default(&mut policy.rtcp);
                }
                SrtpProfile::Aes128CmSha1_32 => {
                    // RFC 5764 §4.1.2: the 32-bit tag is for SRTP only; SRTCP keeps 80 bits.
                    sys::srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_rtcp_default(&mut policy.rtcp);
                }
                SrtpProfile::AeadAes128Gcm => {
                    sys::srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtcp);
                }
                SrtpProfile::AeadAes256Gcm => {
                    sys::srtp_crypto_policy_set_aes_gcm_256_16_auth(&mut policy.rtp);
                    sys::srtp_crypto_policy_set_aes_gcm_256_16_auth(&mut policy.rtcp);
                }
            }
        }
        policy.ssrc.type_ = match direction {
            Direction::Inbound => sys::srtp_ssrc_type_t_ssrc_any_inbound,
            Direction::Outbound => sys::srtp_ssrc_type_t_ssrc_any_outbound,
        };
        policy.key = key_copy.as_mut_ptr();
        policy.window_size = 128;
        policy.allow_repeat_tx = 0;
        policy.next = ptr::null_mut();
        let mut ctx: sys::srtp_t = ptr::null_mut();
        // SAFETY: `policy` is fully initialised and its key points to `want` valid bytes that
        // live until the call returns; libsrtp copies what it keeps. `ctx` receives the session.
        let status = unsafe { sys::srtp_create(&mut ctx, &policy) };
        map_status(status).map_err(|_| SrtpError::Init(status))?;
        let ctx = NonNull::new(ctx).ok_or(SrtpError::Init(status))?;
        Ok(Self {
            ctx,
            profile,
            direction,
        })
    }

    /// The session's profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The session's direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn check_protect(&self, buf: &[u8], len: usize) -> Result<c_int, SrtpError> {
        if self.direction != Direction::Outbound {
            return Err(SrtpError::WrongDirection);
        }
        if len > buf.len() {
            return Err(SrtpError::BadPacket);
        }
        let need = len + MAX_TRAILER_LEN;
        if buf.len() < need {
            return Err(SrtpError::NoTailRoom {
                need,
                have: buf.len(),
            });
        }
        c_int::try_from(len).map_err(|_| SrtpError::BadPacket)
    }

    fn check_unprotect(&self, buf: &[u8], len: usize) -> Result<c_int, SrtpError> {
        if self.direction != Direction::Inbound {
            return Err(SrtpError::WrongDirection);
        }
        if len > buf.len() {
            return Err(SrtpError::BadPacket);
        }
        c_int::try_from(len).map_err(|_| SrtpError::BadPacket)
    }

    /// Protects the RTP packet `buf[..len]` in place; returns the SRTP length. `buf` must
    /// extend at least [`MAX_TRAILER_LEN`] bytes past the packet.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mut n = self.check_protect(buf, len)?;
        RtpHeader::parse(&buf[..len]).map_err(|_| SrtpError::BadPacket)?;
        // SAFETY: ctx is a live session; buf holds `len` packet bytes followed by at least
        // SRTP_MAX_TRAILER_LEN writable bytes, as srtp_protect requires; the header was checked.
        let status =
            unsafe { sys::srtp_protect(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) };
        map_status(status)?;
        Ok(n as usize)
    }

    /// Unprotects the SRTP packet `buf[..len]` in place; returns the RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mut n = self.check_unprotect(buf, len)?;
        RtpHeader::parse(&buf[..len]).map_err(|_| SrtpError::BadPacket)?;
        // SAFETY: ctx is a live session; buf holds `len` readable and writable bytes; unprotect
        // only shrinks the packet.
        let status =
            unsafe { sys::srtp_unprotect(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) };
        map_status(status)?;
        Ok(n as usize)
    }

    /// Protects the (compound) RTCP packet `buf[..len]` in place; returns the SRTCP length.
    /// `buf` must extend at least [`MAX_TRAILER_LEN`] bytes past the packet.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mut n = self.check_protect(buf, len)?;
        RtcpHeader::parse(&buf[..len]).map_err(|_| SrtpError::BadPacket)?;
        // SAFETY: as in protect_rtp; the 8-byte RTCP header was checked.
        let status =
            unsafe { sys::srtp_protect_rtcp(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) };
        map_status(status)?;
        Ok(n as usize)
    }

    /// Unprotects the SRTCP packet `buf[..len]` in place; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mut n = self.check_unprotect(buf, len)?;
        RtcpHeader::parse(&buf[..len]).map_err(|_| SrtpError::BadPacket)?;
        // SAFETY: as in unprotect_rtp; libsrtp checks the trailer length itself.
        let status =
            unsafe { sys::srtp_unprotect_rtcp(self.ctx.as_ptr(), buf.as_mut_ptr().cast(), &mut n) };
        map_status(status)?;
        Ok(n as usize)
    }
}

impl Drop for SrtpSession {
    fn drop(&mut self) {
        // SAFETY: ctx came from srtp_create, is owned by this value alone and is freed once.
        let _ = unsafe { sys::srtp_dealloc(self.ctx.as_ptr()) };
    }
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

    fn key(profile: SrtpProfile, seed: u8) -> SrtpKey {
        let k: Vec<u8> = (0..profile.key_len() as u8)
            .map(|i| i.wrapping_mul(7) ^ seed)
            .collect();
        let s: Vec<u8> = (0..profile.salt_len() as u8)
            .map(|i| i.wrapping_mul(13) ^ seed)
            .collect();
        SrtpKey::from_key_salt(&k, &s).unwrap()
    }

    fn pair(profile: SrtpProfile, k: &SrtpKey) -> (SrtpSession, SrtpSession) {
        (
            SrtpSession::new(profile, k, Direction::Outbound).unwrap(),
            SrtpSession::new(profile, k, Direction::Inbound).unwrap(),
        )
    }

    fn rtp(seq: u16) -> [u8; 28] {
        let mut p = [0xab; 28];
        p[..12].copy_from_slice(&hex("800f0000 decafbad cafebabe"));
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    /// libsrtp's test/srtp_driver.c `srtp_validate()`: AES_CM_128_HMAC_SHA1_80, SRTP and SRTCP.
    #[test]
    fn libsrtp_aes_cm_128_hmac_sha1_80_vector() {
        let p = SrtpProfile::Aes128CmSha1_80;
        let master = hex("e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6");
        let k = SrtpKey::from_key_salt(&master[..16], &master[16..]).unwrap();
        let (mut tx, mut rx) = pair(p, &k);

        let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
        let want =
            hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
        let mut buf = [0u8; 256];
        buf[..28].copy_from_slice(&plain);
        let n = tx.protect_rtp(&mut buf, 28).unwrap();
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(28));
        assert_eq!(&buf[..28], &plain[..]);

        let rtcp = hex("81c8000bcafebabe abababababababababababababababab");
        let want =
            hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
        buf[..24].copy_from_slice(&rtcp);
        let n = tx.protect_rtcp(&mut buf, 24).unwrap();
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(24));
        assert_eq!(&buf[..24], &rtcp[..]);
    }

    /// libsrtp's test/srtp_driver.c `srtp_validate_gcm()`: AEAD_AES_128_GCM, SRTP and SRTCP.
    #[test]
    fn libsrtp_aead_aes_128_gcm_vector() {
        let p = SrtpProfile::AeadAes128Gcm;
        let master = hex("000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab");
        let k = SrtpKey::from_key_salt(&master[..16], &master[16..]).unwrap();
        let (mut tx, mut rx) = pair(p, &k);

        let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
        let want = hex(
            "800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392",
        );
        let mut buf = [0u8; 256];
        buf[..28].copy_from_slice(&plain);
        let n = tx.protect_rtp(&mut buf, 28).unwrap();
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(28));
        assert_eq!(&buf[..28], &plain[..]);

        let rtcp = hex("81c8000bcafebabe abababababababababababababababab");
        let want = hex(
            "81c8000bcafebabe c98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e 80000001",
        );
        buf[..24].copy_from_slice(&rtcp);
        let n = tx.protect_rtcp(&mut buf, 24).unwrap();
        assert_eq!(&buf[..n], &want[..]);
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(24));
        assert_eq!(&buf[..24], &rtcp[..]);
    }

    #[test]
    fn every_profile_round_trips_rtp_and_rtcp() {
        for (p, tag) in [
            (SrtpProfile::Aes128CmSha1_80, 10),
            (SrtpProfile::Aes128CmSha1_32, 4),
            (SrtpProfile::AeadAes128Gcm, 16),
            (SrtpProfile::AeadAes256Gcm, 16),
        ] {
            let k = key(p, 0x5a);
            let (mut tx, mut rx) = pair(p, &k);
            let mut buf = [0u8; 256];
            for seq in 0..50u16 {
                let plain = rtp(seq);
                buf[..28].copy_from_slice(&plain);
                let n = tx.protect_rtp(&mut buf, 28).unwrap();
                assert_eq!(n, 28 + tag, "{p:?}");
                assert_ne!(&buf[12..28], &plain[12..], "{p:?} encrypts");
                assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(28), "{p:?}");
                assert_eq!(&buf[..28], &plain[..]);
            }
            let rtcp = hex("80c90001cafebabe");
            buf[..8].copy_from_slice(&rtcp);
            let n = tx.protect_rtcp(&mut buf, 8).unwrap();
            let rtcp_tag = if p == SrtpProfile::Aes128CmSha1_32 {
                10
            } else {
                tag
            };
            assert_eq!(n, 8 + 4 + rtcp_tag, "{p:?} SRTCP length");
            assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(8), "{p:?}");
            assert_eq!(&buf[..8], &rtcp[..]);
        }
    }

    /// Protecting leaves this thread's OpenSSL error queue empty. libsrtp 2.3's AES-GCM set a
    /// dummy tag on its encrypt context too, which OpenSSL 3 refuses with an error queued on
    /// every protected packet; third_party/srtp2-sys (PATCHES.md) sets it on decrypt only.
    #[test]
    fn protect_leaves_the_openssl_error_queue_empty() {
        for p in SrtpProfile::ALL {
            let k = key(p, 6);
            let (mut tx, mut rx) = pair(p, &k);
            // libsrtp's start-up self-tests are not what this test is about.
            drop(openssl::error::ErrorStack::get());
            let mut buf = [0u8; 256];
            for seq in 0..4u16 {
                buf[..28].copy_from_slice(&rtp(seq));
                let n = tx.protect_rtp(&mut buf, 28).unwrap();
                assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(28), "{p:?}");
                buf[..8].copy_from_slice(&hex("80c90001cafebabe"));
                let n = tx.protect_rtcp(&mut buf, 8).unwrap();
                assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(8), "{p:?}");
            }
            let queued = openssl::error::ErrorStack::get();
            let queued = queued.errors();
            assert!(
                queued.is_empty(),
                "{p:?}: {} errors queued, the first {:?}",
                queued.len(),
                queued.first()
            );
        }
    }

    #[test]
    fn tampered_packets_fail_authentication() {
        for p in SrtpProfile::ALL {
            let k = key(p, 1);
            let (mut tx, mut rx) = pair(p, &k);
            let mut buf = [0u8; 256];
            buf[..28].copy_from_slice(&rtp(1));
            let n = tx.protect_rtp(&mut buf, 28).unwrap();
            buf[20] ^= 0x01;
            assert_eq!(
                rx.unprotect_rtp(&mut buf, n),
                Err(SrtpError::AuthFail),
                "{p:?}"
            );
            // So does a flipped bit in the header (authenticated, for GCM the AAD) or the tag.
            for at in [1, n - 1] {
                buf[..28].copy_from_slice(&rtp(3 + at as u16));
                let n = tx.protect_rtp(&mut buf, 28).unwrap();
                buf[at] ^= 0x01;
                assert_eq!(
                    rx.unprotect_rtp(&mut buf, n),
                    Err(SrtpError::AuthFail),
                    "{p:?} byte {at}"
                );
            }
            // A wrong key fails the same way.
            let mut other = SrtpSession::new(p, &key(p, 2), Direction::Inbound).unwrap();
            buf[..28].copy_from_slice(&rtp(2));
            let n = tx.protect_rtp(&mut buf, 28).unwrap();
            assert_eq!(
                other.unprotect_rtp(&mut buf, n),
                Err(SrtpError::AuthFail),
                "{p:?}"
            );
        }
    }

    #[test]
    fn replays_are_rejected() {
        let p = SrtpProfile::Aes128CmSha1_80;
        let (mut tx, mut rx) = pair(p, &key(p, 3));
        let mut buf = [0u8; 256];
        let mut copies = Vec::new();
        for seq in 0..200u16 {
            buf[..28].copy_from_slice(&rtp(seq));
            let n = tx.protect_rtp(&mut buf, 28).unwrap();
            copies.push(buf[..n].to_vec());
        }
        for c in &copies {
            buf[..c.len()].copy_from_slice(c);
            assert_eq!(rx.unprotect_rtp(&mut buf, c.len()), Ok(28));
        }
        let last = copies.last().unwrap();
        buf[..last.len()].copy_from_slice(last);
        assert_eq!(
            rx.unprotect_rtp(&mut buf, last.len()),
            Err(SrtpError::Replay)
        );
        let old = &copies[10];
        buf[..old.len()].copy_from_slice(old);
        assert_eq!(
            rx.unprotect_rtp(&mut buf, old.len()),
            Err(SrtpError::ReplayOld)
        );
        // Out of order inside the window is fine once.
        let (mut tx, mut rx) = pair(p, &key(p, 3));
        let mut pkts = Vec::new();
        for seq in 0..3u16 {
            buf[..28].copy_from_slice(&rtp(seq));
            let n = tx.protect_rtp(&mut buf, 28).unwrap();
            pkts.push(buf[..n].to_vec());
        }
        for i in [0, 2, 1] {
            buf[..pkts[i].len()].copy_from_slice(&pkts[i]);
            assert_eq!(rx.unprotect_rtp(&mut buf, pkts[i].len()), Ok(28));
        }
    }

    #[test]
    fn srtcp_replay_and_tamper() {
        let p = SrtpProfile::AeadAes256Gcm;
        let (mut tx, mut rx) = pair(p, &key(p, 4));
        let mut buf = [0u8; 256];
        buf[..8].copy_from_slice(&hex("80c90001cafebabe"));
        let n = tx.protect_rtcp(&mut buf, 8).unwrap();
        let copy = buf[..n].to_vec();
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(8));
        buf[..n].copy_from_slice(&copy);
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Err(SrtpError::Replay));
        buf[..8].copy_from_slice(&hex("80c90001cafebabe"));
        let n = tx.protect_rtcp(&mut buf, 8).unwrap();
        buf[5] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Err(SrtpError::AuthFail));
    }

    #[test]
    fn misuse_and_malformed_input_are_errors() {
        let p = SrtpProfile::Aes128CmSha1_80;
        let (mut tx, mut rx) = pair(p, &key(p, 5));
        let mut small = [0u8; 28 + 10];
        small[..28].copy_from_slice(&rtp(1));
        assert_eq!(
            tx.protect_rtp(&mut small, 28),
            Err(SrtpError::NoTailRoom {
                need: 28 + MAX_TRAILER_LEN,
                have: 38
            })
        );
        let mut buf = [0u8; 256];
        assert_eq!(rx.protect_rtp(&mut buf, 28), Err(SrtpError::WrongDirection));
        assert_eq!(
            tx.unprotect_rtp(&mut buf, 28),
            Err(SrtpError::WrongDirection)
        );
        assert_eq!(tx.protect_rtp(&mut buf, 11), Err(SrtpError::BadPacket));
        assert_eq!(rx.unprotect_rtp(&mut buf, 300), Err(SrtpError::BadPacket));
        buf[0] = 0x80;
        assert!(rx.unprotect_rtp(&mut buf, 12).is_err());
        assert!(rx.unprotect_rtcp(&mut buf, 8).is_err());
        assert_eq!(
            SrtpSession::new(SrtpProfile::AeadAes256Gcm, &key(p, 0), Direction::Inbound)
                .unwrap_err(),
            SrtpError::BadKeyLength { want: 44, have: 30 }
        );
    }

    #[test]
    fn keying_material_splits_per_rfc5764() {
        for p in SrtpProfile::ALL {
            let (k, s) = (p.key_len(), p.salt_len());
            let m: Vec<u8> = (0..p.keying_material_len() as u8).collect();
            let client = split_keying_material(p, &m, true).unwrap();
            let server = split_keying_material(p, &m, false).unwrap();
            assert_eq!(client.local, server.remote);
            assert_eq!(client.remote, server.local);
            let mut ck = m[..k].to_vec();
            ck.extend_from_slice(&m[2 * k..2 * k + s]);
            assert_eq!(
                client.local.as_bytes(),
                &ck[..],
                "{p:?} client key || client salt"
            );
            let mut sk = m[k..2 * k].to_vec();
            sk.extend_from_slice(&m[2 * k + s..]);
            assert_eq!(
                client.remote.as_bytes(),
                &sk[..],
                "{p:?} server key || server salt"
            );
            assert!(split_keying_material(p, &m[1..], true).is_err());
            assert_eq!(SrtpProfile::from_id(p.id()), Some(p));
        }
        assert_eq!(SrtpProfile::Aes128CmSha1_80.keying_material_len(), 60);
        assert_eq!(SrtpProfile::AeadAes128Gcm.keying_material_len(), 56);
        assert_eq!(SrtpProfile::AeadAes256Gcm.keying_material_len(), 88);
    }

    /// RFC 3711 §4.1.1 AES counter mode, computed with OpenSSL independently of libsrtp.
    fn aes_cm(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
        openssl::symm::encrypt(openssl::symm::Cipher::aes_128_ctr(), key, Some(iv), data).unwrap()
    }

    /// RFC 3711 §4.3.1 key derivation (kdr 0, index 0): AES-CM keyed with the master key, IV =
    /// (label << 48 XOR master salt) << 16.
    fn kdf(master_key: &[u8], master_salt: &[u8], label: u8, len: usize) -> Vec<u8> {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(master_salt);
        iv[7] ^= label;
        aes_cm(master_key, &iv, &vec![0u8; len])
    }

    /// RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation) vectors, then the
    /// wrapper's SRTP packet checked against a packet built by hand from the B.3 session keys
    /// (§3.3: AES-CM over the payload, HMAC-SHA1-80 over header, payload and ROC).
    #[test]
    fn rfc3711_appendix_b_vectors_through_the_wrapper() {
        // B.2: keystream for session key 2B7E...3C, salt F0F1..FD, SSRC 0, index 0.
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&hex("f0f1f2f3f4f5f6f7f8f9fafbfcfd"));
        let ks = aes_cm(&hex("2b7e151628aed2a6abf7158809cf4f3c"), &iv, &[0u8; 48]);
        assert_eq!(
            ks,
            hex("e03ead0935c95e80e166b16dd92b4eb4 d23513162b02d0f72a43a2fe4a5f97ab 41e95b3bb0a2e8dd477901e4fca894c0")
        );
        // B.3: session keys from master key E1F9..39 and master salt 0EC6..E6.
        let mk = hex("e1f97a0d3e018be0d64fa32c06de4139");
        let ms = hex("0ec675ad498afeebb6960b3aabe6");
        let ck = kdf(&mk, &ms, 0, 16);
        let ak = kdf(&mk, &ms, 1, 20);
        let cs = kdf(&mk, &ms, 2, 14);
        assert_eq!(ck, hex("c61e7a93744f39ee10734afe3ff7a087"));
        assert_eq!(cs, hex("30cbbc08863d8c85d49db34a9ae1"));
        assert_eq!(ak, hex("cebe321f6ff7716b6fd4ab49af256a156d38baa4"));

        // One RTP packet (seq 0x1234, SSRC 0xcafebabe, ROC 0) by hand...
        let header = hex("800f1234decafbadcafebabe");
        let payload = [0xabu8; 16];
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&cs);
        for (i, b) in 0xcafe_babe_u32.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in 0x1234_u64.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        let mut want = header.clone();
        want.extend(aes_cm(&ck, &iv, &payload));
        let mut mac = {
            use hmac::{Hmac, Mac};
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&ak).unwrap();
            m.update(&want);
            m.update(&0u32.to_be_bytes());
            m.finalize().into_bytes().to_vec()
        };
        mac.truncate(10);
        want.extend(mac);
        // ... equals what libsrtp makes through the wrapper from the master key.
        let k = SrtpKey::from_key_salt(&mk, &ms).unwrap();
        let (mut tx, _) = pair(SrtpProfile::Aes128CmSha1_80, &k);
        let mut buf = [0u8; 256];
        buf[..28].copy_from_slice(&[&header[..], &payload[..]].concat());
        let n = tx.protect_rtp(&mut buf, 28).unwrap();
        assert_eq!(&buf[..n], &want[..]);
    }

    /// RFC 7714 §8.1: AES-GCM over the payload with the RTP header as AAD, IV = (00 00 ||
    /// SSRC || ROC || SEQ) XOR salt, the 16-byte tag appended. Computed with OpenSSL.
    fn gcm_packet(key: &[u8], salt: &[u8], packet: &[u8], roc: u32) -> Vec<u8> {
        let (header, payload) = packet.split_at(12);
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&header[8..12]);
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&header[2..4]);
        for (v, s) in iv.iter_mut().zip(salt) {
            *v ^= s;
        }
        let cipher = match key.len() {
            16 => openssl::symm::Cipher::aes_128_gcm(),
            _ => openssl::symm::Cipher::aes_256_gcm(),
        };
        let mut tag = [0u8; 16];
        let ct =
            openssl::symm::encrypt_aead(cipher, key, Some(&iv), header, payload, &mut tag).unwrap();
        [header, &ct[..], &tag[..]].concat()
    }

    /// RFC 7714 §16.1.1's AEAD_AES_128_GCM packet from its session key and salt, then the
    /// wrapper's packets for both GCM profiles checked against ones built by hand from the
    /// session keys that the RFC 7714 §11 / RFC 3711 §4.3 KDF gives for a master key.
    #[test]
    fn rfc7714_vectors_through_the_wrapper() {
        let packet = hex(
            "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573",
        );
        let rfc = gcm_packet(
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("517569642070726f2071756f"),
            &packet,
            0,
        );
        assert_eq!(
            rfc,
            hex("8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce")
        );
        for (profile, mk) in [
            (
                SrtpProfile::AeadAes128Gcm,
                hex("000102030405060708090a0b0c0d0e0f"),
            ),
            (
                SrtpProfile::AeadAes256Gcm,
                hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
            ),
        ] {
            let ms = hex("517569642070726f2071756f");
            // The KDF's AES-CM PRF uses AES-128 or AES-256 with the master key.
            let kdf_n = |label: u8, len: usize| {
                let mut iv = [0u8; 16];
                iv[..12].copy_from_slice(&ms);
                iv[7] ^= label;
                let c = if mk.len() == 16 {
                    openssl::symm::Cipher::aes_128_ctr()
                } else {
                    openssl::symm::Cipher::aes_256_ctr()
                };
                openssl::symm::encrypt(c, &mk, Some(&iv), &vec![0u8; len]).unwrap()
            };
            let (sk, ss) = (kdf_n(0, mk.len()), kdf_n(2, 12));
            let want = gcm_packet(&sk, &ss, &packet, 0);
            let k = SrtpKey::from_key_salt(&mk, &ms).unwrap();
            let (mut tx, mut rx) = pair(profile, &k);
            let mut buf = [0u8; 256];
            buf[..packet.len()].copy_from_slice(&packet);
            let n = tx.protect_rtp(&mut buf, packet.len()).unwrap();
            assert_eq!(&buf[..n], &want[..], "{profile:?}");
            assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(packet.len()));
        }
    }
}
