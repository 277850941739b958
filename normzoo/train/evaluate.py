"""Evaluation over a whole split, and on-device metric accumulation."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Sharding

from normzoo.data import Split, epoch_batches, prefetch_to_device
from normzoo.train.dispatch import InflightLimit, max_inflight_steps
from normzoo.train.state import TrainState

Metrics = dict[str, jax.Array]


@jax.jit
def accumulate(total: Metrics | None, new: Metrics) -> Metrics:
  """Adds metric sums on device (``finite`` is AND-ed), without a host round trip."""
  if total is None:
    return new
  return {k: (total[k] & new[k]) if k == "finite" else total[k] + new[k] for k in new}


def summarize(sums: Metrics) -> dict[str, Any]:
  """Host values: ``loss`` and ``accuracy`` (means over counted examples), ``count``, ``finite``."""
  host = {k: np.asarray(v) for k, v in sums.items()}
  count = float(host["count"])
  out = {"loss": float(host["loss_sum"]) / max(count, 1.0),
         "accuracy": float(host["correct"]) / max(count, 1.0), "count": int(count)}
  if "finite" in host:
    out["finite"] = bool(host["finite"]) and np.isfinite(out["loss"])
  return out


def evaluate(eval_step: Callable[..., Metrics], state: TrainState, split: Split,
             batch_size: int, sharding: Sharding, *, full_coverage: bool = True,
             seed: int = 0) -> dict[str, Any] | None:
  """Loss and accuracy of ``state`` on ``split``.

  Args:
    eval_step: from :func:`normzoo.train.step.make_eval_step`.
    full_coverage: ``True`` (running-statistics eval) pads the last batch and
      counts only real examples, so every example is evaluated exactly once.
      ``False`` (batch-statistics eval) drops the last partial batch, since
      padding would enter the batch statistics, and shuffles the split with
      a fixed seed so batches mix classes as training batches do.
    seed: the shuffle seed for ``full_coverage=False``.

  Returns:
    ``{'loss', 'accuracy', 'count'}``, or ``None`` when ``full_coverage`` is
    ``False`` and the split is smaller than one batch.
  """
  if not full_coverage and len(split) < batch_size:
    return None
  batches = epoch_batches(split, batch_size, seed=seed, epoch=0, shuffle=not full_coverage,
                          drop_remainder=not full_coverage, process_index=jax.process_index(),
                          process_count=jax.process_count())
  sums = None
  inflight = InflightLimit(max_inflight_steps(len(sharding.device_set)))
  for images, labels, mask in prefetch_to_device(batches, size=2, sharding=sharding):
    metrics = eval_step(state, images, labels, mask)
    inflight.add(metrics)
    sums = accumulate(sums, metrics)
  return summarize(sums)
