"""The benchmark cases shared by ``benchmarks.norms`` and ``benchmarks.variants``.

Which normalizers there are, the flax.linen layer each is timed against,
the random input of a shape, and the jitted program one timed call runs.
Flag-free, so that both scripts can import it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import normzoo

MODES = ("fwd", "fwd+bwd", "vjp")


def modules(name: str, x_ndim: int):
  """(ours, theirs, module kwargs for training mode) for a normalizer name."""
  conv_layout = x_ndim == 4
  if name == "batch":
    return normzoo.BatchNorm, nn.BatchNorm, dict(momentum=0.9)
  if name == "layer":
    axes = dict(reduction_axes=(1, 2, 3)) if conv_layout else {}
    return normzoo.LayerNorm, nn.LayerNorm, axes
  if name == "group":
    return normzoo.GroupNorm, nn.GroupNorm, dict(num_groups=32)
  if name == "instance":
    return normzoo.InstanceNorm, nn.InstanceNorm, {}
  if name == "rms":
    return normzoo.RMSNorm, nn.RMSNorm, {}
  if name in PALLAS:
    ours, theirs, kwargs = modules(PALLAS[name], x_ndim)
    return functools.partial(ours, implementation="pallas"), theirs, kwargs
  if name in VARIANTS:
    # flax.linen has no counterpart: timed against the layer they replace.
    return normzoo.get_norm(name, **VARIANTS[name]), nn.BatchNorm, {}
  raise ValueError(f"unknown benchmark norm {name!r}")


# The Pallas kernels (last axis only, GPU) and the norm each stands in for.
PALLAS = {"layer_pallas": "layer", "rms_pallas": "rms"}

# Research variants (4-d inputs only), with the arguments the sweeps use.
VARIANTS = {"batch_renorm": {"momentum": 0.9}, "ghost_batch": {"momentum": 0.9},
            "frn": {}, "evonorm_b0": {"momentum": 0.9}, "evonorm_s0": {"num_groups": 8},
            "switchable": {"momentum": 0.9}}

# Every name :func:`modules` knows.
NORMS = ("batch", "layer", "group", "instance", "rms", *PALLAS, *VARIANTS)


def jax_program(module_cls, kwargs, x, mode: str, train: bool) -> tuple[Callable, tuple]:
  """``(jitted, args)`` timing one implementation: ``jitted(*args)`` is one call.

  The variables are jit arguments, as in training: closing over them
  instead would make them compile-time constants, which XLA folds into the
  normalizer and fuses differently from a real step.
  """
  cls = getattr(module_cls, "func", module_cls)  # functools.partial from get_norm
  is_bn = "use_running_average" in {f.name for f in dataclasses.fields(cls)}
  module = module_cls(**kwargs, **({"use_running_average": not train} if is_bn else {}))
  variables = module.init(jax.random.PRNGKey(0), x)
  mutable = ["batch_stats"] if is_bn and train else False

  def forward(x, variables):
    out = module.apply(variables, x, mutable=mutable)
    return out[0] if mutable else out

  if mode == "fwd":
    return jax.jit(forward), (x, variables)
  if mode == "vjp":
    out = jax.eval_shape(forward, x, variables)
    ct = jax.random.normal(jax.random.PRNGKey(1), out.shape, out.dtype)

    def with_cotangent(x, variables, ct):
      y, pull = jax.vjp(lambda x: forward(x, variables), x)
      return y, pull(ct)[0]
    return jax.jit(with_cotangent), (x, variables, ct)
  if mode == "fwd+bwd":
    return (jax.jit(jax.grad(lambda x, v: jnp.sum(jnp.square(forward(x, v).astype(jnp.float32))))),
            (x, variables))
  raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")


@functools.lru_cache(maxsize=1)
def input_array(shape: tuple[int, ...]) -> np.ndarray:
  """The case's random input, kept while the next case has the same shape.

  Drawing 2^28 normals takes seconds: more than a GPU case spends timing.
  """
  x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  x.flags.writeable = False
  return x


def applies(name: str, shape: tuple[int, ...]) -> bool:
  """Whether the benchmark has a case for this normalizer at this shape."""
  if (name in ("batch", "group", "instance") or name in VARIANTS) and len(shape) != 4:
    return False
  if name == "group" and shape[-1] % 32:
    return False
  # Layer norm over (H, W, C) is not the Pallas kernel's last-axis layout.
  return not (name in PALLAS and len(shape) == 4)
