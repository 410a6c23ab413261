#!/usr/bin/env bash
# Run `./qiwang test` on a fresh Debian 12 minbase, as a new user would: nothing installed by hand.
#
#   sudo tools/fresh-debian-test.sh [--bootstrap-only] [DIR]     (DIR default: /var/tmp/qiwang-fresh-debian)
#
# 1. debootstrap --variant=minbase bookworm into DIR, from the Debian mirror this host's APT uses
#    (/etc/apt/sources.list*), unless DIR already holds a finished bootstrap (delete DIR to start over);
# 2. copy this checkout into DIR/root/qiwang (tracked and untracked files, not what .gitignore lists:
#    no .venv, node_modules or var/), replacing an earlier copy (whose .venv and node_modules stay);
# 3. mount /proc, /sys, /dev, /dev/pts and a tmpfs on /dev/shm (PostgreSQL's and Chromium's shared
#    memory), and run `./qiwang test` inside the chroot as root; the exit code is the suite's.
#
# Three things are set up in the chroot that are not "installing by hand" but the site's network and
# chroot hygiene: the host's resolv.conf (name resolution for apt, pip and npm), the host's site CAs
# (below), and a policy-rc.d that stops package scripts from starting services (Debian's postgresql and mosquitto would otherwise start a server
# on the host's network, port 5432 and 1883: a chroot shares the host's network).
# The transcript goes to DIR.log as well as to stdout. Needs root, debootstrap (installed through apt
# when missing) and network access to the Debian mirror, PyPI and the npm registry.
set -euo pipefail

ROOT="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
ROOT="$(readlink -f "$ROOT")"
BOOTSTRAP_ONLY=0
if [[ ${1:-} == --bootstrap-only ]]; then BOOTSTRAP_ONLY=1; shift; fi
DIR="$(readlink -m "${1:-/var/tmp/qiwang-fresh-debian}")"
LOG="$DIR.log"

say() { printf 'fresh-debian: %s\n' "$*" >&2; }
die() { printf 'fresh-debian: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (debootstrap and chroot need it)"
[[ $DIR != / && $DIR != "$ROOT"* ]] || die "DIR must be a folder of its own, outside the checkout"

# The first Debian (not security) mirror in the host's APT sources, one-line or deb822 format.
mirror() {
  local found
  found="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE '(https?://[^ ]+/debian)/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)"
  printf '%s\n' "${found%/}"
}

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

mount_into() {  # mount_into TARGET mount-args...
  local target="$DIR$1"; shift
  mkdir -p "$target"
  mountpoint -q "$target" || { mount "$@" "$target"; MOUNTS+=("$target"); }
}

exec > >(tee -a "$LOG") 2>&1
say "$(date -u '+%F %T UTC'): into $DIR"

if [[ ! -f $DIR/.qiwang-bootstrapped ]]; then
  command -v debootstrap >/dev/null || { say "installing debootstrap"; apt-get -qq update; apt-get install -y -qq debootstrap; }
  MIRROR="$(mirror)"; MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  say "debootstrap --variant=minbase bookworm from $MIRROR"
  rm -rf "$DIR"
  debootstrap --variant=minbase bookworm "$DIR" "$MIRROR"
  SECURITY="${MIRROR%/debian}/debian-security"
  cat >"$DIR/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
EOF
  printf '#!/bin/sh\n# qiwang fresh-debian: no services started inside the chroot\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"
  chmod 755 "$DIR/usr/sbin/policy-rc.d"
  touch "$DIR/.qiwang-bootstrapped"
  say "$(date -u '+%T'): bootstrap done"
fi
cp -L /etc/resolv.conf "$DIR/etc/resolv.conf"
# A site whose egress goes through a TLS-inspecting proxy has its CA in /usr/local/share/ca-certificates
# on every machine: so does the chroot. The ca-certificates package (which ./qiwang installs) adds
# it to /etc/ssl/certs/ca-certificates.crt; pip (certifi) and npm are pointed at that bundle.
CA_ENV=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$DIR/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$DIR/usr/local/share/ca-certificates/"
  [[ ! -x $DIR/usr/sbin/update-ca-certificates ]] || chroot "$DIR" update-ca-certificates >/dev/null
  bundle=/etc/ssl/certs/ca-certificates.crt
  CA_ENV=(PIP_CERT=$bundle SSL_CERT_FILE=$bundle REQUESTS_CA_BUNDLE=$bundle NODE_EXTRA_CA_CERTS=$bundle npm_config_cafile=$bundle)
  say "site CAs copied: $(cd /usr/local/share/ca-certificates && echo *.crt)"
fi
[[ $BOOTSTRAP_ONLY -eq 0 ]] || exit 0

say "copying $ROOT to $DIR/root/qiwang"
# A rerun keeps what ./qiwang made in the copy before (.venv, node_modules: it checks them itself);
# the checkout's files and var/ (the cluster) are fresh. Delete DIR for a run from scratch.
KEEP="$DIR/root/.qiwang-keep"
rm -rf "$KEEP"; mkdir -p "$KEEP"
for made in .venv node_modules; do [[ ! -e $DIR/root/qiwang/$made ]] || mv "$DIR/root/qiwang/$made" "$KEEP/"; done
rm -rf "$DIR/root/qiwang"
mkdir -p "$DIR/root/qiwang"
for made in .venv node_modules; do [[ ! -e $KEEP/$made ]] || mv "$KEEP/$made" "$DIR/root/qiwang/"; done
rmdir "$KEEP"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
  | tar --null -T - -cf -) | tar -xf - -C "$DIR/root/qiwang"
# A git checkout, as a clone would be (git is what ./qiwang installs; the suite does not need history).

mount_into /proc -t proc proc
mount_into /sys -t sysfs sysfs
mount_into /dev --bind /dev
mount_into /dev/pts --bind /dev/pts
mount_into /dev/shm -t tmpfs -o mode=1777,size=2g tmpfs

say "$(date -u '+%T'): ./qiwang test in the chroot"
set +e
chroot "$DIR" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 "${CA_ENV[@]}" /bin/bash -c 'cd /root/qiwang && ./qiwang test -q -p no:cacheprovider'
code=$?
set -e
say "$(date -u '+%T'): ./qiwang test exited with $code"
exit "$code"
