//! Placeholder until the relay benchmark lands.
fn main() {}
