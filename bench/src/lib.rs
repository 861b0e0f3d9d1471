//! The webrtc-phone load generator: N browsers at once, built from the gateway's own protocol
//! code (engine::proto in the client role, signaling's SIP message and SDP model), against a
//! SIPp echo far end. See `bench/README.md`.
//!
//! * [`peer`]: the client-role WebRTC leg, `engine::proto::client` (ICE controlling, DTLS,
//!   SRTP): the gateway's own protocol code, not a second implementation.
//! * [`sdp`]: Chrome-shaped offers/answers; reading the far end's media parameters.
//! * [`ua`]: one SIP UA over WSS.
//! * [`run`]: the load run (ramp, hold, hang-up, callees, sampler).
//! * [`stats`], [`procstat`], [`report`]: measuring and reporting.
//! * [`flood`]: the SIP/UDP flood generator's requests and pacing (`flood` binary).

// A load generator is an IO edge through and through: it binds sockets, connects and reads the
// clock wherever it measures (the protocol code it drives is the engine's and signaling's).
#![allow(clippy::disallowed_methods)]

pub use engine::proto::client as peer;
pub mod flood;
pub mod procstat;
pub mod report;
pub mod run;
pub mod sdp;
pub mod stats;
pub mod ua;
