"""Interleaved wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax
import numpy as np


def calls_per_sample(requested: int = 0) -> int:
  """``requested``, or by default 20 calls per timed sample on GPU and 1 elsewhere.

  One call of a large normalizer takes tens of microseconds on a GPU, and
  Python's dispatch would otherwise be timed with it.
  """
  return requested or (20 if jax.default_backend() == "gpu" else 1)


def block(out) -> None:
  """Waits for every array in ``out`` (JAX arrays and CUDA torch tensors)."""
  for leaf in jax.tree.leaves(out):  # (y, dx) in vjp mode; torch tensors are leaves too
    if hasattr(leaf, "block_until_ready"):
      leaf.block_until_ready()
    elif getattr(leaf, "is_cuda", False):
      import torch
      torch.cuda.synchronize()


def time_interleaved(fns: dict[str, Callable], repeats: int, warmup: int = 10,
                     calls: int = 1) -> dict[str, float]:
  """Median seconds per call for each function, repetitions interleaved.

  Each sample times ``calls`` calls in a row and blocks on the last one
  only, so that on an accelerator the calls queue up behind each other.

  The warm-up rounds also let the host heap grow to its steady size: with
  the allocator tuned, the first ~20 calls of a large case still
  page-fault fresh heap memory in, and would otherwise be timed.
  """
  for _ in range(warmup):
    for fn in fns.values():
      block(fn())
  samples = {k: [] for k in fns}
  order = list(fns)
  rng = np.random.default_rng(0)
  for _ in range(repeats):
    rng.shuffle(order)  # no implementation always runs right after the same other one
    for k in order:
      fn = fns[k]
      start = time.perf_counter()
      for _ in range(calls - 1):
        fn()
      block(fn())
      samples[k].append((time.perf_counter() - start) / calls)
  return {k: statistics.median(v) for k, v in samples.items()}
