//! keygated: the keygate daemon.
fn main() {}
