//! rtpengine's "ng" control protocol, the pure layer: what Kamailio's and OpenSIPS'
//! `rtpengine` modules send and expect, with no sockets, threads or clocks (time comes in as
//! `now`). Wire facts and their sources: `shared/notes/ng-protocol.md` (issue 16).
//!
//! - [`bencode`]: our own bencode codec, strict and bounded on input, deterministic on output.
//! - [`json`]: JSON dictionaries mapped onto the same values.
//! - [`datagram`]: `<cookie> <dictionary>` framing, refusals with rtpengine's reasons.
//! - [`request`]: the typed request; unknown keys and flags collected, never an error.
//! - [`response`]: reply dictionaries, including the capacity strings Kamailio fails over on.
//! - [`cache`]: the reply cache for retransmissions, keyed by (source, cookie).
#![forbid(unsafe_code)]

pub mod bencode;
pub mod cache;
pub mod datagram;
pub mod json;
pub mod request;
pub mod response;

pub use bencode::{Dict, Limits, Value};
pub use cache::{CacheConfig, Lookup, ReplyCache};
pub use datagram::{Format, Incoming};
pub use request::{Command, Request};
pub use response::{Capacity, Response};
