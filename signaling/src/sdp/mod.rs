//! SDP handling: pure, no IO.

#![forbid(unsafe_code)]

pub mod model;
pub mod pts;
pub mod remote;
pub mod translate;
