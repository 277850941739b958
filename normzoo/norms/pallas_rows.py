"""Pallas (Triton) kernels for normalizing over the last axis: layer norm and RMS norm.

``x`` of shape ``(..., C)`` is viewed as ``R`` rows of ``C`` features. Each
kernel instance loads a block of whole rows into registers, so the
statistics and the output cost one read and one write of ``x``:

* forward: ``y = (x - mean) * inv * scale + bias`` with ``mean`` and
  ``inv = 1 / sqrt(var + epsilon)`` per row, the variance centred (two
  passes over the registers, exact for any mean); RMS norm:
  ``y = x * inv * scale`` with ``inv = 1 / sqrt(mean(x^2) + epsilon)``,
  computed on ``x`` scaled by an exact power of two so that ``x^2`` cannot
  overflow (as :func:`normzoo.rms_norm` does).
* backward, with ``x_hat = (x - mean) * inv`` (RMS: ``x * inv``) and
  ``g = dy * scale``: ``dx = inv * (g - x_hat * mean(g * x_hat) - mean(g))``
  (RMS: without ``mean(g)``), one read of ``x`` and ``dy`` and one write
  of ``dx``. Each kernel instance also sums ``dy * x_hat`` and ``dy`` over
  its rows; XLA adds those per-block partial sums up into ``dscale`` and
  ``dbias``.

Only ``x`` and two float32 numbers per row (layer norm: ``mean`` and
``inv``; RMS norm: the scaling and ``inv`` of the scaled row) are saved for
the backward. Higher-order derivatives are refused by name. Statistics are
float32 for any input dtype (bf16, fp16).

These are GPU kernels (Pallas' Triton backend). ``interpret=True`` runs the
same kernel in the Pallas interpreter on any backend, which is how the
tests check it against the XLA path on CPU. Without a GPU and without
``interpret``, the functions refuse rather than fall back, so a run never
silently measures something other than it asked for.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from normzoo.norms import _checks
from normzoo.norms._checks import output_dtype
from normzoo.norms.normalize import varying_axes

Array = jax.Array

__all__ = ["IMPLEMENTATIONS", "MAX_FEATURES", "uses_pallas", "pallas_layer_norm",
           "pallas_rms_norm"]

# What the LayerNorm and RMSNorm modules' ``implementation`` field takes.
IMPLEMENTATIONS = ("xla", "pallas")

# A row lives in registers: beyond 16384 float32 features Triton spills.
MAX_FEATURES = 16384
# Elements one kernel instance holds per array: enough rows per instance to
# keep the loads wide when C is small, few enough to stay in registers.
_FORWARD_BLOCK_ELEMENTS = 4096
_BACKWARD_BLOCK_ELEMENTS = 4096
# Rows one backward instance walks through (in blocks), accumulating its
# partial parameter gradients: the partial sums then take 1/32 of x's size
# at most. Fewer when that would leave fewer instances than _MIN_INSTANCES
# (about two per multiprocessor of a current GPU). Chosen without a GPU to
# measure on: benchmarks/pallas_tune.py times the alternatives.
_BACKWARD_SPAN_ROWS = 32
_MIN_INSTANCES = 256
# Warps per kernel instance: one per 256 elements of its block, at most this.
_MAX_WARPS = 8


class _Config(NamedTuple):
  """Static description of one call (hashable: the custom VJP's nondiff argument)."""
  centered: bool  # layer norm (True) or RMS norm (False)
  epsilon: float
  out_dtype: Any
  has_scale: bool
  has_bias: bool
  interpret: bool


def _pow2_at_least(n: int) -> int:
  return 1 << max(n - 1, 0).bit_length()


def _layout(rows: int, features: int, block_elements: int) -> tuple[int, int]:
  """``(block_rows, padded_features)``, both powers of two, as Triton requires."""
  padded = _pow2_at_least(features)
  block_rows = max(1, min(_pow2_at_least(rows), block_elements // padded))
  return block_rows, padded


def _backward_layout(rows: int, features: int) -> tuple[int, int, int]:
  """``(block_rows, padded_features, sub_blocks)``: an instance walks ``sub_blocks`` blocks."""
  block_rows, padded = _layout(rows, features, _BACKWARD_BLOCK_ELEMENTS)
  sub_blocks = max(1, min(_BACKWARD_SPAN_ROWS // block_rows,
                          rows // (block_rows * _MIN_INSTANCES)))
  return block_rows, padded, sub_blocks


def _num_warps(block_rows: int, padded: int) -> int:
  return max(1, min(_MAX_WARPS, block_rows * padded // 256))


def _valid(first_row, block_rows: int, padded: int, rows: int, features: int) -> Array:
  row = first_row + lax.broadcasted_iota(jnp.int32, (block_rows, padded), 0)
  col = lax.broadcasted_iota(jnp.int32, (block_rows, padded), 1)
  return (row < rows) & (col < features)


def _row_stats(x: Array, valid: Array, config: _Config, features: int) -> tuple[Array, Array]:
  """Per-row ``(mean, inv)`` of a float32 block; RMS norm: ``(s, inv_s)``, ``1/rms = s * inv_s``."""
  if config.centered:
    mean = jnp.sum(x, axis=1, keepdims=True) / features
    xc = jnp.where(valid, x - mean, 0.0)
    var = jnp.sum(xc * xc, axis=1, keepdims=True) / features
    return mean, lax.rsqrt(var + config.epsilon)
  # Scaling by s = 2^-k, the power of two that brings max|x| below 2 (k >= 0,
  # so rows with max|x| < 1 are untouched), keeps every square < 4: no
  # overflow for |x| > 1.8e19, and the scaling itself is exact. k <= 126
  # keeps s a normal number; the two factors stay apart (RMS norm saves s
  # where layer norm saves the mean) because 1 / rms itself is subnormal,
  # flushed to zero, for rms > 8.5e37, while x * s * inv_s never is.
  amax = jnp.max(jnp.abs(x), axis=1, keepdims=True)
  exponent = (lax.bitcast_convert_type(amax, jnp.int32) >> 23) & 0xFF  # amax < 2^(e - 126)
  k = jnp.clip(exponent - 126, 0, 126)
  s = lax.bitcast_convert_type((127 - k) << 23, jnp.float32)
  xs = x * s
  mean_square = jnp.sum(xs * xs, axis=1, keepdims=True) / features
  return s, lax.rsqrt(mean_square + config.epsilon * s * s)


def _forward_kernel(*refs, config: _Config, rows: int, features: int, block_rows: int):
  refs = list(refs)
  x_ref = refs.pop(0)
  scale_ref = refs.pop(0) if config.has_scale else None
  bias_ref = refs.pop(0) if config.has_bias else None
  y_ref, mean_ref, inv_ref = refs
  padded = x_ref.shape[-1]
  first = pl.program_id(0) * block_rows
  valid = _valid(first, block_rows, padded, rows, features)
  x = plt.load(x_ref, mask=valid, other=0.0).astype(jnp.float32)
  mean, inv = _row_stats(x, valid, config, features)
  y = (x - mean) * inv if config.centered else (x * mean) * inv
  cols = lax.broadcasted_iota(jnp.int32, (padded,), 0) < features
  if scale_ref is not None:
    y = y * plt.load(scale_ref, mask=cols, other=0.0).astype(jnp.float32)[None, :]
  if bias_ref is not None:
    y = y + plt.load(bias_ref, mask=cols, other=0.0).astype(jnp.float32)[None, :]
  plt.store(y_ref, y.astype(y_ref.dtype), mask=valid)
  row_ok = first + lax.broadcasted_iota(jnp.int32, (block_rows,), 0) < rows
  plt.store(mean_ref, mean[:, 0], mask=row_ok)
  plt.store(inv_ref, inv[:, 0], mask=row_ok)


def _backward_kernel(*refs, config: _Config, rows: int, features: int, block_rows: int,
                     sub_blocks: int):
  refs = list(refs)
  x_ref, gy_ref, mean_ref, inv_ref = refs[:4]
  scale_ref = refs[4] if config.has_scale else None
  dx_ref, dscale_ref, dbias_ref = refs[4 + config.has_scale:]
  padded = x_ref.shape[-1]
  cols = lax.broadcasted_iota(jnp.int32, (padded,), 0) < features
  scale = (None if scale_ref is None else
           plt.load(scale_ref, mask=cols, other=0.0).astype(jnp.float32)[None, :])
  block_first = pl.program_id(0) * block_rows * sub_blocks

  def step(k, sums):
    part_scale, part_bias = sums
    first = block_first + k * block_rows
    valid = _valid(first, block_rows, padded, rows, features)
    row_ok = first + lax.broadcasted_iota(jnp.int32, (block_rows,), 0) < rows
    sl = pl.ds(k * block_rows, block_rows)
    x = plt.load(x_ref.at[sl], mask=valid, other=0.0).astype(jnp.float32)
    gy = plt.load(gy_ref.at[sl], mask=valid, other=0.0).astype(jnp.float32)
    inv = plt.load(inv_ref.at[sl], mask=row_ok, other=0.0)[:, None]
    if config.centered:
      mean = plt.load(mean_ref.at[sl], mask=row_ok, other=0.0)[:, None]
      x_hat = jnp.where(valid, (x - mean) * inv, 0.0)
    else:
      s = plt.load(mean_ref.at[sl], mask=row_ok, other=1.0)[:, None]
      x_hat = (x * s) * inv
    g = gy if scale is None else gy * scale
    c = jnp.sum(g * x_hat, axis=1, keepdims=True) / features
    dx = g - x_hat * c
    if config.centered:
      dx = (dx - jnp.sum(g, axis=1, keepdims=True) / features) * inv
    else:
      dx = (dx * inv) * s
    plt.store(dx_ref.at[sl], dx.astype(dx_ref.dtype), mask=valid)
    return part_scale + jnp.sum(gy * x_hat, axis=0), part_bias + jnp.sum(gy, axis=0)

  zeros = jnp.zeros((padded,), jnp.float32)
  part_scale, part_bias = lax.fori_loop(0, sub_blocks, step, (zeros, zeros))
  plt.store(dscale_ref, part_scale[None, :], mask=cols[None, :])
  plt.store(dbias_ref, part_bias[None, :], mask=cols[None, :])


def _as_rows(a: Array) -> Array:
  return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _forward_call(x, scale, bias, config: _Config):
  rows, features = math.prod(x.shape[:-1]), x.shape[-1]
  block_rows, padded = _layout(rows, features, _FORWARD_BLOCK_ELEMENTS)
  row_block = pl.BlockSpec((block_rows, padded), lambda i: (i, 0))
  stat_block = pl.BlockSpec((block_rows,), lambda i: (i,))
  param_block = pl.BlockSpec((padded,), lambda i: (0,))
  params = [p for p in (scale, bias) if p is not None]
  kernel = functools.partial(_forward_kernel, config=config, rows=rows, features=features,
                             block_rows=block_rows)
  y, mean, inv = pl.pallas_call(
      kernel, grid=(pl.cdiv(rows, block_rows),),
      in_specs=[row_block] + [param_block] * len(params),
      out_specs=[row_block, stat_block, stat_block],
      out_shape=[jax.ShapeDtypeStruct((rows, features), config.out_dtype),
                 jax.ShapeDtypeStruct((rows,), jnp.float32),
                 jax.ShapeDtypeStruct((rows,), jnp.float32)],
      compiler_params=plt.CompilerParams(num_warps=_num_warps(block_rows, padded), num_stages=1),
      interpret=config.interpret, name="normzoo_rows_forward",
  )(_as_rows(x), *params)
  return y.reshape(x.shape), mean, inv


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _backward_call(x, gy, mean, inv, scale, config: _Config):
  rows, features = math.prod(x.shape[:-1]), x.shape[-1]
  block_rows, padded, sub_blocks = _backward_layout(rows, features)
  span = block_rows * sub_blocks
  blocks = pl.cdiv(rows, span)
  row_block = pl.BlockSpec((span, padded), lambda i: (i, 0))
  stat_block = pl.BlockSpec((span,), lambda i: (i,))
  partial_block = pl.BlockSpec((1, padded), lambda i: (i, 0))
  params = [] if scale is None else [scale]
  kernel = functools.partial(_backward_kernel, config=config, rows=rows, features=features,
                             block_rows=block_rows, sub_blocks=sub_blocks)
  dx, part_scale, part_bias = pl.pallas_call(
      kernel, grid=(blocks,),
      in_specs=[row_block, row_block, stat_block, stat_block]
      + [pl.BlockSpec((padded,), lambda i: (0,))] * len(params),
      out_specs=[row_block, partial_block, partial_block],
      out_shape=[jax.ShapeDtypeStruct((rows, features), x.dtype),
                 jax.ShapeDtypeStruct((blocks, features), jnp.float32),
                 jax.ShapeDtypeStruct((blocks, features), jnp.float32)],
      compiler_params=plt.CompilerParams(num_warps=_num_warps(block_rows, padded), num_stages=1),
      interpret=config.interpret, name="normzoo_rows_backward",
  )(_as_rows(x), _as_rows(gy), mean, inv, *params)
  return dx.reshape(x.shape), part_scale.sum(axis=0), part_bias.sum(axis=0)


def _refuse_second_order(config: _Config, primals, tangents):
  # Differentiating the gradient differentiates both kernels (the forward
  # for its saved statistics); without this it fails with a bare
  # AssertionError from inside pallas_call's own differentiation rules.
  name = "pallas_layer_norm" if config.centered else "pallas_rms_norm"
  raise NotImplementedError(
      f"{name}: the Pallas kernels are not differentiable twice (grad of grad, a Hessian); "
      f"use implementation='xla' for second-order derivatives")


_forward_call.defjvp(_refuse_second_order)
_backward_call.defjvp(_refuse_second_order)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _rows_normalize(x, scale, bias, config: _Config):
  return _forward_call(x, scale, bias, config)[0]


def _rows_forward(x, scale, bias, config: _Config):
  y, mean, inv = _forward_call(x, scale, bias, config)
  return y, (x, scale, bias, mean, inv)


def _rows_backward(config: _Config, residuals, gy):
  x, scale, bias, mean, inv = residuals
  dx, dscale, dbias = _backward_call(x, gy, mean, inv, scale, config)
  return (dx,
          None if scale is None else dscale.astype(scale.dtype),
          None if bias is None else dbias.astype(bias.dtype))


_rows_normalize.defvjp(_rows_forward, _rows_backward)


def _check(x: Array, params: dict[str, Array | None], epsilon: float, interpret: bool,
           name: str) -> None:
  _checks.check_epsilon(epsilon)
  if x.ndim < 1:
    raise ValueError(f"{name}: x must have a feature axis; got a scalar")
  features = x.shape[-1]
  if not 1 <= features <= MAX_FEATURES:
    raise ValueError(
        f"{name}: x.shape[-1] = {features} features; the Pallas kernel holds a row in "
        f"registers and takes 1 to {MAX_FEATURES}. Use implementation='xla' for wider rows")
  for pname, p in params.items():
    _checks.check_feature_params(pname, p, (features,))
  varying = varying_axes(x)
  if varying:
    raise ValueError(
        f"{name}: x varies over the shard_map axes {sorted(varying)} (check_vma=True), and the "
        f"Pallas kernel's outputs are not typed for that; use shard_map(..., check_vma=False) "
        f"or implementation='xla'")
  spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
  if spec is not None and any(p is not None for p in spec):
    raise ValueError(
        f"{name}: x is sharded as {spec} under an explicit mesh, and XLA cannot partition a "
        f"Pallas kernel; call it inside shard_map (one device's rows each) or use "
        f"implementation='xla'")
  if not interpret and jax.default_backend() != "gpu":
    raise ValueError(
        f"{name}: implementation='pallas' runs a Triton kernel and needs a GPU; the default "
        f"backend is {jax.default_backend()!r}. Use implementation='xla', or interpret=True "
        f"to run the kernel in the Pallas interpreter (for testing)")


def pallas_layer_norm(x: Array, scale: Array | None = None, bias: Array | None = None, *,
                      epsilon: float = 1e-6, dtype: Any = None, interpret: bool = False) -> Array:
  """Layer norm over the last axis as one Pallas kernel (forward and backward).

  ``x``: ``(..., C)``; ``scale``, ``bias``: ``(C,)`` or None. Same result as
  :func:`normzoo.layer_norm` with ``reduction_axes=feature_axes=-1`` up to
  float32 rounding; output dtype ``dtype`` or the promotion of the inputs.
  """
  _check(x, {"scale": scale, "bias": bias}, epsilon, interpret, "pallas_layer_norm")
  config = _Config(True, float(epsilon), output_dtype(dtype, x, scale, bias),
                   scale is not None, bias is not None, bool(interpret))
  if x.size == 0:  # no rows: a grid of zero kernel instances does not launch
    return jnp.zeros(x.shape, config.out_dtype)
  return _rows_normalize(x, scale, bias, config)


def pallas_rms_norm(x: Array, scale: Array | None = None, *, epsilon: float = 1e-6,
                    dtype: Any = None, interpret: bool = False) -> Array:
  """RMS norm over the last axis as one Pallas kernel (forward and backward).

  ``x``: ``(..., C)``; ``scale``: ``(C,)`` or None. Same result as
  :func:`normzoo.rms_norm` with ``reduction_axes=feature_axes=-1`` up to
  float32 rounding, overflow-free for any finite ``x``.
  """
  _check(x, {"scale": scale}, epsilon, interpret, "pallas_rms_norm")
  config = _Config(False, float(epsilon), output_dtype(dtype, x, scale),
                   scale is not None, False, bool(interpret))
  if x.size == 0:
    return jnp.zeros(x.shape, config.out_dtype)
  return _rows_normalize(x, scale, None, config)


def uses_pallas(implementation: str, x: Array, reduction_axes: Any, feature_axes: Any,
                axis_name: Any, mask: Array | None, name: str) -> bool:
  """Whether a module with ``implementation`` runs the Pallas kernel on this call.

  ``"xla"``: no. ``"pallas"``: yes, if the call fits the kernel (each row
  normalized over the last axis, on one device, unmasked); a call that does
  not fit raises a ValueError naming the argument rather than silently
  running the XLA path.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"{name}: implementation={implementation!r}; valid: "
                     f"{', '.join(map(repr, IMPLEMENTATIONS))}")
  if implementation == "xla":
    return False
  last = (x.ndim - 1,)
  for arg, axes in (("reduction_axes", reduction_axes), ("feature_axes", feature_axes)):
    if _checks.canonical_axes(axes, x.ndim, arg, x.shape) != last:
      raise ValueError(f"{name}: implementation='pallas' normalizes over the last axis only; "
                       f"got {arg}={axes!r} for an input of shape {tuple(x.shape)}")
  if axis_name is not None:
    raise ValueError(f"{name}: implementation='pallas' computes per-device statistics; got "
                     f"axis_name={axis_name!r} (use implementation='xla' across devices)")
  if mask is not None:
    raise ValueError(f"{name}: implementation='pallas' takes no mask (use implementation='xla')")
  return True
