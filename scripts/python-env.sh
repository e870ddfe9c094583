#!/usr/bin/env bash
# Create or refresh the project's Python virtualenv (.venv in the repo root)
# from scripts/requirements.txt. It holds the test oracles' and benchmarks'
# dependencies (numpy, dask[array], scipy, zarr, h5py, moto).
#
#   bash scripts/python-env.sh      # progress on stderr, venv python on stdout
#
# Idempotent: a stamp file in .venv holds the hash of requirements.txt, so a
# second run with an unchanged file only checks that the interpreter starts.
# Base interpreter: $PYTHON if set, else python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.requirements.sha256"
VPY="$VENV/bin/python"
BASE_PY="${PYTHON:-python3}"

exec 3>&1 1>&2 # log to stderr; only the interpreter path goes to stdout
die() { echo "python-env: error: $*"; exit 1; }

# Serialise concurrent runs (two test processes setting up at once).
if command -v flock >/dev/null 2>&1; then
  exec 9<"$REQ"
  flock 9
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VPY" -c '' 2>/dev/null; then
  echo "$VPY" >&3
  exit 0
fi

# Run a command as root (directly, or through non-interactive sudo).
as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "python-env: installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if ! command -v "$BASE_PY" >/dev/null 2>&1; then
  apt_install python3 python3-venv python3-pip ||
    die "no '$BASE_PY' found; install Python >= 3.11 with venv (Debian: apt-get install python3-venv)"
fi

# Recreate the venv if it is missing or its interpreter no longer starts
# (e.g. the base Python it was made from is gone).
if ! "$VPY" -c 'import pip' 2>/dev/null; then
  echo "python-env: creating $VENV with $("$BASE_PY" --version 2>&1) ($(command -v "$BASE_PY"))"
  rm -rf "$VENV"
  if ! "$BASE_PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    apt_install python3-venv || die "'$BASE_PY -m venv' failed; install the venv module (Debian: apt-get install python3-venv)"
    "$BASE_PY" -m venv "$VENV" || die "'$BASE_PY -m venv $VENV' failed"
  fi
fi

rm -f "$STAMP"
echo "python-env: installing $REQ"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
"$VPY" -m pip install --progress-bar off -r "$REQ" || die "pip install -r $REQ failed (see above)"
"$VPY" -c 'import numpy, dask.array, scipy, zarr, h5py' || die "installed packages do not import"
"$VPY" -m pip check || die "pip check found broken dependencies"
echo "$want" >"$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
"$VPY" -c 'import sys, numpy, dask, scipy, zarr, h5py; print("python-env: ready:", sys.version.split()[0], *(f"{m.__name__} {m.__version__}" for m in (numpy, dask, scipy, zarr, h5py)))'
echo "$VPY" >&3
