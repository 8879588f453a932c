#!/usr/bin/env bash
# Provide Verilator >= 5.036 (cocotb 2.x refuses older ones).
#
# 1. A verilator on PATH that is new enough is used as it is.
# 2. Else a build cached under ${MASKPROP_CACHE:-~/.cache/maskprop}/verilator-<version> is reused.
# 3. Else Debian unstable's verilator source package is fetched through a private apt
#    configuration (the system's apt sources are left untouched) and built in the cache
#    (about 5 minutes on 2 cores). Only `make -C src opt` is built: the debug binary is not needed.
#
# Prints the directory whose bin/ holds the verilator to use on its last line of stdout.
set -euo pipefail

MIN_VERSION=5.036
CACHE=${MASKPROP_CACHE:-$HOME/.cache/maskprop}
log() { printf '[provision-verilator] %s\n' "$*" >&2; }

version_ok() {  # version_ok 5.048 -> true when >= MIN_VERSION
  [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$1" | sort -V | head -n1)" = "$MIN_VERSION" ]
}
verilator_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }

if command -v verilator >/dev/null 2>&1; then
  v=$(verilator_version verilator || true)
  if [ -n "$v" ] && version_ok "$v"; then
    log "using verilator $v from PATH ($(command -v verilator))"
    dirname "$(dirname "$(command -v verilator)")"
    exit 0
  fi
  log "verilator ${v:-?} on PATH is older than $MIN_VERSION; looking in the cache"
fi

for root in $(ls -d "$CACHE"/verilator-* 2>/dev/null | sort -V -r); do
  if [ -x "$root/bin/verilator_bin" ] && [ -f "$root/.maskprop-built" ]; then
    v=$(VERILATOR_ROOT=$root verilator_version "$root/bin/verilator" || true)
    if [ -n "$v" ] && version_ok "$v"; then
      log "using cached verilator $v in $root"
      echo "$root"
      exit 0
    fi
  fi
done

start=$(date +%s)
log "no verilator >= $MIN_VERSION found: building Debian unstable's source package in $CACHE"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
log "installing build dependencies (apt)"
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  dpkg-dev autoconf flex bison help2man g++ make perl python3 libfl-dev zlib1g-dev ccache >&2

aptdir="$CACHE/apt-unstable"
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$CACHE/src"
cat > "$aptdir/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main
SRC
APT_OPTS=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir")
log "fetching the source index of Debian unstable (private apt configuration in $aptdir)"
apt-get "${APT_OPTS[@]}" update -qq >&2
cd "$CACHE/src"
rm -rf verilator-*/
log "apt-get source verilator"
apt-get "${APT_OPTS[@]}" source --only-source verilator >&2
srcdir=$(ls -d "$CACHE"/src/verilator-*/ | sort -V | tail -n1)
srcdir=${srcdir%/}
version=${srcdir##*/verilator-}
version=${version%%+*}
root="$CACHE/verilator-$version"
rm -rf "$root"
mv "$srcdir" "$root"
cd "$root"
log "configuring verilator $version"
autoconf >&2
./configure >&2
log "building (make -C src opt -j$(nproc)); this takes about 5 minutes on 2 cores"
make -C src opt -j"$(nproc)" >&2
touch "$root/.maskprop-built"
v=$(VERILATOR_ROOT=$root verilator_version "$root/bin/verilator")
version_ok "$v" || { log "built verilator $v is older than $MIN_VERSION"; exit 1; }
log "built verilator $v in $root in $(( $(date +%s) - start )) s"
echo "$root"
