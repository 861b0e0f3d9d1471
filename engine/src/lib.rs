//! The media plane of webrtc-phone.
//!
//! `ports` plans how the RTP port range is split into one shard per media reactor. The reactors,
//! the pure protocol machines (STUN, ICE-lite, DTLS, SRTP, sessions) and the command API to the
//! signaling thread build on it.

pub mod api;
pub mod ports;
pub mod proto;
