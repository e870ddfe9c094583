#!/usr/bin/env bash
# Installs the system packages tessera needs when they are missing: HDF5 to build (Debian's
# libhdf5-dev, found through pkg-config) and, with --test, Open MPI's mpirun (openmpi-bin), which
# the tests use to launch a split run. Idempotent and quiet when done.
set -euo pipefail
packages=()
pkg-config --exists hdf5 2>/dev/null || packages+=(libhdf5-dev pkg-config)
if [[ "${1:-}" == --test ]] && ! command -v mpirun >/dev/null 2>&1; then
  packages+=(openmpi-bin)
fi
if [[ ${#packages[@]} == 0 ]]; then
  exit 0
fi
echo "system-deps: installing ${packages[*]}" >&2
if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -qq "${packages[@]}" >&2 ||
  { "${SUDO[@]}" apt-get update -qq >&2 && "${SUDO[@]}" apt-get install -y -qq "${packages[@]}" >&2; } ||
  { echo "system-deps: error: could not install ${packages[*]}; install them (without HDF5, cargo build --no-default-features builds the rest; without mpirun, its test is skipped unless TESSERA_REQUIRE_ORACLE=1)" >&2; exit 1; }
pkg-config --exists hdf5 || { echo "system-deps: error: pkg-config still finds no hdf5" >&2; exit 1; }
if [[ "${1:-}" == --test ]]; then
  command -v mpirun >/dev/null 2>&1 || { echo "system-deps: error: no mpirun on PATH after installing openmpi-bin" >&2; exit 1; }
fi
