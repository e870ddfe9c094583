#!/usr/bin/env bash
# Storage benchmark (issue 3): read and write GB/s of a large 2-D float64 array in
# each backend, tessera beside Dask (zarr-python / h5py) on the same files in the
# same run, and beside dd on the same disk; print a Markdown table.
#
#   bash benches/storage.sh [--size GB] [--quick] [--repeat R] [--threads N]
#                           [--mem SIZE] [--backends LIST] [--no-cold] [--out DIR]
#
#   --size GB        array size in GB (1e9 bytes; default 4): ROWS x 1024 float64
#   --quick          --size 0.25
#   --repeat R       timed runs per measurement, the best is reported (default 3)
#   --threads N      worker threads for tessera (--threads) and Dask (threaded
#                    scheduler num_workers; zarr-python's pool too) (default: nproc)
#   --mem SIZE       passed to tessera as --mem SIZE
#   --backends LIST  comma list among memory, npy, zarr-none, zarr-zstd,
#                    zarr-blosc, zarr-gzip, hdf5-none, hdf5-gzip, dd (default: all)
#   --no-cold        skip the cold-cache reads
#   --out DIR        inputs and results (default: bench-out/storage)
#   env TESSERA_BIN=PATH  use that binary instead of building target/release/tessera
#
# Input: DIR/x-ROWSx1024-f8.npy, round(2 + sin(row) + 0.5 N(0,1), 3), made once and
# reused (benches/python/storage_data.py; its sidecar .json holds the exact sum).
# Read = the full sum: tessera `eval "sum(x)" --in x=PATH`; Dask `...sum().compute()`
# (see benches/python/storage_peer.py). Warm: one untimed run, then best of R. Cold
# (npy, zarr-none, hdf5-none; needs root): page cache dropped before every run.
# Write = `tessera convert x.npy OUT --codec C --level L --chunks 4096,1024` against
# `da.from_array(mmap).to_zarr / da.to_hdf5` with the same codec, level and chunks;
# the outputs are not fsynced by either tool. Every Zarr / HDF5 file written by each
# tool is then read by both, so each read row compares the two on one file.
# Codecs: zstd level 3; blosc = blosc-zstd level 5 + byte shuffle; HDF5 gzip =
# deflate level 4 + shuffle. dd: `dd bs=16M` read warm / cold, write with
# conv=fdatasync (the only synced writes here).
# tessera is timed as a whole process with /usr/bin/time; Dask in-process (after
# imports, from opening the array to the result), each measurement in its own
# Python process whose peak RSS /usr/bin/time reports. Derived files live in
# DIR/work and are deleted after each backend: peak disk use is about 3x the size
# (input + one output per tool). Raw JSON lines: DIR/run-*/results.jsonl; the table:
# stdout, DIR/run-*/storage.md and DIR/storage.md. Exit status 1 if a run failed or
# a sum disagrees.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T_START="$EPOCHREALTIME"
elapsed() { awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
log() { printf 'storage [%5ss]: %s\n' "$(elapsed)" "$*" >&2; }
die() { echo "storage: error: $*" >&2; exit 1; }

ALL_BACKENDS="memory,npy,zarr-none,zarr-zstd,zarr-blosc,zarr-gzip,hdf5-none,hdf5-gzip,dd"
SIZE=4 REPEAT=3 THREADS="$(nproc)" MEM="" BACKENDS="$ALL_BACKENDS" COLD=1
OUT="$ROOT/bench-out/storage"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) SIZE="${2:?--size needs a value}"; shift ;;
    --quick) SIZE=0.25 ;;
    --repeat) REPEAT="${2:?--repeat needs a value}"; shift ;;
    --threads) THREADS="${2:?--threads needs a value}"; shift ;;
    --mem) MEM="${2:?--mem needs a value}"; shift ;;
    --backends) BACKENDS="${2:?--backends needs a value}"; shift ;;
    --no-cold) COLD=0 ;;
    --out) OUT="$(realpath -m "${2:?--out needs a value}")"; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$REPEAT'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$THREADS'"
[[ $SIZE =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--size must be a number of GB, got '$SIZE'"
for b in ${BACKENDS//,/ }; do
  [[ ",$ALL_BACKENDS," == *",$b,"* ]] || die "unknown backend '$b' (known: $ALL_BACKENDS)"
done
want() { [[ ",$BACKENDS," == *",$1,"* ]]; }

COLS=1024 CHUNK_ROWS=4096
ROWS="$(awk -v gb="$SIZE" -v c="$COLS" 'BEGIN { printf "%d", gb * 1e9 / (8 * c) }')"
((ROWS >= 1)) || die "--size $SIZE GB is less than one row of $COLS float64"
BYTES=$((ROWS * COLS * 8))

# --- tools ------------------------------------------------------------------
for tool in awk dd du df; do command -v "$tool" >/dev/null || die "'$tool' is missing"; done
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time"
  if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time ||
    die "/usr/bin/time is missing: apt-get install time"
fi
PY="$(bash scripts/python-env.sh)"
TESSERA="${TESSERA_BIN:-$ROOT/target/release/tessera}"
if [[ -z ${TESSERA_BIN:-} ]]; then
  bash scripts/system-deps.sh  # the HDF5 library the build links against
  log "cargo build --release"
  cargo build --release >&2 || die "cargo build --release failed"
fi
[[ -x $TESSERA ]] || die "no tessera binary at $TESSERA"

mkdir -p "$OUT"
RUN="$OUT/run-$(date +%Y%m%d-%H%M%S)"
WORK="$OUT/work"
mkdir -p "$RUN"
rm -rf "$WORK" && mkdir -p "$WORK"
RESULTS="$RUN/results.jsonl"
: >"$RESULTS"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP" "$WORK"' EXIT
DATA="$OUT/x-${ROWS}x${COLS}-f8.npy"

# Disk: the input (if not made yet) plus one output per tool of up to the array's
# size (Zarr pads the last chunk row), and a margin.
need=$((BYTES * 22 / 10 + (1 << 30)))
[[ -f $DATA ]] || need=$((need + BYTES))
free=$(($(df -B1 --output=avail "$OUT" | tail -n 1)))
((free >= need)) || die "$OUT has $((free >> 20)) MiB free, this run needs about $((need >> 20)) MiB"

log "input $DATA (${ROWS}x${COLS} float64, $(awk -v b="$BYTES" 'BEGIN { printf "%.2f", b / 1e9 }') GB)"
"$PY" benches/python/storage_data.py --rows "$ROWS" --cols "$COLS" --file "$DATA" >"$TMP/data.json" ||
  die "making $DATA failed"
grep -q '"made"' "$TMP/data.json" && log "made $DATA"

if [[ $COLD == 1 ]]; then
  if ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    COLD=0
    log "cannot drop the page cache (needs root and a writable /proc/sys/vm/drop_caches): cold reads skipped"
    echo '{"source": "note", "note": "cold reads skipped: cannot write /proc/sys/vm/drop_caches"}' >>"$RESULTS"
  fi
else
  echo '{"source": "note", "note": "cold reads skipped (--no-cold)"}' >>"$RESULTS"
fi
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
warm() { cat "$1" >/dev/null; }

# timed TOOL BACKEND OP CACHE FILE CODEC CMD...: run CMD under /usr/bin/time and
# append {"source": "process", tool, backend, op, cache, file, codec, seconds,
# rss_kb, rc, stdout, stderr} to the results (stdout/stderr trimmed).
timed() {
  local tool="$1" backend="$2" op="$3" cache="$4" file="$5" codec="$6" rc=0 t0 t1
  shift 6
  t0="$EPOCHREALTIME"
  /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  t1="$EPOCHREALTIME"
  [[ $rc == 0 ]] || log "$tool $backend $op $cache failed (exit $rc): $(tail -n 3 "$TMP/err")"
  "$PY" - "$tool" "$backend" "$op" "$cache" "$file" "$codec" "$t0" "$t1" "$rc" "$TMP" >>"$RESULTS" <<'PYEOF'
import json, sys
tool, backend, op, cache, file, codec, t0, t1, rc, tmp = sys.argv[1:]
read = lambda name: open(f"{tmp}/{name}", errors="replace").read()
try:
    rss = int(read("time").split()[-1])
except (ValueError, IndexError):
    rss = None
print(json.dumps({"source": "process", "tool": tool, "backend": backend, "op": op,
                  "cache": cache or None, "file": file or None, "codec": codec or None,
                  "seconds": float(t1) - float(t0), "rss_kb": rss, "rc": int(rc),
                  "stdout": read("out")[-20000:], "stderr": read("err")[-2000:]}))
PYEOF
  return 0
}
# info BACKEND WRITER PATH: record `tessera info PATH` (tessera's blocks, for the table).
info() {
  "$PY" - "$@" >>"$RESULTS" <<PYEOF
import json, subprocess, sys
backend, writer, path = sys.argv[1:]
p = subprocess.run(["$TESSERA", "info", path], capture_output=True, text=True)
print(json.dumps({"source": "info", "backend": backend, "file": writer, "path": path,
                  "rc": p.returncode,
                  "stdout": p.stdout[-4000:], "stderr": p.stderr[-2000:]}))
PYEOF
}
TFLAGS=(--threads "$THREADS")
[[ -n $MEM ]] && TFLAGS+=(--mem "$MEM")
PEER=("$PY" benches/python/storage_peer.py)
PFLAGS=(--repeat "$REPEAT" --threads "$THREADS")

# reads BACKEND WRITER PATH UNCOMPRESSED: warm (and cold) sums by both tools.
reads() {
  local backend="$1" writer="$2" path="$3" uncompressed="$4"
  log "$backend: read warm, written by $writer"
  info "$backend" "$writer" "$path"
  "$TESSERA" eval "sum(x)" --in "x=$path" "${TFLAGS[@]}" >/dev/null 2>&1 ||
    log "tessera $backend untimed warm-up run failed"
  for _ in $(seq "$REPEAT"); do
    timed tessera "$backend" read warm "$writer" "" "$TESSERA" eval "sum(x)" --in "x=$path" "${TFLAGS[@]}"
  done
  timed dask "$backend" read warm "$writer" "" "${PEER[@]}" read --backend "${backend%%-*}" --path "$path" "${PFLAGS[@]}"
  if [[ $COLD == 1 && $uncompressed == 1 ]]; then
    log "$backend: read cold, written by $writer"
    for _ in $(seq "$REPEAT"); do
      drop_caches
      timed tessera "$backend" read cold "$writer" "" "$TESSERA" eval "sum(x)" --in "x=$path" "${TFLAGS[@]}"
    done
    timed dask "$backend" read cold "$writer" "" "${PEER[@]}" read --backend "${backend%%-*}" --path "$path" --cold "${PFLAGS[@]}"
  fi
  return 0
}

# store BACKEND(zarr-C|hdf5-C) CODEC LEVEL: writes by both tools, then reads of both files.
store() {
  local backend="$1" codec="$2" level="$3" kind="${1%%-*}" tpath dpath tdisk ddisk
  local lflags=() uncompressed=0
  [[ -n $level ]] && lflags=(--level "$level")
  [[ $codec == none ]] && uncompressed=1
  if [[ $kind == zarr ]]; then
    tdisk="$WORK/tessera-$backend.zarr" ddisk="$WORK/dask-$backend.zarr"
    tpath="$tdisk" dpath="$ddisk"
  else
    tdisk="$WORK/tessera-$backend.h5" ddisk="$WORK/dask-$backend.h5"
    tpath="$tdisk:/x" dpath="$ddisk:/x"
  fi
  warm "$DATA"
  log "$backend: write ($codec${level:+ level $level}), tessera x$REPEAT"
  for _ in $(seq "$REPEAT"); do
    rm -rf "$tdisk"
    sync
    timed tessera "$backend" write "" tessera "$codec" "$TESSERA" convert "$DATA" "$tpath" \
      --codec "$codec" "${lflags[@]}" --chunks "$CHUNK_ROWS,$COLS" "${TFLAGS[@]}"
  done
  log "$backend: write, Dask x$REPEAT"
  timed dask "$backend" write "" dask "$codec" "${PEER[@]}" write --backend "$kind" --src "$DATA" \
    --path "$dpath" --codec "$codec" "${lflags[@]}" --chunks "$CHUNK_ROWS" "${PFLAGS[@]}"
  for writer in tessera dask; do
    local path disk
    if [[ $writer == tessera ]]; then path="$tpath" disk="$tdisk"; else path="$dpath" disk="$ddisk"; fi
    if [[ -e $disk ]]; then
      echo "{\"source\": \"disk\", \"backend\": \"$backend\", \"file\": \"$writer\", \"bytes\": $(du -sb "$disk" | cut -f1)}" >>"$RESULTS"
      reads "$backend" "$writer" "$path" "$uncompressed"
    else
      log "$backend: $writer wrote no $disk; its reads are skipped"
    fi
  done
  rm -rf "$tdisk" "$ddisk"
}

# --- measurements --------------------------------------------------------------
if want memory; then
  log "memory: NumPy and Dask over the array loaded in RAM"
  timed dask memory read memory "" "" "${PEER[@]}" read --backend memory --path "$DATA" "${PFLAGS[@]}"
fi
if want npy; then
  warm "$DATA"
  reads npy input "$DATA" 1
fi
want zarr-none && store zarr-none none ""
want zarr-zstd && store zarr-zstd zstd 3
want zarr-blosc && store zarr-blosc blosc 5
want zarr-gzip && store zarr-gzip gzip 5
want hdf5-none && store hdf5-none none ""
want hdf5-gzip && store hdf5-gzip gzip 4
if want dd; then
  log "dd: read warm / cold, write (conv=fdatasync)"
  warm "$DATA"
  for _ in $(seq "$REPEAT"); do timed dd dd read warm input "" dd if="$DATA" of=/dev/null bs=16M; done
  if [[ $COLD == 1 ]]; then
    for _ in $(seq "$REPEAT"); do
      drop_caches
      timed dd dd read cold input "" dd if="$DATA" of=/dev/null bs=16M
    done
  fi
  count=$(((BYTES + (16 << 20) - 1) / (16 << 20)))
  for _ in $(seq "$REPEAT"); do
    rm -f "$WORK/dd.bin"
    sync
    timed dd dd write "" dd "" dd if=/dev/zero of="$WORK/dd.bin" bs=16M count="$count" conv=fdatasync
  done
  rm -f "$WORK/dd.bin"
fi

# --- table -------------------------------------------------------------------
rc=0
"$PY" benches/python/storage_table.py "$RESULTS" --data "$DATA" --out "$OUT" --threads "$THREADS" \
  --repeat "$REPEAT" --tessera "$TESSERA" --elapsed "$(elapsed)" \
  | tee "$RUN/storage.md" || rc=$?
cp "$RUN/storage.md" "$OUT/storage.md"
cp "$RESULTS" "$OUT/results.jsonl"
log "raw results: $RESULTS; table: $OUT/storage.md"
exit "$rc"
