//! SDP handling: pure, no IO.

pub mod pts;
