"""Normalizer speed: normzoo vs flax.linen (vs PyTorch CPU when installed).

    python -m benchmarks.norms                      # full table, writes benchmarks/out/norms.json
    python -m benchmarks.norms --quick              # one shape, float32, fwd+bwd
    python -m benchmarks.norms --norms=batch,group --shapes=128x32x32x64 --dtypes=float32

Every implementation runs on the same array in the same process. normzoo's
and flax.linen's repetitions are interleaved (in a shuffled order each
round) so that load on the machine hits both alike, and the median is
reported; PyTorch's are timed right after them, since its threads slow the
JAX call that follows them. The timed function is jitted
``y = norm(x)`` (``fwd``), ``grad(sum(norm(x) ** 2))`` (``fwd+bwd``, the
issue's reference) or ``(y, vjp(ct))`` with a fixed random cotangent ``ct``
(``vjp``), in training mode (batch statistics) or, for batch norm,
evaluation mode. ``vjp`` is what a layer inside a network does: its output
is read by the next layer and its cotangent comes from memory. In
``fwd+bwd`` the cotangent ``2 y`` can be recomputed from ``x``, so XLA may
fuse forward and backward into fewer passes than a network allows, and a
gain there need not carry over to a training step. Effective bandwidth
counts the minimum traffic, each array in its own dtype: reading x and
writing y or dx, and for ``vjp`` also reading ct and writing both (for
float32, ``2 * x.nbytes`` and ``4 * x.nbytes`` per call; bf16 input with
float32 parameters has a float32 y and ct).
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host, write_results  # isort: skip

import time
import traceback
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.cases import (MODES, NORMS, PALLAS, VARIANTS, applies, input_array, jax_program,
                              modules, nnx_modules, nnx_program)
from benchmarks.cli import DTYPES, check_choices, parse_shapes
from benchmarks.machine import peak_gbps as device_peak_gbps
from benchmarks.timing import calls_per_sample, time_interleaved

FLAGS = flags.FLAGS
flags.DEFINE_list("norms", ["batch", "layer", "group", "instance", "rms"],
                  "Normalizers: batch, layer, group, instance, rms, layer_pallas and rms_pallas "
                  "(implementation='pallas': GPU only, (N, L, C) shapes), or a research variant "
                  "(batch_renorm, ghost_batch, frn, evonorm_b0, evonorm_s0, switchable; timed "
                  "against flax.linen.BatchNorm, the layer they replace).")
flags.DEFINE_list("shapes", ["128x32x32x64", "32x56x56x256", "256x8x8x512", "16x512x768"],
                  "NHWC (or N,L,C for layer/rms) shapes, 'x'-separated.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Input dtypes.")
flags.DEFINE_list("modes", list(MODES),
                  "What to time: fwd, fwd+bwd (grad of sum(y^2)), vjp (y and dx for a given "
                  "cotangent).")
flags.DEFINE_list("apis", ["linen", "nnx"],
                  "Module APIs to time: linen (normzoo vs flax.linen, jax.jit) and nnx "
                  "(normzoo.nnx vs flax.nnx, nnx.jit with the module as an argument).")
flags.DEFINE_integer("repeats", 15, "Timed repetitions per implementation (median reported).")
flags.DEFINE_bool("quick", False, "Only 128x32x32x64 float32 fwd+bwd.")
flags.DEFINE_bool("torch", True, "Include PyTorch CPU when it is installed.")
flags.DEFINE_string("json", "benchmarks/out/norms.json", "Where to write the results ('' = don't).")
flags.DEFINE_integer("calls_per_sample", 0,
                     "Calls timed together per sample, blocking on the last only (0: 1 on CPU, 20 "
                     "on GPU, where one call of a large normalizer takes tens of microseconds and "
                     "Python's dispatch would otherwise be timed with it).")
flags.DEFINE_float("peak_gbps", 0.0,
                   "Peak memory bandwidth of the device in GB/s for the '% of peak' column (0: "
                   "the device kind's datasheet figure, benchmarks.machine.PEAK_GBPS; unknown "
                   "kinds get no column).")
flags.DEFINE_float("time_budget_s", 0.0,
                   "Start no new case after this many seconds (0: no limit); the table and JSON "
                   "then hold the cases that ran.")
flags.DEFINE_bool("keep_going", False,
                  "Report a case that raises and go on with the next (listed under 'failures' "
                  "in the JSON) instead of stopping.")

# PyTorch module names for the NCHW layers, by number of spatial axes.
_TORCH_NCHW = {
    "batch": lambda c, nd: {1: "BatchNorm1d", 2: "BatchNorm2d"}.get(nd),
    "instance": lambda c, nd: {1: "InstanceNorm1d", 2: "InstanceNorm2d"}.get(nd),
}


def _jax_fn(module_cls, kwargs, x, mode: str, train: bool, api: str = "linen") -> Callable:
  """``fn(x)``: :func:`jax_program`'s (or :func:`nnx_program`'s) call with ``x`` replaced."""
  program = nnx_program if api == "nnx" else jax_program
  fn, args = program(module_cls, kwargs, x, mode, train)
  return lambda x: fn(x, *args[1:])


def _torch_fn(name: str, x: np.ndarray, mode: str, train: bool):
  try:
    import torch
  except ImportError:
    return None
  spatial = x.ndim - 2
  c = x.shape[-1]
  if name in _TORCH_NCHW:
    cls_name = _TORCH_NCHW[name](c, spatial)
    if cls_name is None:
      return None
    kwargs = {"affine": True} if name == "instance" else {}
    layer = getattr(torch.nn, cls_name)(c, **kwargs)
  elif name == "group":
    layer = torch.nn.GroupNorm(32, c)
  elif name == "layer":
    layer = torch.nn.LayerNorm(x.shape[1:] if spatial == 2 else (c,))
  elif name == "rms" and hasattr(torch.nn, "RMSNorm"):
    layer = torch.nn.RMSNorm(c)
  else:
    return None
  # Same device as JAX's: CUDA when JAX runs on a GPU and this PyTorch has it.
  device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
  layer.train(train).to(device)
  channels_first = name in ("batch", "instance", "group")
  xt = torch.from_numpy(np.moveaxis(x, -1, 1).copy() if channels_first else x.copy()).to(device)
  if x.dtype != np.float32:
    return None  # PyTorch CPU bf16 normalization is not a fair comparison point
  if mode == "fwd":
    def run():
      with torch.no_grad():
        return layer(xt)
    return run
  xt.requires_grad_(True)
  if mode == "vjp":
    ct = torch.randn(xt.shape, generator=torch.Generator().manual_seed(1)).to(device)

    def run_vjp():
      xt.grad = None
      y = layer(xt)
      y.backward(ct)
      return y, xt.grad
    return run_vjp

  def run_bwd():
    xt.grad = None
    (layer(xt) ** 2).sum().backward()
    return xt.grad
  return run_bwd


def run_case(name: str, shape: tuple[int, ...], dtype: str, mode: str, train: bool,
             repeats: int, use_torch: bool, calls: int = 1, peak_gbps: float = 0.0,
             api: str = "linen") -> dict | None:
  if not applies(name, shape):
    return None
  ours_cls, flax_cls, kwargs = (nnx_modules if api == "nnx" else modules)(name, len(shape))
  x_np = input_array(shape)
  x = jnp.asarray(x_np, dtype)
  f_ours = _jax_fn(ours_cls, kwargs, x, mode, train, api)
  f_flax = _jax_fn(flax_cls, kwargs, x, mode, train, api)
  times = time_interleaved({"normzoo": lambda: f_ours(x), "flax": lambda: f_flax(x)}, repeats,
                           calls=calls)
  # PyTorch is timed after the JAX pair, not interleaved with it: on CPU
  # its intra-op threads left the JAX call timed next 1.2-2x slower, even
  # with OMP_WAIT_POLICY=PASSIVE, which moved normzoo/flax by up to 0.4
  # depending on which of the two ran after PyTorch (batch norm training
  # forward at 256x8x8x512: 1.41 interleaved, 0.96-1.00 without PyTorch).
  if use_torch and api == "linen" and dtype == "float32" and name not in VARIANTS:
    t = _torch_fn(PALLAS.get(name, name), x_np, mode, train)
    if t is not None:
      times.update(time_interleaved({"torch": t}, repeats, calls=calls))
  # Traffic at the minimum: x read and the outputs written (y or dx, both
  # for vjp, which also reads ct, y's twin), each in its own dtype: bf16
  # input with float32 parameters gives a float32 y.
  # A real (already compiled) call, not eval_shape: tracing an nnx.jit
  # function inside another transform would mutate its module's state there.
  outputs = jax.tree.leaves(f_ours(x))
  nbytes = x.nbytes + sum(o.size * o.dtype.itemsize for o in outputs)
  if mode == "vjp":
    nbytes += outputs[0].size * outputs[0].dtype.itemsize
  label = f"{name} (vs flax BatchNorm)" if name in VARIANTS else name
  row = dict(norm=label, api=api, shape="x".join(map(str, shape)), dtype=dtype, mode=mode,
             train=train, **{f"{k}_ms": v * 1e3 for k, v in times.items()},
             normzoo_gbps=nbytes / times["normzoo"] / 1e9,
             vs_flax=times["normzoo"] / times["flax"])
  if "torch" in times:
    row["vs_torch"] = times["normzoo"] / times["torch"]
  if peak_gbps:
    row["pct_peak"] = 100 * row["normzoo_gbps"] / peak_gbps
  return row


def _format(rows: list[dict]) -> str:
  peak = any("pct_peak" in r for r in rows)
  # Below a millisecond (an accelerator), milliseconds with three decimals.
  ms = ".3f" if rows and min(r["normzoo_ms"] for r in rows) < 1 else ".1f"
  lines = ["| norm | api | shape | dtype | mode | train | normzoo ms | flax ms | torch ms | "
           "normzoo/flax | normzoo/torch | normzoo GB/s |" + (" % of peak |" if peak else ""),
           "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if peak else "")]
  for r in rows:
    torch_ms = f"{r['torch_ms']:{ms}}" if "torch_ms" in r else "-"
    vs_torch = f"{r['vs_torch']:.2f}" if "vs_torch" in r else "-"
    lines.append(f"| {r['norm']} | {r.get('api', 'linen')} | {r['shape']} | {r['dtype']} | {r['mode']} | "
                 f"{'train' if r['train'] else 'eval'} | {r['normzoo_ms']:{ms}} | "
                 f"{r['flax_ms']:{ms}} | {torch_ms} | {r['vs_flax']:.2f} | {vs_torch} | "
                 f"{r['normzoo_gbps']:.1f} |" + (f" {r['pct_peak']:.0f} |" if peak else ""))
  return "\n".join(lines)


def main(argv):
  del argv
  setup_host()
  shapes = parse_shapes("shapes", FLAGS.shapes)
  check_choices("norms", FLAGS.norms, NORMS)
  dtypes = check_choices("dtypes", FLAGS.dtypes, DTYPES)
  modes = check_choices("modes", FLAGS.modes, MODES)
  apis = check_choices("apis", FLAGS.apis, ("linen", "nnx"))
  if FLAGS.quick:
    shapes, dtypes, modes = [(128, 32, 32, 64)], ["float32"], ["fwd+bwd"]
  gpu = jax.default_backend() == "gpu"
  calls = calls_per_sample(FLAGS.calls_per_sample)
  peak_gbps = FLAGS.peak_gbps or device_peak_gbps()
  norms = FLAGS.norms
  if not gpu and any(n in PALLAS for n in norms):
    print(f"skipping {', '.join(n for n in norms if n in PALLAS)}: the Pallas kernels need a "
          f"GPU (backend: {jax.default_backend()})")
    norms = [n for n in norms if n not in PALLAS]
  rows, failures, skipped = [], [], 0
  start = time.perf_counter()
  cases = [(name, shape, dtype, mode, train, api)
           for name in norms for shape in shapes if applies(name, shape)
           for dtype in dtypes for mode in modes
           for train in ([True, False] if name == "batch" else [True]) for api in apis]
  for name, shape, dtype, mode, train, api in cases:
    if FLAGS.time_budget_s and time.perf_counter() - start > FLAGS.time_budget_s:
      skipped += 1
      continue
    try:
      row = run_case(name, shape, dtype, mode, train, FLAGS.repeats, FLAGS.torch, calls,
                     peak_gbps, api)
    except Exception as e:  # pylint: disable=broad-except
      if not FLAGS.keep_going:
        raise
      case = f"{name} {api} {'x'.join(map(str, shape))} {dtype} {mode} train={train}"
      failures.append(dict(case=case, error=f"{type(e).__name__}: {e}"))
      print(f"FAILED {case}:\n{traceback.format_exc()}", flush=True)
    else:
      rows.append(row)
      print(_format([row]).splitlines()[-1], flush=True)
    # After every case: a run stopped from outside keeps what it measured.
    write_results(FLAGS.json, rows, failures=failures)
  print()
  print(_format(rows))
  if skipped:
    print(f"\n--time_budget_s={FLAGS.time_budget_s:g} reached: {skipped} cases not run")
  if failures:
    print(f"\n{len(failures)} cases failed: " + "; ".join(f["case"] for f in failures))
  write_results(FLAGS.json, rows, failures=failures, not_run=skipped)


if __name__ == "__main__":
  app.run(main)
