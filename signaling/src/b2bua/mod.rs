//! Calls, routing and policy: pure, no IO.

pub mod call;
#[cfg(test)]
mod call_tests;
pub mod core;
pub mod demo;
pub mod policy;
pub mod register;
pub mod route;
pub mod timers;
