//! The control plane of webrtc-phone: configuration, SIP over WSS and UDP, the B2BUA, the HTTPS
//! server. The binary `webrtc-phone` wires it to the media engine.

pub mod app;
pub mod b2bua;
pub mod config;
pub mod logging;
pub mod media_node;
pub mod metrics;
pub mod sdp;
pub mod sip;
pub mod tls;
pub mod transport;
