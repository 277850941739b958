"""Elementwise passes with per-channel operands, laid out so XLA:CPU vectorizes them.

``y = x * a + b`` with ``a``, ``b`` of shape (C,) broadcast along the minor
axis of an (N, H, W, C) array runs about 3x slower on XLA:CPU than a plain
copy when C is small (32 or 64): the loop emitter re-derives the channel
index per element. Viewing ``x`` as (M / k, k * C) and tiling the per-channel
operands k times to k * C >= 256 lanes removes that cost (measured:
3.3 ms -> 1.1 ms for 128x28x28x32 float32, the same as ``x * 2``). The
reshapes are free (row-major bitcasts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
MIN_LANES = 256


def _plan(x_shape: tuple[int, ...], small_shape: tuple[int, ...]) -> tuple[int, int] | None:
  """``(first axis of the broadcast run before the last axis, k)`` or None if not worth it."""
  c = x_shape[-1]
  if len(x_shape) < 2 or small_shape[-1] not in (1, c) or c >= MIN_LANES:
    return None
  start = len(x_shape) - 1
  while start > 0 and small_shape[start - 1] == 1:
    start -= 1
  run = math.prod(x_shape[start:-1])
  k = 1
  while k * c < MIN_LANES:
    k *= 2
  # Only when the operands vary along the last axis alone (batch norm's
  # layout): per-example statistics (instance/group norm) fuse better as they are.
  if start != 0 or run % k:
    return None
  return start, k


def per_channel_map(fn: Callable[..., Array], full: Sequence[Array], small: Sequence[Array]
                    ) -> Array:
  """``fn(*full, *small)`` for same-shape ``full`` arrays and broadcastable ``small`` ones.

  ``small`` arrays have ``full[0].ndim`` dimensions. The result has the shape
  of ``full[0]``; the values are exactly those of the direct expression.
  """
  x_shape = tuple(full[0].shape)
  small_shape = tuple(np.broadcast_shapes(*[s.shape for s in small]))
  plan = _plan(x_shape, small_shape)
  if plan is None:
    return fn(*full, *small)
  start, k = plan
  c = x_shape[-1]
  lead = x_shape[:start]
  wide_shape = lead + (math.prod(x_shape[start:-1]) // k, k * c)
  wide_full = [f.reshape(wide_shape) for f in full]
  wide_small = []
  for s in small:
    s = jnp.broadcast_to(s, small_shape[:start] + (1,) * (len(x_shape) - 1 - start) + (c,))
    s = s.reshape(small_shape[:start] + (1, c))
    wide_small.append(jnp.tile(s, (1,) * (start + 1) + (k,)))
  return fn(*wide_full, *wide_small).reshape(x_shape)
