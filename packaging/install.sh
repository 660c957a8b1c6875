#!/usr/bin/env bash
# Installs keygate into $DESTDIR (default: /) under $PREFIX (default: /usr).
#
#   cargo build --release && sudo bash packaging/install.sh
#   DESTDIR=/tmp/root bash packaging/install.sh --bin-dir target/debug     # staged install
#
# Then, on a real system (not for DESTDIR installs): systemd-sysusers; udevadm control --reload;
# systemctl daemon-reload; systemctl reload dbus; systemctl enable --now keygated.
set -euo pipefail
cd "$(dirname "$0")/.."

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BIN_DIR=target/release
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#--bin-dir=}; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for b in keygated keygatectl; do
  [ -x "$BIN_DIR/$b" ] || { echo "install.sh: $BIN_DIR/$b not built (cargo build --release)" >&2; exit 1; }
done

root=$DESTDIR
# systemd and udev look under /usr/lib (also with PREFIX=/usr/local they are system paths)
syslib=$root/usr/lib

install -Dm0755 "$BIN_DIR/keygated"   "$root$PREFIX/libexec/keygated"
install -Dm0755 "$BIN_DIR/keygatectl" "$root$PREFIX/bin/keygatectl"

sed "s|/usr/libexec/keygated|$PREFIX/libexec/keygated|" systemd/keygated.service > "$BIN_DIR/keygated.service.out"
install -Dm0644 "$BIN_DIR/keygated.service.out"  "$syslib/systemd/system/keygated.service"
rm -f "$BIN_DIR/keygated.service.out"
install -Dm0644 dbus/org.keygate.Keygate1.conf    "$root/usr/share/dbus-1/system.d/org.keygate.Keygate1.conf"
install -Dm0644 dbus/org.keygate.Keygate1.service "$root/usr/share/dbus-1/system-services/org.keygate.Keygate1.service"
install -Dm0644 dbus/org.keygate.Keygate1.xml     "$root$PREFIX/share/dbus-1/interfaces/org.keygate.Keygate1.xml"
install -Dm0644 udev/70-keygate.rules             "$syslib/udev/rules.d/70-keygate.rules"
install -Dm0644 udev/72-keygate-virtual.rules     "$syslib/udev/rules.d/72-keygate-virtual.rules"
install -Dm0644 sysusers.d/keygate.conf           "$syslib/sysusers.d/keygate.conf"
install -Dm0644 modules-load.d/keygate.conf       "$syslib/modules-load.d/keygate.conf"

# man page and shell completions, generated from the CLI definition
install -d "$root$PREFIX/share/man/man1" "$root$PREFIX/share/bash-completion/completions" \
           "$root$PREFIX/share/zsh/vendor-completions" "$root$PREFIX/share/fish/vendor_completions.d"
"$BIN_DIR/keygatectl" man > "$root$PREFIX/share/man/man1/keygatectl.1"
"$BIN_DIR/keygatectl" completions bash > "$root$PREFIX/share/bash-completion/completions/keygatectl"
"$BIN_DIR/keygatectl" completions zsh  > "$root$PREFIX/share/zsh/vendor-completions/_keygatectl"
"$BIN_DIR/keygatectl" completions fish > "$root$PREFIX/share/fish/vendor_completions.d/keygatectl.fish"

echo "installed keygate into ${DESTDIR:-/} (prefix $PREFIX)"
