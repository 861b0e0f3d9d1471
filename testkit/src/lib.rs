//! The test kit every crate's tests share (dev-dependency only; `bench` also uses the WSS UA at
//! run time). It depends on no crate of the workspace, so a test's types stay the crate's own.
//!
//! - [`VirtualClock`]: one real `Instant` read once, moved by the test.
//! - [`SeededRng`]: xorshift64*, so a failing run reproduces from its seed.
//! - [`NetEmulator`]: datagrams delivered on virtual time after a seeded delay, jitter, loss,
//!   duplication and reordering model.
//! - `tls` and `sipua` (feature `wss`): the any-certificate client configuration and the
//!   WebSocket-over-TLS SIP user agent.

pub mod clock;
pub mod net;
pub mod rng;
#[cfg(feature = "wss")]
pub mod sipua;
#[cfg(feature = "wss")]
pub mod tls;

pub use clock::VirtualClock;
pub use net::{Datagram, LinkModel, NetEmulator, NetStats};
pub use rng::SeededRng;
