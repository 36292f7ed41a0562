//! Pool benchmark (written next).

fn main() {}
