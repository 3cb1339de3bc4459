#!/usr/bin/env bash
# The device check: ONE call on the lent GPU machine (an H200, no registry) runs everything that
# needs a GPU, each step under `timeout` and all within GPU_CHECK_BUDGET_S (480 s by default), so
# that the call fits the session's 15 device minutes with the machine's start:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   bash benchmarks/gpu_wheels.sh          # first, here: the wheels the device lacks, into .whl/
#   bash benchmarks/gpu_check.sh --cpu     # the same steps at tiny sizes on a CPU (the tests)
#   GPU_CHECK_STEPS="nccl lm_basis" GPU_CHECK_BUDGET_S=200 bash benchmarks/gpu_check.sh  # a rerun
# Steps: the environment; the carried wheels; the tests with a CUDA branch; device=cpu vs
# device=cuda on one paper run (benchmarks/compare_devices.py); the GPT-2 block benchmark at
# contexts 128 and 1024, TF32 off and on; the TinyStories-1M cost estimate on a random model of
# its shape; the NCCL path (torchrun, 2 ranks) against a 1-process CPU run; bench_lm_basis at
# d_model 768 (on the host CPU: it has no --device). A failing step logs its rc and the next one
# runs. Files under $OUT (what the device tool brings back; results/scratch/gpu_check here):
# env.txt, steps.log (every step's output), summary.tsv (step, rc, seconds), devices.json,
# gpt2_block.json, gpt2_block.md, nccl.json. Exit status 1 if any step failed.
# (--cpu skips the wheels and runs nccl on one rank; the timeouts stay the GPU's.)
set -u
cd "$(dirname "$0")/.."
CPU=0
if [ "${1:-}" = "--cpu" ]; then CPU=1; fi
export CPU PY=${PYTHON:-python3} OUT=${OUT:-$PWD/results/scratch/gpu_check}
export WORK=${GPU_CHECK_WORK:-$(mktemp -d)} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src
BUDGET=${GPU_CHECK_BUDGET_S:-480}
mkdir -p "$OUT" "$WORK" && : >"$OUT/steps.log" && : >"$OUT/summary.tsv"
if ((CPU)); then export DEV=cpu THREADS=1; else export DEV=cuda THREADS=8; fi
# every run of interbasis.run writes under $WORK, never into the checkout
export COMMON="logger=none threads=$THREADS paths.cache=$WORK/cache hydra.run.dir=$WORK/hydra"

say() { echo "$*" | tee -a "$OUT/steps.log"; }
skip() { say "=== $1: skipped, $2"; printf '%s\tskip\t0\n' "$1" >>"$OUT/summary.tsv"; }
step() {  # step NAME TIMEOUT_S FUNCTION: run it, capped by what is left of the budget
  local name=$1 limit=$2 left=$((BUDGET - SECONDS)) began=$SECONDS rc
  if [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " environment wheels $GPU_CHECK_STEPS " != *" $name "* ]]
  then skip "$name" "not in GPU_CHECK_STEPS"; return; fi
  if ((left < limit)); then limit=$left; fi
  if ((limit < 15)); then skip "$name" "${left}s of the budget left"; return; fi
  say "=== $name (timeout ${limit}s, $((BUDGET - SECONDS))s of the budget left)"
  timeout -k 10 "$limit" bash -c "set -o pipefail; $3" >>"$OUT/steps.log" 2>&1
  rc=$?
  say "=== $name: rc $rc in $((SECONDS - began)) s"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - began))" >>"$OUT/summary.tsv"
  return "$rc"
}

environment() {
  { date -u; uname -a; nproc; free -g; git rev-parse HEAD 2>/dev/null || echo "no git checkout"
    nvidia-smi || echo "no nvidia-smi"
    $PY -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', \
torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.device_count(), 'device(s)')"
    $PY -m pip list 2>/dev/null; } >"$OUT/env.txt" 2>&1
  grep -E "^torch " "$OUT/env.txt"
}
wheels() {
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:$PYTHONPATH \
    $PY -c "import hydra, omegaconf, pydantic, igraph, leidenalg; print('imports fine')"
}
cuda_tests() { $PY -m pytest -q -p no:cacheprovider tests/test_engine.py -k cuda; }
# The same run on both devices (the committed seed-0 model; ablations on 2000 test pairs), named
# device=cpu and device=cuda in two stores, which compare_devices.py pairs by name.
paper_run() {
  local what="experiment=modadd_paper method=lib ablation.max_samples=2000"
  if ((CPU)); then what="experiment=modadd_paper debug=tiny"; fi
  $PY -m interbasis.run $what $COMMON device=$1 paths.runs=$WORK/$2/runs
}
devices_cpu() { paper_run cpu store_cpu; }
devices_dev() { paper_run "$DEV" store_dev; }
devices_compare() {
  $PY benchmarks/compare_devices.py "$WORK/store_cpu" "$WORK/store_dev" --device "$DEV" \
    --json "$OUT/devices.json"
}
gpt2_block() {
  local size="--contexts 128 1024 --tf32 off on --budget-s 150 --fallback-memory 2e9"
  if ((CPU)); then size="--small --contexts 16"; fi
  $PY benchmarks/bench_gpt2_block.py --device "$DEV" --windows 1 $size \
    --json "$OUT/gpt2_block.json" --table "$OUT/gpt2_block.md"
}
# The preset's windows (200 tokens; 17 node layers, generic vmap(vjp) sections) on 16 and 32 of
# its 500 basis windows: on one CPU thread the real shape's 2 windows took over 45 s
tinystories() {
  local data="--samples 16 32" small=""
  if ((CPU)); then
    small=--small
    data="data.context=8 data.basis_samples=8 data.gram_samples=16 data.ablation_samples=2"
  fi
  $PY benchmarks/random_tinystories.py "$WORK/tinystories" $small &&
    $PY -m interbasis.estimate experiment=tinystories_paper "model.name=$WORK/tinystories" \
      "data.path=$WORK/tinystories/text.txt" device=$DEV $COMMON $data
}
# ranks.init_from_env takes NCCL for device=cuda when WORLD_SIZE > 1; two ranks on one GPU may
# be refused by NCCL ("Duplicate GPU"), which is worth knowing too. --cpu: one rank (no process
# group), so only the commands are checked.
nccl() {
  local tiny="family=tiny_gpt debug=tiny data.path=$WORK/text.txt" ranks=1
  if ! ((CPU)); then ranks=$(nvidia-smi -L | wc -l) && ((ranks >= 2)) || ranks=2; fi
  $PY -c "print('In the beginning was the word, and the word was short. ' * 80)" >"$WORK/text.txt"
  $PY -m interbasis.run $tiny $COMMON device=cpu paths.runs=$WORK/ranks1/runs &&
    $PY -m torch.distributed.run --standalone --nproc-per-node "$ranks" -m interbasis.run \
      $tiny $COMMON device=$DEV paths.runs=$WORK/ranks2/runs &&
    $PY benchmarks/compare_devices.py "$WORK/ranks1" "$WORK/ranks2" --device "$DEV" \
      --json "$OUT/nccl.json"
}
lm_basis() {
  local size="--d-model 768 --threads 8 --paths closed-form"
  if ((CPU)); then size="--d-model 16 --random-context 8"; fi
  $PY benchmarks/bench_lm_basis.py --random gpt2 --windows 2 $size
}
export -f environment wheels cuda_tests paper_run devices_cpu devices_dev devices_compare \
  gpt2_block tinystories nccl lm_basis

step environment 60 environment
if ((CPU)); then skip wheels "--cpu: this machine's own packages"
else step wheels 90 wheels && export PYTHONPATH=/tmp/site:$PYTHONPATH; fi
step cuda_tests 150 cuda_tests
step devices_cpu 150 devices_cpu
step devices_dev 120 devices_dev
step devices_compare 60 devices_compare
step gpt2_block 240 gpt2_block
step tinystories 180 tinystories
step nccl 150 nccl
step lm_basis 120 lm_basis

say "step rc seconds (of ${SECONDS}s; budget ${BUDGET}s)"
awk -F'\t' '{printf "%-16s %5s %8s\n", $1, $2, $3}' "$OUT/summary.tsv" | tee -a "$OUT/steps.log"
if [ -z "${GPU_CHECK_WORK:-}" ]; then rm -rf "$WORK"; fi
! cut -f2 "$OUT/summary.tsv" | grep -qvE '^(0|skip)$'
