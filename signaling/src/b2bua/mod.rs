//! Calls, routing and policy: pure, no IO.

pub mod policy;
pub mod route;
