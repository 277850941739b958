"""Block sizes of the Pallas row kernels, timed against each other on a GPU.

    python -m benchmarks.pallas_tune                          # layer norm, two shapes
    python -m benchmarks.pallas_tune --norm=rms --shapes=16x512x768 --dtypes=bfloat16

For each shape and dtype, every variant of one kernel is compiled first and
the variants are then timed interleaved (as ``benchmarks.norms`` does):

* forward (``pallas_layer_norm`` / ``pallas_rms_norm``): elements per
  instance (``--forward_blocks``) times the warp cap (``--max_warps``);
* backward alone (the jitted pullback of ``jax.vjp``): elements per block
  (``--backward_blocks``) times the rows one instance walks
  (``--span_rows``), with the warps the module's rule gives.

Variants that come out as the same launch (block rows, warps, rows walked)
are timed once. The row marked ``default`` uses ``pallas_rows``' module
constants, and ``vs default`` is each variant's time over its time.
Traffic counts the minimum: forward reads x and writes y; backward reads x
and the cotangent and writes dx. ``--interpret`` runs the kernels in the
Pallas interpreter, to try the script out without a GPU (its times mean
nothing).
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host, write_results  # isort: skip

import functools
import itertools
import time
from collections.abc import Callable
from typing import NamedTuple
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.cli import DTYPES, check_choices, parse_ints, parse_shapes
from benchmarks.machine import peak_gbps
from benchmarks.timing import calls_per_sample, time_interleaved
from normzoo.norms import pallas_rows

FLAGS = flags.FLAGS
flags.DEFINE_enum("norm", "layer", ["layer", "rms"], "Which kernel pair.")
flags.DEFINE_list("shapes", ["64x2048x1024", "16384x8192"], "(..., C) shapes, 'x'-separated.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Input dtypes (parameters stay float32).")
flags.DEFINE_list("forward_blocks", ["1024", "2048", "4096", "8192", "16384"],
                  "Elements one forward instance holds (_FORWARD_BLOCK_ELEMENTS).")
flags.DEFINE_list("max_warps", ["4", "8", "16"], "Warp caps for the forward (_MAX_WARPS).")
flags.DEFINE_list("backward_blocks", ["1024", "2048", "4096", "8192"],
                  "Elements per backward block (_BACKWARD_BLOCK_ELEMENTS).")
flags.DEFINE_list("span_rows", ["8", "32", "128"],
                  "Rows one backward instance walks through (_BACKWARD_SPAN_ROWS).")
flags.DEFINE_integer("repeats", 15, "Timed repetitions per variant (median reported).",
                     lower_bound=1)
flags.DEFINE_integer("calls_per_sample", 0, "Calls per timed sample (0: 20 on GPU, else 1).")
flags.DEFINE_bool("interpret", False, "Pallas interpreter (no GPU needed; times meaningless).")
flags.DEFINE_float("time_budget_s", 0.0, "Start no new shape/dtype after this many seconds (0: "
                   "no limit).")
flags.DEFINE_string("json", "benchmarks/out/pallas_tune.json", "Where to write results ('' = "
                    "don't).")

_KNOBS = ("_FORWARD_BLOCK_ELEMENTS", "_MAX_WARPS", "_BACKWARD_BLOCK_ELEMENTS",
          "_BACKWARD_SPAN_ROWS")


class _Variant(NamedTuple):
  constants: dict  # pallas_rows' constants to set while tracing
  blocks: str      # the launch's block layout: all the interpreter sees of it
  warps: int


def _variants(knobs: tuple[str, str], values: tuple[list[int], list[int]],
              launch: Callable[[], tuple[str, int]]) -> dict[str, _Variant]:
  """Label -> variant, one per distinct launch; the module's defaults first.

  ``launch()`` describes the launch that the constants set at the time give.
  """
  default = {k: getattr(pallas_rows, k) for k in knobs}
  grid = [default] + [dict(zip(knobs, v)) for v in itertools.product(*values)]
  variants, seen = {}, set()
  for consts in grid:
    with mock.patch.multiple(pallas_rows, **consts):
      blocks, warps = launch()
    if (blocks, warps) in seen:
      continue
    seen.add((blocks, warps))
    label = f"{blocks}, {warps} warps" + (" (default)" if not variants else "")
    variants[label] = _Variant(consts, blocks, warps)
  return variants


class Grid(NamedTuple):
  """The values to try, from the flags."""
  forward_blocks: list[int]
  max_warps: list[int]
  backward_blocks: list[int]
  span_rows: list[int]


def _forward_variants(rows: int, features: int, grid: Grid) -> dict[str, _Variant]:
  def launch():
    block_rows, padded = pallas_rows._layout(rows, features, pallas_rows._FORWARD_BLOCK_ELEMENTS)  # pylint: disable=protected-access
    return f"{block_rows} rows x {padded}", pallas_rows._num_warps(block_rows, padded)  # pylint: disable=protected-access
  return _variants(("_FORWARD_BLOCK_ELEMENTS", "_MAX_WARPS"),
                   (grid.forward_blocks, grid.max_warps), launch)


def _backward_variants(rows: int, features: int, grid: Grid) -> dict[str, _Variant]:
  def launch():
    block_rows, padded, sub_blocks = pallas_rows._backward_layout(rows, features)  # pylint: disable=protected-access
    return (f"{block_rows} rows x {padded}, walks {block_rows * sub_blocks} rows",
            pallas_rows._num_warps(block_rows, padded))  # pylint: disable=protected-access
  return _variants(("_BACKWARD_BLOCK_ELEMENTS", "_BACKWARD_SPAN_ROWS"),
                   (grid.backward_blocks, grid.span_rows), launch)


def tune_shape(shape: tuple[int, ...], dtype: str, grid: Grid, repeats: int, calls: int,
               peak: float) -> list[dict]:
  """Times every forward and backward variant at one shape and dtype."""
  features, rows = shape[-1], int(np.prod(shape[:-1]))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape, np.float32), dtype)
  ct = jnp.asarray(rng.standard_normal(shape, np.float32), dtype)
  scale = jnp.asarray(1 + 0.1 * rng.standard_normal(features, np.float32))
  bias = jnp.asarray(0.1 * rng.standard_normal(features, np.float32))
  if FLAGS.norm == "layer":
    fn = functools.partial(pallas_rows.pallas_layer_norm, interpret=FLAGS.interpret)
    params = (scale, bias)
  else:
    fn = functools.partial(pallas_rows.pallas_rms_norm, interpret=FLAGS.interpret)
    params = (scale,)
  y = jax.eval_shape(fn, x, *params)
  ct = ct.astype(y.dtype)

  def arguments(kernel: str) -> tuple:
    """The timed function's arguments; read under a variant's constants."""
    if kernel == "forward":
      return (x, *params)
    # A pullback of its own per variant, traced with that variant's constants.
    return (jax.vjp(fn, x, *params)[1], ct)

  out = []
  for kernel, variants, nbytes in (
      ("forward", _forward_variants(rows, features, grid), x.nbytes + y.size * y.dtype.itemsize),
      ("backward", _backward_variants(rows, features, grid), x.nbytes + ct.nbytes + x.nbytes)):
    compiled, args = {}, {}
    for label, variant in variants.items():
      # A new function per variant: jit caches its trace by the function, and
      # the constants are read while tracing.
      target = (jax.jit(lambda *a: fn(*a)) if kernel == "forward"
                else jax.jit(lambda pull, ct: pull(ct)))
      # pallas_rows' constants are read while the variant is traced and compiled.
      with mock.patch.multiple(pallas_rows, **variant.constants):
        args[label] = arguments(kernel)
        compiled[label] = target.lower(*args[label]).compile()
    # Distinct launches must compile to distinct programs. They once did
    # not: one jitted function served every variant, its first trace was
    # cached, and a whole GPU sweep timed one program.
    # The interpreter ignores the warp count: there only the blocks must differ.
    expected = (len({v.blocks for v in variants.values()}) if FLAGS.interpret
                else len(compiled))
    if len({c.as_text() for c in compiled.values()}) != expected:
      raise RuntimeError(f"{kernel} variants at {shape} compiled to the same program: the "
                         f"constants did not reach the kernel")
    times = time_interleaved({k: functools.partial(c, *args[k]) for k, c in compiled.items()},
                             repeats, calls=calls)
    default = next(iter(times.values()))
    for label, seconds in times.items():
      row = dict(norm=FLAGS.norm, kernel=kernel, shape="x".join(map(str, shape)), dtype=dtype,
                 variant=label, constants=variants[label].constants, ms=seconds * 1e3,
                 gbps=nbytes / seconds / 1e9, vs_default=seconds / default)
      if peak:
        row["pct_peak"] = 100 * row["gbps"] / peak
      out.append(row)
  return out


def _format(rows: list[dict]) -> str:
  peak = any("pct_peak" in r for r in rows)
  lines = ["| kernel | shape | dtype | variant | ms | GB/s |" + (" % of peak |" if peak else "")
           + " vs default |", "|---|---|---|---|---|---|" + ("---|" if peak else "") + "---|"]
  for r in rows:
    lines.append(f"| {r['kernel']} | {r['shape']} | {r['dtype']} | {r['variant']} | "
                 f"{r['ms']:.3f} | {r['gbps']:.0f} |" + (f" {r['pct_peak']:.0f} |" if peak else "")
                 + f" {r['vs_default']:.2f} |")
  return "\n".join(lines)


def main(argv):
  del argv
  setup_host()
  if jax.default_backend() != "gpu" and not FLAGS.interpret:
    raise app.UsageError(f"--interpret: the Pallas kernels need a GPU (backend: "
                         f"{jax.default_backend()}); pass --interpret to try the script out")
  shapes = parse_shapes("shapes", FLAGS.shapes)
  dtypes = check_choices("dtypes", FLAGS.dtypes, DTYPES)
  grid = Grid(*(parse_ints(name, getattr(FLAGS, name)) for name in Grid._fields))
  calls = calls_per_sample(FLAGS.calls_per_sample)
  peak = peak_gbps()
  rows, skipped, start = [], [], time.perf_counter()
  for shape in shapes:
    for dtype in dtypes:
      if FLAGS.time_budget_s and time.perf_counter() - start > FLAGS.time_budget_s:
        skipped.append(f"{'x'.join(map(str, shape))} {dtype}")
        continue
      new = tune_shape(shape, dtype, grid, FLAGS.repeats, calls, peak)
      print(_format(new), flush=True)
      rows += new
      write_results(FLAGS.json, rows, knobs=list(_KNOBS))
  if skipped:
    print(f"--time_budget_s={FLAGS.time_budget_s:g} reached; not run: {', '.join(skipped)}")
  best = {}
  for r in rows:
    key = (r["kernel"], r["shape"], r["dtype"])
    if key not in best or r["ms"] < best[key]["ms"]:
      best[key] = r
  print("\nFastest per kernel, shape and dtype:")
  print(_format(list(best.values())))
  write_results(FLAGS.json, rows, knobs=list(_KNOBS), not_run=skipped)


if __name__ == "__main__":
  app.run(main)
