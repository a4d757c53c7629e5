#!/usr/bin/env bash
# Lists the accelerator JAX sees and times what only an accelerator can answer: the benchmark
# sections tutorial, seeds (1, 64 and 1,024 members), seqlen (windows 24, 96, 384), cells
# (GRU and LSTM, fused and flax) and dataparallel (one model's windows per second at batches 256
# to 16,384 on 1, 2, 4... devices), each in its own process under a timeout, all within 8.5
# minutes.
#
#   scripts/device_check.sh [--cpu-smoke] OUTDIR
#   PYTHON=.venv/bin/python scripts/device_check.sh runs/device_check
#
# OUTDIR receives NAME.log (stdout and stderr) for every step, NAME.json (scripts/benchmark.py
# --out) for every benchmark section, and summary.txt, which lists the steps that succeeded and
# failed. A failed or timed-out step does not stop the next one; the exit status is 1 if any step
# failed, 2 for a bad argument. If JAX finds no accelerator the benchmark sections are not run:
# on a CPU they would only spend the budget.
#
# --cpu-smoke runs the same steps on this machine's CPU with a tiny task (30 days, GRU 8, one
# epoch, one repeat, seeds 1 and 2, the GRU cells only, batch 64) in about a minute, to check the
# script itself; its timings mean nothing.
# PYTHON (default python3) is the interpreter of the environment to test.
set -euo pipefail

usage() {
  echo 'usage: scripts/device_check.sh [--cpu-smoke] OUTDIR' >&2
  exit 2
}

smoke=0
outdir=''
for arg in "$@"; do
  case $arg in
    --cpu-smoke) smoke=1 ;;
    -h | --help) echo 'usage: scripts/device_check.sh [--cpu-smoke] OUTDIR'; exit 0 ;;
    -*) echo "device_check.sh: unknown flag $arg" >&2; usage ;;
    *)
      if [[ -n $outdir ]]; then
        echo "device_check.sh: one OUTDIR only, got $outdir and $arg" >&2
        usage
      fi
      outdir=$arg ;;
  esac
done
[[ -n $outdir ]] || usage

# OUTDIR and a PYTHON given as a path are relative to the caller's directory, not the root's.
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
python=${PYTHON:-python3}
if [[ $python == */* ]]; then
  python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# An editable install records the path it was made from; the checkout being run comes first.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# Without this, a step killed by its timeout loses whatever Python had buffered.
export PYTHONUNBUFFERED=1

budget_seconds=510
if ((smoke)); then
  export JAX_PLATFORMS=cpu
  # The smoke run checks the script, not speed: compile at LLVM level 0 and reuse programs
  # between sections (the same tiny tutorial program recurs in all four).
  if [[ ${XLA_FLAGS:-} != *xla_backend_optimization_level* ]]; then
    export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0"
  fi
  if [[ -z ${JAX_COMPILATION_CACHE_DIR:-} ]]; then
    cache_dir=$(mktemp -d)
    trap 'rm -rf "$cache_dir"' EXIT
    export JAX_COMPILATION_CACHE_DIR=$cache_dir
    export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
  fi
  common=(--repeats=1 --num_days=30 --hidden_sizes=8 --epochs=1 --matmul_size=256)
  seeds=(--seed_counts=1,2 --seed_epochs=1)
  cells=(--cells=gru)
  dataparallel=(--dp_batches=64 --dp_steps=2)
else
  # compile_seconds must time the compiler, not a persistent cache of an earlier run.
  unset JAX_COMPILATION_CACHE_DIR
  export RNNJAX_COMPILATION_CACHE=off
  common=(--repeats=2)
  seeds=(--seed_counts=1,64,1024 --seed_epochs=2)
  cells=(--cells=gru,lstm)
  dataparallel=(--dp_batches=256,1024,4096,16384 --dp_steps=20)
fi

# One line per step, in order: "ok      NAME: ..." or "FAILED  NAME: ...".
summary=()

# run_step NAME CAP_SECONDS COMMAND...: runs COMMAND under a timeout of CAP_SECONDS or what is
# left of the budget, whichever is less, with its output shown and kept in OUTDIR/NAME.log.
run_step() {
  local name=$1 cap=$2
  shift 2
  local left=$((budget_seconds - SECONDS))
  if ((left < 10)); then
    echo "== $name: not run, the ${budget_seconds} s budget is spent"
    summary+=("FAILED  $name: not run, the ${budget_seconds} s budget is spent")
    return 1
  fi
  local limit=$((cap < left ? cap : left)) start=$SECONDS rc=0
  echo "== $name (timeout ${limit} s): ${*//$'\n'/ }"
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$outdir/$name.log" || rc=$?
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    summary+=("ok      $name: ${took} s")
  elif ((rc == 124 || rc == 137)); then
    summary+=("FAILED  $name: timed out after ${limit} s, see $name.log")
  else
    summary+=("FAILED  $name: exit $rc after ${took} s, see $name.log")
  fi
  return "$rc"
}

have_accelerator=1
run_step devices 60 "$python" -c '
import sys
import jax
devices = jax.devices()
print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(devices)} devices "
      f"({devices[0].device_kind}): {devices}")
if jax.default_backend() == "cpu" and sys.argv[1] == "0":
  sys.exit("jax found no accelerator (backend cpu); --cpu-smoke runs the check on a CPU")
' "$smoke" || have_accelerator=0
if command -v nvidia-smi > /dev/null; then
  run_step nvidia-smi 30 nvidia-smi || true
else
  echo '== nvidia-smi: not found'
fi

# benchmark SECTION CAP_SECONDS [FLAG...]: one section of scripts/benchmark.py as a step. The
# sections run one at a time: two would share the accelerator and distort each other's times.
benchmark() {
  local section=$1 cap=$2
  shift 2
  if ((!have_accelerator)); then
    summary+=("FAILED  $section: not run, JAX found no accelerator")
    return
  fi
  run_step "$section" "$cap" "$python" scripts/benchmark.py --only="$section" \
    --out="$outdir/$section.json" "${common[@]}" "$@" || true
}

benchmark tutorial 120
benchmark seeds 150 "${seeds[@]}"
benchmark seqlen 90
benchmark cells 90 "${cells[@]}"
benchmark dataparallel 60 "${dataparallel[@]}"

printf '%s\n' "${summary[@]}" > "$outdir/summary.txt"
failures=$(grep -c '^FAILED' "$outdir/summary.txt" || true)
echo "== summary: $((${#summary[@]} - failures)) of ${#summary[@]} steps succeeded" \
  "in ${SECONDS} s, outputs in $outdir"
cat "$outdir/summary.txt"
((failures == 0))
