//! Pure protocol machines: no sockets, no threads, no clock reads (time comes in as `now`).
//!
//! * [`wire`]: first-byte demultiplexing (RFC 7983) and RTP/RTCP header views.
//! * [`stun`]: STUN Binding parse/build with MESSAGE-INTEGRITY and FINGERPRINT.
//! * [`srtp`]: SRTP/SRTCP in place over libsrtp, and DTLS-SRTP key splitting.
//! * [`dtls`]: DTLS 1.2 endpoint over memory BIOs, certificate identity and fingerprints.

pub mod dtls;
pub mod srtp;
pub mod stun;
pub mod wire;
