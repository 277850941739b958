"""Where a training step's time goes: XLA op times from a profiler trace.

    python -m benchmarks.profile_step --model=mnist_cnn --norm=batch
    python -m benchmarks.profile_step --model=resnet20 --norm=group --rounds=3 --steps=2 --top=15

Builds the step of ``benchmarks.train_step`` three times (normzoo norm,
flax.linen norm, no norm), traces ``--steps`` steps of each with
``jax.profiler`` in ``--rounds`` shuffled rounds and sums the duration of
every compiled op (the thunks XLA:CPU runs) per step; medians over rounds.
Ops whose computation holds a convolution or a matrix product are counted
as "conv/dot"; everything else (normalizers, activations, pooling,
optimizer update) as "other". Op time summed over
threads can exceed the wall time: independent ops run concurrently.

This explains a training-step ratio: when "conv/dot" dominates, no
normalizer, however fast on its own, moves images/s much. It does not
time one: under tracing XLA:CPU's op times move erratically (the same
jitted elementwise op took 2.0 ms a call traced in one process and 6.8 ms
in the next, 2.0 ms untraced in both), so a per-op comparison between
builds is indicative only. Speed ratios come from ``benchmarks.norms``
and ``benchmarks.train_step``, which do not trace.
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host  # isort: skip

import collections
import glob
import gzip
import json
import re
import statistics
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

import normzoo
from benchmarks import train_step

_MODEL = flags.DEFINE_string("model", "mnist_cnn", "Model (as in benchmarks.train_step).")
_NORM = flags.DEFINE_string("norm", "batch", "Normalizer: batch, group, layer or instance.")
_TOP = flags.DEFINE_integer("top", 10, "Ops listed per implementation, longest first.")


def _computations(hlo_text: str) -> dict[str, str]:
  """Name -> body of every computation in an HLO module's text."""
  bodies, name, lines = {}, None, []
  for line in hlo_text.split("\n"):
    head = re.match(r"^(?:ENTRY )?%(\S+) .*\{$", line)
    if head:
      name, lines = head.group(1), []
    elif line.startswith("}") and name is not None:
      bodies[name] = "\n".join(lines)
      name = None
    elif name is not None:
      lines.append(line)
  return bodies


def _op_kinds(hlo_text: str) -> dict[str, str]:
  """Top-level op name -> "conv/dot" or "other", following the computations it calls."""
  bodies = _computations(hlo_text)
  entry = next(b for n, b in bodies.items() if hlo_text.find(f"ENTRY %{n} ") >= 0)

  def heavy(body: str, seen: set[str]) -> bool:
    if re.search(r" (convolution|dot)\(", body):
      return True
    for callee in re.findall(r"(?:calls|to_apply|branch_computations)=\{?%([\w.\-]+)", body):
      if callee not in seen and callee in bodies:
        seen.add(callee)
        if heavy(bodies[callee], seen):
          return True
    return False

  kinds = {}
  for line in entry.split("\n"):
    m = re.match(r"\s*(?:ROOT )?%(\S+) = ", line)
    if m:
      kinds[m.group(1)] = "conv/dot" if heavy(line, set()) else "other"
  return kinds


def _op_times(trace_dir: str) -> dict[str, float]:
  """hlo_op -> total microseconds in the trace written under ``trace_dir``."""
  (path,) = glob.glob(f"{trace_dir}/plugins/profile/*/*.trace.json.gz")
  with gzip.open(path) as f:
    events = json.load(f)["traceEvents"]
  totals = collections.defaultdict(float)
  for e in events:
    op = e.get("args", {}).get("hlo_op") if e.get("ph") == "X" else None
    if op:
      totals[op] += e["dur"]
  return totals


def _trace(runner, steps: int, kinds: dict[str, str]) -> dict:
  """Per-step op times of one traced run, split by kind, and its wall time."""
  with tempfile.TemporaryDirectory() as d:
    start = time.perf_counter()
    with jax.profiler.trace(d):
      runner.run(steps)
    wall = (time.perf_counter() - start) / steps
    times = {op: t / steps / 1e3 for op, t in _op_times(d).items()}
  by_kind = collections.defaultdict(float)
  for op, ms in times.items():
    by_kind[kinds.get(op, "other")] += ms
  return dict(ops=times, conv_ms=by_kind["conv/dot"], other_ms=by_kind["other"],
              traced_wall_ms=wall * 1e3)


def main(argv):
  del argv
  train_step.check_names([_MODEL.value], [_NORM.value], "model", "norm")
  setup_host()
  flags_ = flags.FLAGS
  images, labels = train_step.synthetic_batch(_MODEL.value, flags_.batch_size)
  ours, theirs = train_step.norm_pair(_NORM.value)
  runners, kinds = {}, {}
  for label, norm in (("normzoo", ours), ("flax.linen", theirs), ("no norm", normzoo.Identity)):
    r = train_step._Runner(_MODEL.value, norm, images, labels)  # pylint: disable=protected-access
    r.run(3)
    kinds[label] = _op_kinds(r.step.lower(r.params, r.batch_stats, r.opt_state, r.images,
                                          r.labels).compile().as_text())
    runners[label] = r
  # The first trace of a process pays for starting the profiler: not timed.
  _trace(runners["no norm"], 1, kinds["no norm"])
  samples = {label: [] for label in runners}
  order = list(runners)
  shuffle = np.random.default_rng(1)
  for _ in range(flags_.rounds):
    shuffle.shuffle(order)
    for label in order:
      samples[label].append(_trace(runners[label], flags_.steps, kinds[label]))
  print(f"{_MODEL.value}, {_NORM.value} norm, batch {flags_.batch_size}: ms per step, "
        f"median of {flags_.rounds} traced rounds of {flags_.steps} steps")
  print("| build | conv/dot ops | other ops | all ops | traced wall |")
  print("|---|---|---|---|---|")
  for label, runs in samples.items():
    conv, other, wall = (statistics.median(r[k] for r in runs)
                         for k in ("conv_ms", "other_ms", "traced_wall_ms"))
    print(f"| {label} | {conv:.1f} | {other:.1f} | {conv + other:.1f} | {wall:.1f} |")
  for label, runs in samples.items():
    names = set().union(*(r["ops"] for r in runs))  # an op may be missing from one trace
    ops = {op: statistics.median(r["ops"].get(op, 0.0) for r in runs) for op in names}
    if _TOP.value:
      print(f"\n{label}: longest ops (ms per step)")
    for op, ms in sorted(ops.items(), key=lambda kv: -kv[1])[:_TOP.value]:
      print(f"  {op:<32} {kinds[label].get(op, 'other'):<9} {ms:7.2f}")


if __name__ == "__main__":
  app.run(main)
