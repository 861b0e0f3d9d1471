//! IO at the edge: HTTPS (web root, /ws, /metrics, /healthz), SIP over WebSocket, SIP/UDP, and
//! the media node's ng socket.

pub mod driver;
pub mod http;
pub mod limits;
pub mod ng;
pub mod origin;
pub mod udp;
pub mod ws;
pub mod ws_policy;
