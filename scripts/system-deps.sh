#!/usr/bin/env bash
# Installs the system libraries tessera builds against when they are missing:
# HDF5 (Debian's libhdf5-dev, found through pkg-config). Idempotent and quiet when done.
set -euo pipefail
if pkg-config --exists hdf5 2>/dev/null; then
  exit 0
fi
echo "system-deps: installing libhdf5-dev and pkg-config" >&2
if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -qq libhdf5-dev pkg-config >&2 ||
  { "${SUDO[@]}" apt-get update -qq >&2 && "${SUDO[@]}" apt-get install -y -qq libhdf5-dev pkg-config >&2; } ||
  { echo "system-deps: error: could not install libhdf5-dev; install it, or build without HDF5: cargo build --no-default-features" >&2; exit 1; }
pkg-config --exists hdf5 || { echo "system-deps: error: pkg-config still finds no hdf5" >&2; exit 1; }
