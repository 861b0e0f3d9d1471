//! Calls, routing and policy: pure, no IO.

pub mod core;
pub mod demo;
pub mod policy;
pub mod register;
pub mod route;
