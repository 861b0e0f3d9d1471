//! SDP handling: pure, no IO.

pub mod model;
pub mod pts;
pub mod translate;
