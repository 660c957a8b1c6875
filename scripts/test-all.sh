#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need,
# then runs formatting, lints, unit/integration tests and the interop tests.
#   bash scripts/test-all.sh
# Tests that need an outside tool fail (rather than skip) when KEYGATE_REQUIRE_INTEROP=1,
# which this script sets.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n== %s\n' "$*"; }

# --- system packages --------------------------------------------------------
APT_PACKAGES=(
  dbus-daemon dbus-bin     # private buses for the service tests
  oathtool                 # outside OTP oracle
  zbar-tools               # zbarimg decodes the QR codes we render
  python3-pskc pskc-utils  # outside PSKC writer/reader (Debian's python3)
  fido2-tools              # libfido2's fido2-token / fido2-cred, run inside the hidvm guest
  python3-venv
  util-linux               # setpriv for the access-control tests
  passwd                   # groupadd/groupdel for the access-control tests
  systemd                  # systemd-analyze verify/security on the shipped unit
  publicsuffix             # registrable-domain rules for the WebAuthn client
  chromium                 # outside WebAuthn oracle (tests/webauthn_chromium.rs)
)
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# tests/hidvm/setup.sh fetches the guest kernel and QEMU with `apt-get download`: it needs lists.
if [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  $SUDO apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Python venv with pinned outside clients ---------------------------------
VENV=$ROOT/.venv
if [ ! -x "$VENV/bin/python" ] || ! cmp -s tests/interop/requirements.txt "$VENV/.requirements" ; then
  log "python venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/interop/requirements.txt
  cp tests/interop/requirements.txt "$VENV/.requirements"
fi
export KEYGATE_PYTHON=$VENV/bin/python
export KEYGATE_REQUIRE_INTEROP=1

# --- Rust -------------------------------------------------------------------
# A one-shot build gains nothing from incremental state, which doubles the target's size.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets -- -D warnings
log "cargo test (unit, integration, interop, doc)"
cargo test

log "keygatectl demo (README's first command)"
cargo run -q --bin keygatectl -- demo
