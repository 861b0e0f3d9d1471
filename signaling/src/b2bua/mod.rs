//! Calls, routing and policy: pure, no IO.

#![forbid(unsafe_code)]

mod admission;
pub mod call;
#[cfg(test)]
mod call_tests;
pub mod core;
pub mod demo;
mod dispatch;
pub mod errors;
mod ids;
pub mod limits;
pub mod policy;
pub mod register;
mod registrar;
pub mod route;
mod table;
pub mod types;
