//! SIP: message parse and print, header views, transactions and dialogs. Pure, no IO.

#![forbid(unsafe_code)]

pub mod dialog;
pub mod digest;
pub mod hdr;
pub mod method;
pub mod msg;
pub mod names;
pub mod txn;
