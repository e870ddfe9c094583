#!/usr/bin/env bash
# Runs the tessera command from a fresh checkout: installs the system libraries it builds
# against (scripts/system-deps.sh), then `cargo run --release -- ARGS...`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/system-deps.sh
exec cargo run --quiet --release -- "$@"
