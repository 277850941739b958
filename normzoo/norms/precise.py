"""Precise batch-norm statistics (PreciseBN; Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

The exponential moving averages kept during training lag behind the weights
and weight recent batches more. PreciseBN replaces them, after training, with
the population statistics of each normalizer's input, measured with the
final weights over a number of training-mode batches.

Mechanism. Every batch-statistics linen module of normzoo calls
:func:`normzoo.norms.linen_support.record_batch_moments` in training mode. It does nothing (not even
tracing a reduction) unless the collection ``'batch_stats_raw'`` is mutable;
:func:`precise_batch_stats` makes it mutable, so each layer then stores
the mean and biased variance of its input over the (global, with
``axis_name``) batch under its own module path. Per layer, with batch ``b``
of ``n_b`` examples, mean ``m_b`` and variance ``v_b`` (law of total
variance, exact for any batch sizes)::

    mean = sum_b n_b m_b / N
    var  = sum_b n_b (v_b + (m_b - mean)^2) / N

accumulated on the host in float64 around the first batch's mean (so that
``|m_b - ref|`` is of the order of the spread, not of ``|mean|``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flax
import jax
import numpy as np
from flax import traverse_util

from normzoo.norms.linen_support import RAW_COLLECTION

Array = jax.Array

__all__ = ["precise_batch_stats"]


def _batch_size(batch: Any) -> int:
  leaves = jax.tree.leaves(batch)
  if not leaves or not np.ndim(leaves[0]):
    raise ValueError("precise_batch_stats: each batch must be an array (or a pytree of arrays) "
                     "with a leading batch axis")
  return int(np.shape(leaves[0])[0])


class _Accumulator:
  """Shifted float64 sums of ``n``, ``n (m - ref)`` and ``n (v + (m - ref)^2)`` per layer."""

  def __init__(self) -> None:
    self.total = 0.0
    self.ref: dict[tuple, np.ndarray] = {}
    self.s1: dict[tuple, np.ndarray] = {}
    self.s2: dict[tuple, np.ndarray] = {}

  def add(self, raw: dict[tuple, tuple[Array, Array]], weight: int) -> None:
    self.total += weight
    for path, (mean, var) in raw.items():
      mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
      ref = self.ref.setdefault(path, mean)
      d = mean - ref
      self.s1[path] = self.s1.get(path, 0.0) + weight * d
      self.s2[path] = self.s2.get(path, 0.0) + weight * (var + d * d)

  def result(self) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for path, ref in self.ref.items():
      offset = self.s1[path] / self.total
      out[path] = ref + offset, np.maximum(self.s2[path] / self.total - offset * offset, 0.0)
    return out


def _raw_by_layer(raw: Any) -> dict[tuple, tuple[Array, Array]]:
  flat = traverse_util.flatten_dict(flax.core.unfreeze(raw))
  return {path[:-1]: (value, flat[path[:-1] + ("var",)])
          for path, value in flat.items() if path[-1] == "mean"}


def precise_batch_stats(apply_fn: Callable[..., tuple[Any, Any]], variables: Any,
                        batches: Iterable[Any], *, num_batches: int | None = None,
                        jit: bool = True) -> dict[str, Any]:
  """Recomputes every normalizer's running statistics as population statistics.

  Args:
    apply_fn: ``apply_fn(variables, batch, mutable=collections) -> (output,
      updated_collections)`` running the model in TRAINING mode, e.g.
      ``functools.partial(model.apply, train=True)``. It may be a jitted or
      ``shard_map``-ed function; the recorded statistics must come back
      replicated (normalizers with ``axis_name`` already make them global).
    variables: ``{'params': ..., 'batch_stats': ..., ...}``; never modified.
    batches: iterable of inputs (arrays or pytrees whose first leaf has the
      batch axis first), e.g. training images without augmentation.
    num_batches: use at most this many batches (None: all of ``batches``).
    jit: wrap the forward pass in ``jax.jit``.

  Returns:
    A copy of ``variables`` whose ``batch_stats`` ``mean``/``var`` leaves (of
    every layer that recorded moments) hold the statistics over all batches,
    batches weighted by their size (``batch.shape[0]``). Layers keeping only
    a variance (EvoNorm-B0) get only ``var``; other leaves (step counters)
    are unchanged. The model's forward pass always uses the ORIGINAL
    ``variables``: each layer sees the activations of the trained network.

  Raises:
    ValueError: no batches, or no layer recorded statistics (the model has
      no normzoo batch-statistics normalizer, or ran in eval mode).
  """
  mutable = ["batch_stats", RAW_COLLECTION]

  def forward(v, batch):
    return apply_fn(v, batch, mutable=mutable)[1].get(RAW_COLLECTION, {})

  forward = jax.jit(forward) if jit else forward
  acc = _Accumulator()
  pending = None  # one batch in flight: dispatch the next before reading this one back
  for i, batch in enumerate(batches):
    if num_batches is not None and i >= num_batches:
      break
    current = (forward(variables, batch), _batch_size(batch))
    if pending is not None:
      acc.add(_raw_by_layer(pending[0]), pending[1])
    pending = current
  if pending is None:
    raise ValueError("precise_batch_stats got no batches")
  acc.add(_raw_by_layer(pending[0]), pending[1])
  if not acc.ref:
    raise ValueError(
        "precise_batch_stats: no layer recorded batch statistics. The model needs normzoo "
        "batch-statistics normalizers, and apply_fn must run it in training mode "
        "(e.g. functools.partial(model.apply, train=True)) and pass `mutable` through")

  variables = flax.core.unfreeze(variables)
  flat = traverse_util.flatten_dict(variables["batch_stats"])
  for path, (mean, var) in acc.result().items():
    found = False
    for key, value in (("mean", mean), ("var", var)):
      if path + (key,) in flat:
        old = flat[path + (key,)]
        flat[path + (key,)] = jax.numpy.asarray(value.reshape(np.shape(old)), old.dtype)
        found = True
    if not found:
      raise ValueError(f"precise_batch_stats: layer {'/'.join(path)} recorded statistics but has "
                       f"no 'mean'/'var' in variables['batch_stats']")
  return {**variables, "batch_stats": traverse_util.unflatten_dict(flat)}
