//! keygated: the keygate daemon.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("keygated is not built yet")
}
