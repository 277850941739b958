"""Internal implementation choices timed against each other and flax.linen, in one process.

    python -m benchmarks.variants                                 # every experiment
    python -m benchmarks.variants --experiments=rms_guard --hlo=benchmarks/out/variants_hlo.txt.gz

Some choices inside normzoo are made per backend from measurements (a fusion
barrier, a conditional or a select: the fields of
``normzoo.norms.policy.BackendPolicy``); an experiment here builds the same
normalizer once per variant, traced and compiled under
``normzoo.backend_policy(...)`` overrides, and times the compiled programs
interleaved with flax.linen's
(median seconds per call, as ``benchmarks.norms``). Two variants that
compile to the same program are reported, not timed as if they differed.
``--hlo`` writes every compiled program (gzip text), to read the fusions
behind a ratio offline.

Experiments:

* ``rms_guard``: RMSNorm's overflow guard, ``lax.cond`` against a per-row
  select (policy ``rms_overflow_guard``), each with and without the
  backward's fusion barrier (``rms_fusion_barrier``). The defaults:
  ``cond_barrier`` on CPU, ``select_nobarrier`` on GPU, ``select_barrier``
  on TPU.
* ``batch_barriers``: the batch-statistics normalizers' backward with and
  without its fusion barriers (policy ``fusion_barrier``), including group
  and instance norm in bf16 at 32x56x56x256.
"""

from __future__ import annotations

# First: it sets OMP_WAIT_POLICY before anything can load PyTorch's OpenMP runtime.
from benchmarks.machine import setup_host, write_results  # isort: skip

import gzip
import itertools
import os
import re
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import cases
from benchmarks.cli import DTYPES, check_choices, parse_shapes
from benchmarks.timing import calls_per_sample, time_interleaved
from normzoo.norms.policy import backend_policy

FLAGS = flags.FLAGS


class Experiment(NamedTuple):
  norms: tuple[str, ...]
  shapes: tuple[tuple[int, ...], ...]
  dtypes: tuple[str, ...]
  modes: tuple[str, ...]
  # variant name -> backend policy overrides while tracing
  variants: dict[str, dict[str, Any]]


EXPERIMENTS = {
    "rms_guard": Experiment(
        norms=("rms",), shapes=((64, 2048, 1024), (32, 56, 56, 256), (128, 32, 32, 64)),
        dtypes=("float32", "bfloat16"), modes=("vjp", "fwd"),
        # The barrier is set explicitly: its default depends on the backend.
        variants={
            f"{guard}_{'' if barrier else 'no'}barrier":
                dict(rms_overflow_guard=guard, rms_fusion_barrier=barrier)
            for barrier in (True, False) for guard in ("cond", "select")}),
    "batch_barriers": Experiment(
        norms=("group", "instance", "batch"), shapes=((32, 56, 56, 256),),
        dtypes=("bfloat16", "float32"), modes=("vjp", "fwd"),
        variants={"barriers": dict(fusion_barrier=True),
                  "no_barriers": dict(fusion_barrier=False)}),
}

flags.DEFINE_list("experiments", list(EXPERIMENTS), f"Any of: {', '.join(EXPERIMENTS)}.")
flags.DEFINE_list("shapes", [], "Override every experiment's shapes ('x'-separated).")
flags.DEFINE_list("modes", [], "Override every experiment's modes (fwd, vjp, fwd+bwd).")
flags.DEFINE_list("dtypes", [], "Override every experiment's dtypes.")
flags.DEFINE_integer("repeats", 15, "Timed repetitions per program (median reported).")
flags.DEFINE_integer("calls_per_sample", 0, "As in benchmarks.norms (0: 20 on GPU, else 1).")
flags.DEFINE_float("time_budget_s", 0.0, "Start no new case after this many seconds (0: none).")
flags.DEFINE_string("json", "benchmarks/out/variants.json", "Where to write results ('' = don't).")
flags.DEFINE_string("hlo", "", "Write every compiled program here, gzip text ('' = don't).")


def compile_case(name: str, shape, dtype: str, mode: str, variants: dict) -> dict:
  """``{label: (compiled, args)}`` for flax.linen and each variant, each traced afresh."""
  ours, theirs, kwargs = cases.modules(name, len(shape))
  x = jnp.asarray(cases.input_array(shape), dtype)
  programs = {}
  for label, overrides in [("flax", {})] + list(variants.items()):
    module = theirs if label == "flax" else ours
    # The overrides are part of every jit cache key (inner jits included),
    # so each variant is traced afresh without clearing caches.
    with backend_policy(**overrides):
      fn, args = cases.jax_program(module, kwargs, x, mode, train=True)
      programs[label] = (fn.lower(*args).compile(), args)
  return programs


def _same_programs(texts: dict[str, str]) -> dict[str, str]:
  """``{variant: earlier variant}`` for variants that compiled to the same program.

  Compared without metadata (source lines differ when a patch does not
  change the program).
  """
  bare = {k: re.sub(r", metadata=\{[^}]*\}", "", t) for k, t in texts.items()}
  same_as = {}
  labels = list(bare)
  for i, label in enumerate(labels):
    twin = next((e for e in labels[:i] if e not in same_as and bare[e] == bare[label]), None)
    if twin is not None:
      same_as[label] = twin
  return same_as


def _round_robin(names: list[str], shapes, dtypes, modes) -> list[tuple[str, tuple]]:
  """``(experiment, (norm, shape, dtype, mode))`` pairs, one case of each experiment in turn.

  Each experiment lists its most telling case first, so a time budget cut
  leaves every experiment its first cases rather than the first experiment
  all. ``shapes``, ``dtypes`` and ``modes`` override the experiments' own
  when not empty.
  """
  queues = []
  for exp_name in names:
    exp = EXPERIMENTS[exp_name]
    queues.append([(exp_name, (n, s, d, m)) for n in exp.norms for s in (shapes or exp.shapes)
                   for d in (dtypes or exp.dtypes) for m in (modes or exp.modes)
                   if cases.applies(n, s)])
  return [pair for turn in itertools.zip_longest(*queues) for pair in turn if pair is not None]


def run_case(exp_name: str, name: str, shape, dtype: str, mode: str, calls: int
             ) -> tuple[dict, dict[str, str]]:
  """Compiles and times one case: its result row and ``{label: compiled HLO text}``."""
  exp = EXPERIMENTS[exp_name]
  programs = compile_case(name, shape, dtype, mode, exp.variants)
  texts = {label: c.as_text() for label, (c, _) in programs.items()}
  same_as = _same_programs({k: texts[k] for k in exp.variants})
  timed = {k: v for k, v in programs.items() if k not in same_as}
  times = time_interleaved({k: (lambda c=c, a=a: c(*a)) for k, (c, a) in timed.items()},
                           FLAGS.repeats, calls=calls)
  for label, twin in same_as.items():
    times[label] = times[twin]
  shape_s = "x".join(map(str, shape))
  row = dict(experiment=exp_name, norm=name, shape=shape_s, dtype=dtype, mode=mode,
             **{f"{k}_ms": v * 1e3 for k, v in times.items()}, same_program=same_as)
  cells = " | ".join(
      f"{k} {times[k] * 1e3:.3f} ({times[k] / times['flax']:.2f})"
      + (f" = {same_as[k]}" if k in same_as else "") for k in exp.variants)
  print(f"| {exp_name} | {name} | {shape_s} | {dtype} | {mode} | "
        f"{times['flax'] * 1e3:.3f} | {cells} |", flush=True)
  return row, {f"{exp_name} {name} {shape_s} {dtype} {mode} {label}": text
               for label, text in texts.items()}


def _write_hlo(path: str, texts: dict[str, str]) -> None:
  """All compiled programs so far as gzip text, written whole and renamed into place."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with gzip.open(path + ".tmp", "wt") as f:
    f.write("\n".join(f"==== {key}\n{text}" for key, text in texts.items()))
  os.replace(path + ".tmp", path)


def main(argv):
  del argv
  setup_host()
  names = check_choices("experiments", FLAGS.experiments, tuple(EXPERIMENTS))
  shapes = parse_shapes("shapes", FLAGS.shapes) if FLAGS.shapes else None
  dtypes = check_choices("dtypes", FLAGS.dtypes, DTYPES)
  modes = check_choices("modes", FLAGS.modes, cases.MODES)
  calls = calls_per_sample(FLAGS.calls_per_sample)
  start = time.perf_counter()
  rows, hlo, not_run = [], {}, 0
  print("| experiment | norm | shape | dtype | mode | flax ms | variants: ms (/ flax) |")
  print("|---|---|---|---|---|---|---|")
  for exp_name, case in _round_robin(names, shapes, dtypes, modes):
    if FLAGS.time_budget_s and time.perf_counter() - start > FLAGS.time_budget_s:
      not_run += 1
      continue
    row, texts = run_case(exp_name, *case, calls)
    rows.append(row)
    hlo.update(texts)
    write_results(FLAGS.json, rows, not_run=not_run)
    if FLAGS.hlo:
      _write_hlo(FLAGS.hlo, hlo)
  write_results(FLAGS.json, rows, not_run=not_run)
  if not_run:
    print(f"--time_budget_s={FLAGS.time_budget_s:g} reached: {not_run} case(s) not run")


if __name__ == "__main__":
  app.run(main)
