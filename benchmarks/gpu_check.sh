#!/usr/bin/env bash
# The GPU half of the performance work, as one command for a machine with an
# NVIDIA GPU and a CUDA build of JAX (plus flax, optax, orbax, absl) already
# installed; it needs no network. From the repository root:
#
#   bash benchmarks/gpu_check.sh            # results under benchmarks/out/gpu (or $OUT)
#
# Stages, most important first, each with its own time limit so that a slow
# one cannot starve the rest (a benchmark stops starting cases at its
# --time_budget_s and writes its JSON after every case); all output also
# goes to gpu_check.log:
#  1. nvidia-smi, versions, and the copy bandwidth a plain kernel reaches;
#  2. the compiled Pallas kernels against the interpreter and the XLA path
#     (tests/norms/test_pallas_rows.py, the test that is skipped without a GPU);
#  3. implementation choices timed against each other (benchmarks/variants.py:
#     RMSNorm's overflow guard, cond vs select, and the backward's fusion
#     barriers), with every compiled program kept as gzip HLO text;
#  4. layer and RMS norm (XLA and Pallas) on large (N, L, C) shapes, and
#     batch, instance and group norm on large NHWC shapes: forward and vjp,
#     float32 and bf16, with '% of peak' bandwidth, against flax.linen and
#     PyTorch on CUDA in the same process;
#  5. the Pallas kernels' block sizes (benchmarks/pallas_tune.py);
#  6. the CPU benchmark's own shapes and modes, all five core norms;
#  7. the nnx modules (normzoo.nnx vs flax.nnx under nnx.jit);
#  8. the training step of resnet20.
# At most 590 s (the stages' limits add up to 545 s, and a stage that runs
# over gets 5 s to stop before it is killed), under a 600 s call; on an H200 on
# 2026-12-04 it took 6 min 9 s without stage 3, several stages cut by their
# budgets. Knobs: PYTHON (default python3), REPEATS (15), GPU_CHECK_PLATFORM
# (cuda; 'cpu' tries the script out on tiny shapes).
set -u -o pipefail
out=${OUT:-benchmarks/out/gpu}
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
py=${PYTHON:-python3}
platform=${GPU_CHECK_PLATFORM:-cuda}
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export JAX_PLATFORMS=$platform
# PyTorch shares the GPU with JAX in the same process: JAX takes less than
# its default 75 % up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45}
repeats=${REPEATS:-15}
status=0
start=$SECONDS

if [ "$platform" = cpu ]; then  # a dry run: tiny shapes, the kernels interpreted
  rows=4x8x64,2x16x128; nhwc=4x8x8x64; std=8x4x4x64,2x8x96; tune="--interpret --shapes=64x96"
  train="--batch_size=8 --steps=1 --rounds=1"; bw=16; variants="--shapes=4x8x8x32 --repeats=1"
  nnx=4x8x8x64
else
  rows=64x2048x1024,32x2048x4096,16384x8192; nhwc=128x56x56x256,256x32x32x512
  std=128x32x32x64,32x56x56x256,256x8x8x512,16x512x768; tune="--shapes=64x2048x1024,16384x8192"
  train="--batch_size=256 --steps=20 --rounds=5"; bw=1024; variants="--repeats=$repeats"
  nnx=128x56x56x256
fi

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: runs it under a time limit, logged
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s, at $((SECONDS - start))s)" | tee -a "$log"
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "=== $name: exit status $rc" | tee -a "$log"; status=1; }
}

stage env 20 bash -c "(nvidia-smi || true); $py -c 'import jax, jaxlib, flax; \
print(jax.__version__, jaxlib.__version__, flax.__version__, jax.devices())'"
stage bandwidth 25 "$py" -m benchmarks.bandwidth --size_mib=$bw --repeats="$repeats" \
  --json="$out/bandwidth.json"
stage pallas_tests 50 "$py" -m pytest -q -p no:cacheprovider -p no:xdist -o addopts= \
  tests/norms/test_pallas_rows.py -k "compiled or lower"
# shellcheck disable=SC2086  # $variants is a list of flags
stage variants 65 "$py" -m benchmarks.variants $variants --time_budget_s=35 \
  --json="$out/variants.json" --hlo="$out/variants_hlo.txt.gz"
norms() {  # norms NAME LIMIT BUDGET FLAGS...
  local name=$1 limit=$2 budget=$3
  shift 3
  stage "$name" "$limit" "$py" -m benchmarks.norms --repeats="$repeats" --keep_going \
    --time_budget_s="$budget" --json="$out/$name.json" --apis="${APIS:-linen}" "$@"
}
norms norms_rows 95 70 --norms=layer,layer_pallas,rms_pallas,rms --shapes=$rows \
  --dtypes=float32,bfloat16 --modes=fwd,vjp
norms norms_nhwc 75 50 --norms=batch,instance,group --shapes=$nhwc \
  --dtypes=float32,bfloat16 --modes=fwd,vjp
# shellcheck disable=SC2086  # $tune is a list of flags
stage pallas_tune 50 "$py" -m benchmarks.pallas_tune $tune --dtypes=float32,bfloat16 \
  --forward_blocks=1024,4096,16384 --max_warps=4,8,16 --backward_blocks=2048,4096,8192 \
  --span_rows=8,32 --repeats="$repeats" --time_budget_s=25 --json="$out/pallas_tune.json"
norms norms_std 55 38 --norms=batch,layer,group,instance,rms --shapes=$std \
  --dtypes=float32,bfloat16 --modes=fwd,fwd+bwd,vjp
APIS=nnx norms norms_nnx 25 15 --norms=batch,layer,group,rms --shapes=$nnx \
  --dtypes=float32,bfloat16 --modes=fwd,vjp
# shellcheck disable=SC2086
# resnet20 alone: its three builds took about a minute to compile and run on an H200.
stage train_step 85 "$py" -m benchmarks.train_step --models=resnet20 --norms=batch \
  $train --json="$out/train_step.json"
echo "=== done in $((SECONDS - start))s, status $status" | tee -a "$log"
exit $status
