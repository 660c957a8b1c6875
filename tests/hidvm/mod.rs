//! The real-kernel runner (tests/hidvm/setup.sh) as the test binaries find it: built once into
//! `<target>/hidvm`, shared by every test that boots the guest.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// The runner's `run.sh`, built if needed; `None` (with the reason on stderr) if it cannot be
/// built here.
pub fn runner() -> Option<PathBuf> {
    let dir = target_dir().join("hidvm");
    let run = dir.join("run.sh");
    if run.exists() && dir.join("vmlinux").exists() {
        return Some(run);
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hidvm/setup.sh");
    let out = Command::new("bash").arg(&setup).arg(&dir).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "hidvm setup failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    run.exists().then_some(run)
}
