#!/usr/bin/env bash
# Runs the W1-W5 workloads on tensile and on peer frameworks, on the same data files in the same session, and prints
# one table of tensile / peer speed ratios with the targets (bench/compare.py), then the peers' detailed tables.
#
# Usage: bash bench/side_by_side.sh [--all | --peers REGEX | --no-peers] [--works "w1 w2 w3 w4 w5gru w5tf"]
#                                   [--reps N] [--check]
#   (default)      PyTorch only, run directly with $PYTHON: the peers' torch_bench.py for W1-W3 (default and fused
#                  Adam), bench/w5_torch.py for W5 (default Adam), bench/gemm_torch.py for W4. Installs nothing.
#   --all          every peer through ../shared/peers/run_all.sh (its first run installs a ~6 GB venv with PyTorch,
#                  JAX, Keras and scikit-learn and builds candle/burn: about 25 min on 2 cores).
#   --peers REGEX  run_all.sh with that label filter (labels look like "jax w1", "candle w2"); installs as --all.
#   --no-peers     tensile only.
#   --works LIST   the workloads to run (default all six); applies to tensile and to the default PyTorch run.
#   --reps N       timed epochs after the warm-up epoch (PEERS_REPS; default 3), for tensile and the peers alike.
#   --check        also run `tensile-bench check`: 1 vs 2 threads on W1 and W2, W3 at 1x and 10x the rows.
# tensile also runs `tensile-bench peak` (the f32 multiply-add limit, about 3 s), and the tables give each of its
# matrix-product rates as a share of it.
# Env: PYTHON      interpreter with torch and numpy for the default run and for writing the data
#                  (default $PEERS_ROOT/venv/bin/python if it exists, else python3)
#      PEERS_DIR   the peers' scripts (default <repository>/../shared/peers)
#      PEERS_ROOT  the peers' cache (default ~/.cache/tensile-peers); the data lives in $PEERS_DATA (default
#                  $PEERS_ROOT/data) and is written there by gen_data.py when missing (277 MiB)
#      THREADS     threads for every framework (default 2)
#      OUT         output folder (default <repository>/target/side_by_side): raw.jsonl (every result line) and
#                  tables.md, each replaced only when the run ends
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$REPO/../shared/peers}
export PEERS_ROOT=${PEERS_ROOT:-$HOME/.cache/tensile-peers}
export PEERS_DATA=${PEERS_DATA:-$PEERS_ROOT/data}
THREADS=${THREADS:-2}
OUT=${OUT:-$REPO/target/side_by_side}
MODE=torch FILTER= WORKS="w1 w2 w3 w4 w5gru w5tf" CHECK=
die() { echo "side_by_side.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --all) MODE=run_all FILTER=. ;;
    --peers) [ $# -ge 2 ] || die "--peers needs a regular expression"; MODE=run_all FILTER=$2; shift ;;
    --no-peers) MODE=none ;;
    --works) [ $# -ge 2 ] || die "--works needs a list such as \"w1 w3\""; WORKS=$2; shift ;;
    --reps) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--reps needs a whole number >= 1"; export PEERS_REPS=$2; shift ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
for w in $WORKS; do [[ $w =~ ^(w1|w2|w3|w4|w5gru|w5tf)$ ]] || die "unknown workload '$w' in --works; expected w1 w2 w3 w4 w5gru w5tf"; done
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS='$THREADS' is not a whole number >= 1"
[ -f "$PEERS_DIR/gen_data.py" ] || die "no peers' scripts in $PEERS_DIR (gen_data.py missing); set PEERS_DIR"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$PEERS_ROOT/venv/bin/python" ]; then PYTHON=$PEERS_ROOT/venv/bin/python; else PYTHON=python3; fi
fi

# ---- data: the peers' files, written once ----
missing=
for f in w1_x.f32 w1_y.i32 w2_x.f32 w2_y.i32 w3_x.f32 w3_y.f32 w5gru_x.f32 w5gru_y.i32 w5tf_x.i32 w5tf_y.i32; do
  [ -f "$PEERS_DATA/$f" ] || missing=1
done
if [ -n "$missing" ]; then
  echo "# writing the shared data to $PEERS_DATA with $PYTHON" >&2
  "$PYTHON" "$PEERS_DIR/gen_data.py" || die "gen_data.py failed; PYTHON=$PYTHON needs numpy"
fi

# ---- the same threads everywhere; these two would slow OpenBLAS (as in run_all.sh) ----
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
export MATMUL_NUM_THREADS=$THREADS TENSILE_NUM_THREADS=$THREADS
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

echo "# building tensile-bench (release)" >&2
(cd "$REPO" && cargo build --release --quiet -p tensile-bench) || die "cargo build failed"
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tensile-bench

mkdir -p "$OUT"
RAW=$OUT/raw.jsonl.partial
: > "$RAW"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAILED=0
# run <label> <adds-rss: yes|no> <cmd...>: keeps the RESULT lines; for commands that do not report their own peak
# memory, adds the process's peak RSS (MiB, from /usr/bin/time -v) and the 1-minute load after the run, as run_all.sh.
run() {
  local label=$1 add=$2; shift 2
  echo ">> $label" >&2
  local timer=(); [ "$add" = yes ] && [ -x /usr/bin/time ] && timer=(/usr/bin/time -v -o "$TMP/time")
  : > "$TMP/time"
  if ! timeout 3600 "${timer[@]}" "$@" > "$TMP/out" 2> "$TMP/err"; then
    echo "   FAILED: $label" >&2; tail -5 "$TMP/err" >&2; FAILED=$((FAILED + 1))
  fi
  local rss load
  rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$TMP/time"); load=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$add" = yes ]; then
    grep '^RESULT ' "$TMP/out" | sed "s/^RESULT //; s/}\$/, \"rss_mib\": ${rss:-null}, \"load1\": $load}/"
  else
    grep '^RESULT ' "$TMP/out" | sed 's/^RESULT //'
  fi | tee -a "$RAW" >&2
}
has() { [[ " $WORKS " == *" $1 "* ]]; }

# ---- peers ----
case $MODE in
  torch)
    "$PYTHON" -c "import torch, numpy" 2>/dev/null || die "PYTHON=$PYTHON cannot import torch and numpy; set PYTHON"
    for w in w1 w2 w3; do
      has $w || continue
      run "torch $w" yes "$PYTHON" "$PEERS_DIR/torch_bench.py" $w
      run "torch-fused $w" yes "$PYTHON" "$PEERS_DIR/torch_bench.py" $w fused
    done
    for w in w5gru w5tf; do
      has $w || continue
      # Default Adam only: fused Adam changes W5 by about 1% (../shared/peers/RESULTS.md, W5 note 4).
      run "torch $w" yes "$PYTHON" "$REPO/bench/w5_torch.py" $w --threads "$THREADS"
    done
    has w4 && run "torch gemm" yes "$PYTHON" "$REPO/bench/gemm_torch.py"
    ;;
  run_all)
    echo "# peers through $PEERS_DIR/run_all.sh '$FILTER' (installs into $PEERS_ROOT when missing)" >&2
    RAW="$TMP/peers.jsonl" PEERS_RESULTS="$OUT/peers" bash "$PEERS_DIR/run_all.sh" "$FILTER" >&2 \
      || { echo "   FAILED: run_all.sh" >&2; FAILED=$((FAILED + 1)); }
    [ -f "$TMP/peers.jsonl" ] && cat "$TMP/peers.jsonl" >> "$RAW"
    ;;
esac

# ---- tensile: one process per workload, so each peak RSS is that workload's ----
for w in $WORKS; do run "tensile $w" no "$BIN" $w; done
# The machine's f32 limit on 1 and $THREADS threads, which the tables set tensile's matrix-product rates against.
run "tensile peak" no "$BIN" peak --gemm-threads "$( [ "$THREADS" = 1 ] && echo 1 || echo "1,$THREADS" )"
[ -n "$CHECK" ] && run "tensile check" no "$BIN" check

mv "$RAW" "$OUT/raw.jsonl"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))," \
       "$THREADS threads, ${PEERS_REPS:-3} timed epochs; tensile at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')" \
       "$( [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ] && echo '(with uncommitted changes)')"
  echo
  python3 "$REPO/bench/compare.py" "$OUT/raw.jsonl"
  echo
  echo "## Detail (../shared/peers/make_table.py)"
  echo
  python3 "$PEERS_DIR/make_table.py" "$OUT/raw.jsonl"
} > "$OUT/tables.md.partial" && mv "$OUT/tables.md.partial" "$OUT/tables.md"
cat "$OUT/tables.md"
echo "# result lines: $OUT/raw.jsonl; tables: $OUT/tables.md" >&2
[ "$FAILED" -eq 0 ] || { echo "# $FAILED run(s) failed; see above" >&2; exit 1; }
