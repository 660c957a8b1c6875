//! Durable verification throughput (filled in below).
fn main() {}
