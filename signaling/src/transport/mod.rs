//! IO at the edge: HTTPS (web root, /ws, /metrics, /healthz), SIP over WebSocket, SIP/UDP.

pub mod http;
pub mod limits;
pub mod origin;
pub mod ws;
