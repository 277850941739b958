#!/usr/bin/env bash
# The GPU half of the performance work, as one command for a machine with an
# NVIDIA GPU and a CUDA build of JAX (plus flax, optax, orbax, absl) already
# installed; it needs no network. From the repository root:
#
#   bash benchmarks/gpu_check.sh            # results under benchmarks/out/gpu (or $OUT)
#
# 1. the compiled Pallas kernels against the interpreter and the XLA path
#    (tests/norms/test_pallas_rows.py, the test that is skipped without a GPU);
# 2. forward and vjp timings with '% of peak' bandwidth: layer and RMS norm
#    (XLA and Pallas) on (N, L, C) shapes, batch norm on NHWC, float32 and
#    bf16, against flax.linen and PyTorch on CUDA in the same process.
# Not yet run on a GPU: estimated 5-8 minutes on an H200, mostly compiling.
# Knobs: PYTHON (default python3), REPEATS (15), GPU_CHECK_ROWS and
# GPU_CHECK_NHWC (shapes), GPU_CHECK_PLATFORM (cuda; cpu to try the script out).
set -u -o pipefail
out=${OUT:-benchmarks/out/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export JAX_PLATFORMS=${GPU_CHECK_PLATFORM:-cuda}
repeats=${REPEATS:-15}
status=0

(nvidia-smi || true) >"$out/nvidia_smi.txt" 2>&1
"$py" -c "import jax, jaxlib; print(jax.__version__, jaxlib.__version__, jax.devices())" \
  2>&1 | tee "$out/jax.txt" || exit 1

"$py" -m pytest -q -p no:cacheprovider tests/norms/test_pallas_rows.py -k compiled 2>&1 \
  | tee "$out/pallas_tests.txt" || status=1

rows=${GPU_CHECK_ROWS:-16x512x768,64x2048x1024,32x2048x4096,16384x8192}
nhwc=${GPU_CHECK_NHWC:-128x56x56x256,256x32x32x512}
"$py" -m benchmarks.norms --norms=layer,layer_pallas,rms,rms_pallas --shapes="$rows" \
  --dtypes=float32,bfloat16 --modes=fwd,vjp --repeats="$repeats" \
  --json="$out/norms_rows.json" 2>&1 | tee "$out/norms_rows.txt" || status=1
"$py" -m benchmarks.norms --norms=batch,instance,group --shapes="$nhwc" \
  --dtypes=float32,bfloat16 --modes=fwd,vjp --repeats="$repeats" \
  --json="$out/norms_nhwc.json" 2>&1 | tee "$out/norms_nhwc.txt" || status=1
exit $status
