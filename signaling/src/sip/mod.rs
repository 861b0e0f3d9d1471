//! SIP: message parse and print, header views, transactions and dialogs. Pure, no IO.

pub mod digest;
pub mod hdr;
pub mod msg;
pub mod txn;
