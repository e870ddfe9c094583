#!/usr/bin/env bash
# Benchmark tessera against Dask and NumPy in one run; print a Markdown table.
#
#   bash benches/compare.sh [--quick] [--threads N] [--mem SIZE] [--repeat R]
#                           [--python-only] [--out DIR]
#
#   --quick        overhead n=100,000 and a 400 MB input (default: n=1,000,000
#                  and a 4 GB input, made once under bench-out/ and reused)
#   --threads N    worker threads for tessera and Dask (default: nproc)
#   --mem SIZE     passed to tessera as --mem SIZE
#   --repeat R     tessera runs and Python in-process runs per measurement;
#                  the best is reported (default 3; Dask's overhead run is 1)
#   --python-only  skip building and running tessera (reference columns only)
#   --out DIR      where inputs and results go (default: bench-out)
#   env TESSERA_BIN=PATH  use that binary instead of building target/release/tessera
#
# tessera is timed as a whole process with /usr/bin/time (start-up, open,
# compute, output). The Python references report in-process times of the
# operation (after imports and np.load), best of R; for the overhead workload
# Dask is also timed as a whole process. Raw results go to DIR/run-*/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "compare: $*" >&2; }
die() { log "error: $*"; exit 1; }

QUICK=0 THREADS="$(nproc)" MEM="" REPEAT=3 PY_ONLY=0 OUT="$ROOT/bench-out"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift ;;
    --mem) MEM="${2:?--mem needs a value}"; shift ;;
    --repeat) REPEAT="${2:?--repeat needs a value}"; shift ;;
    --python-only) PY_ONLY=1 ;;
    --out) OUT="$(realpath -m "${2:?--out needs a value}")"; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

CHUNK=10 COLS=500
if [[ $QUICK == 1 ]]; then N=100000 ROWS=100000; else N=1000000 ROWS=1000000; fi

# --- tools ------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time"
  if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time ||
    die "/usr/bin/time is missing: apt-get install time"
fi
PY="$(bash scripts/python-env.sh)"
TESSERA="${TESSERA_BIN:-$ROOT/target/release/tessera}"
if [[ $PY_ONLY == 0 && -z ${TESSERA_BIN:-} ]]; then
  bash scripts/system-deps.sh  # the HDF5 library the build links against
  log "cargo build --release"
  cargo build --release >&2
  [[ -x $TESSERA ]] || die "$TESSERA was not built"
fi

RUN="$OUT/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"
RESULTS="$RUN/results.jsonl"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
DATA="$OUT/bench-${ROWS}x${COLS}-f8.npy"
if [[ ! -f $DATA ]]; then
  log "making $DATA"
  "$PY" benches/python/npy_reduce.py --make "$ROWS" "$COLS" --file "$DATA" >&2
fi

# timed WORKLOAD TOOL CMD...: run CMD under /usr/bin/time and append
# {"source": "process", workload, tool, seconds, rss_kb, rc, stdout, stderr}
# to the results (stdout/stderr trimmed).
timed() {
  local workload="$1" tool="$2" rc=0 t0 t1
  shift 2
  t0="$EPOCHREALTIME"
  /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  t1="$EPOCHREALTIME"
  [[ $rc == 0 ]] || log "$tool $workload failed (exit $rc): $(tail -n 3 "$TMP/err")"
  "$PY" - "$workload" "$tool" "$t0" "$t1" "$rc" "$TMP" >>"$RESULTS" <<'PYEOF'
import json, sys
workload, tool, t0, t1, rc, tmp = sys.argv[1:]
read = lambda name: open(f"{tmp}/{name}", errors="replace").read()
try:
    rss = int(read("time").split()[-1])
except (ValueError, IndexError):
    rss = None
print(json.dumps({"source": "process", "workload": workload, "tool": tool,
                  "seconds": float(t1) - float(t0), "rss_kb": rss, "rc": int(rc),
                  "stdout": read("out")[-2000:], "stderr": read("err")[-2000:]}))
PYEOF
  return 0
}
TFLAGS=(--threads "$THREADS")
[[ -n $MEM ]] && TFLAGS+=(--mem "$MEM")

# --- overhead: tiny blocks ----------------------------------------------------
log "overhead workload: n=$N chunks=$CHUNK"
EXPR="sum(sqrt(ones(($N,), chunks=$CHUNK) * 4.0) + 1.0)"
if [[ $PY_ONLY == 0 ]]; then
  for _ in $(seq "$REPEAT"); do timed overhead tessera "$TESSERA" eval "$EXPR" "${TFLAGS[@]}"; done
fi
timed overhead dask "$PY" benches/python/overhead.py --n "$N" --chunks "$CHUNK" --repeat 1 --threads "$THREADS"
timed overhead numpy "$PY" benches/python/overhead.py --n "$N" --numpy --repeat "$REPEAT"

# --- reductions over a .npy file (warm page cache) ---------------------------
log "npy workloads: $DATA"
"$PY" benches/python/npy_reduce.py --file "$DATA" --repeat "$REPEAT" --threads "$THREADS" >>"$RESULTS"
if [[ $PY_ONLY == 0 ]]; then
  cat "$DATA" >/dev/null # warm the page cache, as npy_reduce.py does
  for _ in $(seq "$REPEAT"); do timed sum tessera "$TESSERA" eval "sum(x)" --in "x=$DATA" "${TFLAGS[@]}"; done
  for _ in $(seq "$REPEAT"); do
    timed mean0 tessera "$TESSERA" eval "mean(x, axis=0)" --in "x=$DATA" -o "$TMP/out.npy" --overwrite "${TFLAGS[@]}"
  done
  # Checksum of the written column means, to check against the references.
  if [[ -f $TMP/out.npy ]]; then
    "$PY" -c 'import json, sys, numpy as np
print(json.dumps({"source": "check", "workload": "mean0", "tool": "tessera",
                  "result_checksum": float(np.load(sys.argv[1]).sum())}))' "$TMP/out.npy" >>"$RESULTS"
  fi
fi

# --- table -------------------------------------------------------------------
# Exits non-zero if a tessera run failed or its result disagrees with NumPy's.
rc=0
"$PY" benches/python/compare_table.py "$RESULTS" --n "$N" --chunks "$CHUNK" \
  --data "$DATA" --threads "$THREADS" --repeat "$REPEAT" | tee "$RUN/table.md" || rc=$?
log "raw results: $RESULTS"
exit "$rc"
