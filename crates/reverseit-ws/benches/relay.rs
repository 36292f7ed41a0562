//! Relay benchmark (written next).

fn main() {}
