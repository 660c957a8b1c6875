//! keygatectl: the keygate command-line client.
fn main() {}
