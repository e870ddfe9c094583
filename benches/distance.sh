#!/usr/bin/env bash
# Distance benchmark (issue 4): tessera's distance kernels beside their Python peers in
# the same run (SciPy cdist, the NumPy GEMM trick, Numba prange loops, Dask blockwise
# cdist), a distance matrix larger than its memory streamed to Zarr / HDF5 beside Dask and
# dd, and a k-nearest-neighbour query beside scikit-learn; print Markdown tables.
#
#   bash benches/distance.sh [--quick] [--threads N] [--repeat R] [--python-only]
#                            [--skip-stream] [--skip-knn] [--budget S] [--out DIR]
#
#   --quick        n = m = 4000, d in {3, 64}; knn on 20000 points; no streaming
#                  (default: n = m = 10000, d in {3, 64, 256}, knn on 200000 points)
#   --threads N    threads for every implementation: tessera --threads, Dask num_workers,
#                  Numba, BLAS and OpenMP (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS) (default: nproc)
#   --repeat R     timed runs per measurement, the best is reported (default 3)
#   --python-only  build and run no tessera (its columns stay empty); the Python peers
#                  and dd still run
#   --skip-stream  skip the streaming part (needs 30 GB free under DIR otherwise)
#   --skip-knn     skip the k-nearest-neighbour part
#   --budget S     a Python peer whose full run would take over S seconds is timed on a
#                  prefix of the rows of x that takes about S s (marked † in the table;
#                  0: always the full matrix) (default 10)
#   --out DIR      inputs and results (default: bench-out/distance)
#
# Kernels: for d in D, dtype in {f64, f32}: x (n, d) and y (m, d) uniform in [0, 1), seeds
# 1 and 2 (benches/python/distance_data.py, made once under DIR/data and reused). Metrics
# cityblock, euclidean, sqeuclidean, chebyshev, minkowski (p = 3), canberra, braycurtis,
# cosine. tessera: `cargo build --release --example distance_bench`, once more with
# RUSTFLAGS="-C target-cpu=native" into target/native ("tessera-native"); each runs
#   distance_bench --x X.npy --y Y.npy --metric M [--p 3] --threads T --repeat R
# and prints one JSON line {"impl", "metric", "dtype", "n", "m", "d", "seconds"}. Peers:
# benches/python/distance_peer.py, one process per implementation, d and dtype (SciPy
# cdist converts float32 to float64; the GEMM trick covers euclidean and sqeuclidean only;
# Numba kernels are compiled, or loaded from DIR/numba-cache, before timing). Rate: G
# pair-dims/s = n*m*d / seconds / 1e9. The machine's limit for each kernel (the table's last
# column, tessera's rate over it): `machine_peak --threads T` (examples/machine_peak.rs), the
# rate of the AVX-512 instructions the kernel issues, with their operands in registers.
# Streaming (40000 x 64 f64 points, a 40000 x 40000 f64 matrix, 12.8 GB, tiles of 4000):
# Dask blockwise cdist .to_zarr (zarr-python 3, compressors=None), benches/python/
# distance_stream_peer.py; `tessera cdist X.npy --metric euclidean --chunk 4000 --mem 1GiB
# --codec none -o OUT.zarr` and the same with -o OUT.h5:/d; `dd if=/dev/zero bs=16M
# conv=fdatasync` of the same bytes. Each a whole process under /usr/bin/time (seconds,
# peak RSS), then a timed `sync` (GB/s "incl. sync"); outputs checked on a few rows against
# SciPy, removed after each run.
# knn (k = 8, euclidean, 3-D f64 points, every point against all): scikit-learn
# NearestNeighbors(algorithm='brute').fit(x).kneighbors(x) (benches/python/knn_peer.py)
# against `tessera knn X.npy -k 8 --metric euclidean -o OUT.zarr`, whole processes under
# /usr/bin/time; tessera's distances checked against scikit-learn's.
# Python: the project's .venv (scripts/python-env.sh), plus benches/python/requirements.txt
# (numba 0.68.1, which supports NumPy up to 2.5, and scikit-learn 1.9.1) installed into it
# when they do not import; a peer that still does not import is skipped with a note.
# Raw JSON lines: DIR/run-*/results.jsonl; the tables: stdout, DIR/run-*/distance.md and
# DIR/distance.md. Exit status 1 if a run failed or a result disagrees with SciPy.
# Time on 2 cores: --quick --python-only about 6 minutes; the full run is estimated
# (not yet measured) at most of an hour, most of it the Python peers at d = 256.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T_START="$EPOCHREALTIME"
elapsed() { awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
log() { printf 'distance [%5ss]: %s\n' "$(elapsed)" "$*" >&2; }
die() { echo "distance: error: $*" >&2; exit 1; }

QUICK=0 THREADS="$(nproc)" REPEAT=3 PY_ONLY=0 STREAM=1 KNN=1 BUDGET=10
OUT="$ROOT/bench-out/distance"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift ;;
    --repeat) REPEAT="${2:?--repeat needs a value}"; shift ;;
    --python-only) PY_ONLY=1 ;;
    --skip-stream) STREAM=0 ;;
    --skip-knn) KNN=0 ;;
    --budget) BUDGET="${2:?--budget needs a value}"; shift ;;
    --out) OUT="$(realpath -m "${2:?--out needs a value}")"; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$REPEAT'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$THREADS'"
[[ $BUDGET =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--budget must be a number of seconds, got '$BUDGET'"

METRICS=(cityblock euclidean sqeuclidean chebyshev minkowski canberra braycurtis cosine)
MINKOWSKI_P=3
DTYPES=(f64 f32)
if [[ $QUICK == 1 ]]; then
  N=4000 DS=(3 64) KNN_N=20000 STREAM=0
else
  N=10000 DS=(3 64 256) KNN_N=200000
fi
M=$N
STREAM_N=40000 STREAM_D=64 STREAM_CHUNK=4000 STREAM_MEM=1GiB
STREAM_BYTES=$((STREAM_N * STREAM_N * 8))
STREAM_MIN_FREE=$((30 * 1000 * 1000 * 1000))
KNN_K=8 KNN_D=3

# One thread count for everything; Numba's compiled kernels are cached across runs.
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
export NUMBA_NUM_THREADS="$THREADS" NUMBA_CACHE_DIR="$OUT/numba-cache"

# --- disk (before anything long) ---------------------------------------------------------
mkdir -p "$OUT"
if [[ $STREAM == 1 ]]; then
  free=$(($(df -B1 --output=avail "$OUT" | tail -n 1)))
  ((free >= STREAM_MIN_FREE)) ||
    die "$OUT has $((free / 1000000000)) GB free; the streaming part writes a 12.8 GB matrix and needs 30 GB free (free some space, use --out DIR on a larger disk, or --skip-stream)"
fi

# --- tools ------------------------------------------------------------------------------
for tool in awk dd df du sync; do command -v "$tool" >/dev/null || die "'$tool' is missing"; done
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time"
  if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time ||
    die "/usr/bin/time is missing: apt-get install time"
fi
PY="$(bash scripts/python-env.sh)" || die "scripts/python-env.sh failed"
NUMBA_OK=1 SKLEARN_OK=1
if ! "$PY" -c 'import numba, sklearn, threadpoolctl' 2>/dev/null; then
  log "installing benches/python/requirements.txt into .venv (numba, scikit-learn)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore \
    "$PY" -m pip install --progress-bar off -q -r benches/python/requirements.txt >&2 ||
    log "pip install -r benches/python/requirements.txt failed (see above)"
fi
NUMBA_ERR="$("$PY" -c 'import numba' 2>&1 | tail -n 1)" || NUMBA_OK=0
SKLEARN_ERR="$("$PY" -c 'import sklearn' 2>&1 | tail -n 1)" || SKLEARN_OK=0
[[ $NUMBA_OK == 1 ]] || log "Numba does not import ($NUMBA_ERR): the Numba peer is skipped"
[[ $SKLEARN_OK == 1 ]] || log "scikit-learn does not import ($SKLEARN_ERR): the scikit-learn peer is skipped"

BENCH="$ROOT/target/release/examples/distance_bench"
BENCH_NATIVE="$ROOT/target/native/release/examples/distance_bench"
PEAK="$ROOT/target/release/examples/machine_peak"
TESSERA="$ROOT/target/release/tessera"
if [[ $PY_ONLY == 0 ]]; then
  bash scripts/system-deps.sh  # the HDF5 library the build links against
  log "cargo build --release --example distance_bench --example machine_peak"
  cargo build --release --example distance_bench --example machine_peak >&2 ||
    die "cargo build --release --example distance_bench --example machine_peak failed (the distance_bench example is tessera's side of this benchmark; run with --python-only to measure the Python peers alone)"
  log "RUSTFLAGS='-C target-cpu=native' cargo build --release --example distance_bench --target-dir target/native"
  RUSTFLAGS="-C target-cpu=native" cargo build --release --example distance_bench --target-dir target/native >&2 ||
    die "the target-cpu=native build of the distance_bench example failed"
  [[ -x $BENCH && -x $BENCH_NATIVE ]] || die "no distance_bench binary at $BENCH or $BENCH_NATIVE"
  if [[ $STREAM == 1 || $KNN == 1 ]]; then
    log "cargo build --release (the tessera command, for the streaming and knn parts)"
    cargo build --release >&2 || die "cargo build --release failed"
    [[ -x $TESSERA ]] || die "no tessera binary at $TESSERA"
  fi
fi

DATA="$OUT/data"
RUN="$OUT/run-$(date +%Y%m%d-%H%M%S)"
WORK="$OUT/work"
mkdir -p "$DATA" "$RUN" "$NUMBA_CACHE_DIR"
rm -rf "$WORK" && mkdir -p "$WORK"
RESULTS="$RUN/results.jsonl"
: >"$RESULTS"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP" "$WORK"' EXIT

note() { "$PY" -c 'import json, sys; print(json.dumps({"source": "note", "note": sys.argv[1]}))' "$1" >>"$RESULTS"; }
[[ $NUMBA_OK == 1 ]] || note "Numba peer skipped: numba does not import ($NUMBA_ERR)"
[[ $SKLEARN_OK == 1 ]] || note "scikit-learn peer skipped: sklearn does not import ($SKLEARN_ERR)"
[[ $PY_ONLY == 1 ]] && note "--python-only: tessera was not built or run"
for var in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  [[ -n ${!var:-} ]] && note "$var=${!var} is set here; it is unset for the Python peers (it slows a current NumPy's OpenBLAS)"
done
# The Python peers run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines for
# old OpenBLAS builds; they slow a current NumPy); the peers report the kernel in use.
PYRUN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY")

# points FILE ROWS D DTYPE SEED: make (or reuse) a point file.
points() {
  "$PY" benches/python/distance_data.py --file "$1" --rows "$2" --d "$3" --dtype "$4" --seed "$5" \
    >"$TMP/data.json" || die "making $1 failed"
  grep -q '"made"' "$TMP/data.json" && log "made $1"
  return 0
}

# timed KEY=VALUE... -- CMD...: run CMD under /usr/bin/time and append {"source": "process",
# KEY: VALUE..., "seconds", "rss_kb", "rc", "stdout", "stderr"} to the results (stdout and
# stderr trimmed). With sync=1 among the keys, a `sync` right after is timed as
# "sync_seconds".
timed() {
  local fields=() rc=0 t0 t1 s0 s1 sync=0
  while [[ $1 != -- ]]; do
    fields+=("$1")
    [[ $1 == sync=1 ]] && sync=1
    shift
  done
  shift
  t0="$EPOCHREALTIME"
  /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  t1="$EPOCHREALTIME"
  s0="$t1" s1="$t1"
  if [[ $sync == 1 ]]; then
    sync
    s1="$EPOCHREALTIME"
  fi
  [[ $rc == 0 ]] || log "${fields[*]} failed (exit $rc): $(tail -n 3 "$TMP/err")"
  "$PY" - "$t0" "$t1" "$s0" "$s1" "$rc" "$TMP" "${fields[@]}" >>"$RESULTS" <<'PYEOF'
import json, sys
t0, t1, s0, s1, rc, tmp, *fields = sys.argv[1:]
read = lambda name: open(f"{tmp}/{name}", errors="replace").read()
try:
    rss = int(read("time").split()[-1])
except (ValueError, IndexError):
    rss = None
rec = {"source": "process"}
for kv in fields:
    k, v = kv.split("=", 1)
    rec[k] = int(v) if v.isdigit() else v
rec.update({"seconds": float(t1) - float(t0), "rss_kb": rss, "rc": int(rc),
            "stdout": read("out")[-100000:], "stderr": read("err")[-2000:]})
if rec.pop("sync", None):
    rec["sync_seconds"] = float(s1) - float(s0)
print(json.dumps(rec))
PYEOF
  return 0
}
# checked PART IMPL CMD...: run a checker that prints one JSON line {"check", "detail"} and
# append it as {"source": "check", "part", "impl", ...}.
checked() {
  local part="$1" impl="$2"
  shift 2
  "$@" 2>"$TMP/check.err" | "$PY" -c '
import json, sys
part, impl, err = sys.argv[1:]
line = sys.stdin.read().strip().splitlines()
try:
    rec = json.loads(line[-1])
except (ValueError, IndexError):
    rec = {"check": "unchecked", "detail": "checker failed: " + open(err).read()[-300:]}
print(json.dumps({"source": "check", "part": part, "impl": impl, **rec}))' "$part" "$impl" "$TMP/check.err" >>"$RESULTS" ||
    log "$part: the check of $impl exited non-zero (see the table)"
  return 0
}

# --- the machine's limits for the kernels ---------------------------------------------------
if [[ $PY_ONLY == 0 ]]; then
  log "the machine's limits (machine_peak --threads $THREADS)"
  timed part=peak impl=machine metric=all dtype=all d=0 -- "$PEAK" --threads "$THREADS"
fi

# --- kernels ------------------------------------------------------------------------------
PEERS=(scipy numpy-gemm numba dask)
for d in "${DS[@]}"; do
  for dt in "${DTYPES[@]}"; do
    if [[ $dt == f64 ]]; then dtype=float64 suf=f8; else dtype=float32 suf=f4; fi
    X="$DATA/x-${N}x${d}-$suf.npy" Y="$DATA/y-${M}x${d}-$suf.npy"
    points "$X" "$N" "$d" "$dt" 1
    points "$Y" "$M" "$d" "$dt" 2
    if [[ $PY_ONLY == 0 ]]; then
      for metric in "${METRICS[@]}"; do
        pflag=()
        [[ $metric == minkowski ]] && pflag=(--p "$MINKOWSKI_P")
        log "kernels d=$d $dtype: tessera $metric"
        timed part=kernel impl=tessera metric="$metric" dtype="$dtype" d="$d" -- \
          "$BENCH" --x "$X" --y "$Y" --metric "$metric" "${pflag[@]}" --threads "$THREADS" --repeat "$REPEAT"
        timed part=kernel impl=tessera-native metric="$metric" dtype="$dtype" d="$d" -- \
          "$BENCH_NATIVE" --x "$X" --y "$Y" --metric "$metric" "${pflag[@]}" --threads "$THREADS" --repeat "$REPEAT"
      done
    fi
    for impl in "${PEERS[@]}"; do
      if [[ $impl == numba && $NUMBA_OK == 0 ]]; then continue; fi
      metrics="$(IFS=,; echo "${METRICS[*]}")"
      [[ $impl == numpy-gemm ]] && metrics=euclidean,sqeuclidean
      log "kernels d=$d $dtype: $impl"
      timed part=kernel impl="$impl" metric=all dtype="$dtype" d="$d" -- \
        "${PYRUN[@]}" benches/python/distance_peer.py --impl "$impl" --x "$X" --y "$Y" \
        --metrics "$metrics" --p "$MINKOWSKI_P" --threads "$THREADS" --repeat "$REPEAT" --budget "$BUDGET"
    done
  done
done

# --- streaming: a 12.8 GB matrix to Zarr / HDF5, beside dd -----------------------------------
if [[ $STREAM == 1 ]]; then
  XS="$DATA/s-${STREAM_N}x${STREAM_D}-f8.npy"
  points "$XS" "$STREAM_N" "$STREAM_D" f64 3
  count=$(((STREAM_BYTES + (16 << 20) - 1) / (16 << 20)))
  log "stream: dd write of $count x 16 MiB (conv=fdatasync) x$REPEAT"
  for _ in $(seq "$REPEAT"); do
    rm -f "$WORK/dd.bin"
    sync
    timed part=stream impl=dd -- dd if=/dev/zero of="$WORK/dd.bin" bs=16M count="$count" conv=fdatasync
    rm -f "$WORK/dd.bin"
  done
  SARGS=(--metric euclidean --chunk "$STREAM_CHUNK" --mem "$STREAM_MEM" --codec none --threads "$THREADS")
  # stream_runs IMPL OUT CHECKPATH CMD...: REPEAT runs (output removed before and after each),
  # the first one's output checked on a few rows.
  stream_runs() {
    local impl="$1" out="$2" path="$3" i
    shift 3
    log "stream: $impl x$REPEAT"
    for i in $(seq "$REPEAT"); do
      rm -rf "$out"
      sync
      timed part=stream impl="$impl" sync=1 -- "$@"
      if [[ $i == 1 ]]; then
        if [[ -e $out ]]; then
          echo "{\"source\": \"disk\", \"part\": \"stream\", \"impl\": \"$impl\", \"bytes\": $(du -sb "$out" | cut -f1)}" >>"$RESULTS"
          checked stream "$impl" "$PY" benches/python/distance_stream_peer.py check --x "$XS" --path "$path" --rows 3
        else
          log "stream: $impl wrote no $out; not checked"
        fi
      fi
      rm -rf "$out"
    done
  }
  stream_runs dask-zarr "$WORK/dask.zarr" "$WORK/dask.zarr" \
    "${PYRUN[@]}" benches/python/distance_stream_peer.py write --x "$XS" --out "$WORK/dask.zarr" \
    --chunk "$STREAM_CHUNK" --metric euclidean --threads "$THREADS"
  if [[ $PY_ONLY == 0 ]]; then
    stream_runs tessera-zarr "$WORK/tessera.zarr" "$WORK/tessera.zarr" \
      "$TESSERA" cdist "$XS" "${SARGS[@]}" -o "$WORK/tessera.zarr"
    stream_runs tessera-hdf5 "$WORK/tessera.h5" "$WORK/tessera.h5:/d" \
      "$TESSERA" cdist "$XS" "${SARGS[@]}" -o "$WORK/tessera.h5:/d"
  fi
fi

# --- k nearest neighbours ---------------------------------------------------------------------
if [[ $KNN == 1 ]]; then
  XK="$DATA/k-${KNN_N}x${KNN_D}-f8.npy"
  points "$XK" "$KNN_N" "$KNN_D" f64 4
  REF="$WORK/knn-ref.npy"
  if [[ $SKLEARN_OK == 1 ]]; then
    log "knn: scikit-learn, $KNN_N points, k=$KNN_K, x$REPEAT processes"
    for _ in $(seq "$REPEAT"); do
      timed part=knn impl=sklearn -- "${PYRUN[@]}" benches/python/knn_peer.py --x "$XK" -k "$KNN_K" \
        --threads "$THREADS" --repeat 1 --save-dist "$REF"
    done
  fi
  if [[ $PY_ONLY == 0 ]]; then
    log "knn: tessera x$REPEAT"
    for i in $(seq "$REPEAT"); do
      rm -rf "$WORK/knn.zarr"
      timed part=knn impl=tessera -- "$TESSERA" knn "$XK" -k "$KNN_K" --metric euclidean \
        -o "$WORK/knn.zarr" --threads "$THREADS"
      if [[ $i == 1 && -e $WORK/knn.zarr && -f $REF ]]; then
        checked knn tessera "$PY" benches/python/knn_peer.py --check "$WORK/knn.zarr" --ref "$REF" --x "$XK"
      fi
      rm -rf "$WORK/knn.zarr"
    done
  fi
fi

# --- tables ----------------------------------------------------------------------------------
rc=0
TARGS=(--n "$N" --m "$M" --stream-n "$STREAM_N" --stream-d "$STREAM_D" --stream-chunk "$STREAM_CHUNK"
  --knn-n "$KNN_N" --knn-k "$KNN_K" --threads "$THREADS" --repeat "$REPEAT" --budget "$BUDGET" --out "$OUT"
  --elapsed "$(elapsed)")
[[ $PY_ONLY == 0 ]] && TARGS+=(--tessera "$TESSERA")
[[ $QUICK == 1 ]] && TARGS+=(--quick)
"$PY" benches/python/distance_table.py "$RESULTS" "${TARGS[@]}" | tee "$RUN/distance.md" || rc=$?
cp "$RUN/distance.md" "$OUT/distance.md"
cp "$RESULTS" "$OUT/results.jsonl"
log "raw results: $RESULTS; tables: $OUT/distance.md"
exit "$rc"
