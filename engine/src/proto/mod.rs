//! Pure protocol machines: no sockets, no threads, no clock reads (time comes in as `now`).
//!
//! * [`wire`]: first-byte demultiplexing (RFC 7983) and RTP/RTCP header views.
//! * [`stun`]: STUN Binding parse/build with MESSAGE-INTEGRITY and FINGERPRINT.
//! * [`srtp`]: SRTP/SRTCP in place over libsrtp, and DTLS-SRTP key splitting.
//! * [`dtls`]: DTLS 1.2 endpoint over memory BIOs, certificate identity and fingerprints.
//! * [`entropy`]: where random values come from: the caller's choice (OpenSSL's CSPRNG, or a
//!   seeded generator in tests and simulations).
//! * [`ice`]: ICE-lite controlled agent: Binding answers, nomination latch, restart, consent.
//! * [`session`]: one call's two legs (WebRTC, plain RTP, echo): demux, in-place forwarding.
//! * [`stats`]: drop reasons and RTP reception statistics (loss, jitter).
//! * [`client`]: the browser's side of a WebRTC leg (ICE controlling, DTLS, SRTP), built from
//!   the same pieces: the load generator's browsers and tests that play one.

pub mod client;
pub mod dtls;
pub mod entropy;
pub mod ice;
pub mod session;
pub mod srtp;
pub mod stats;
pub mod stun;
pub mod wire;
