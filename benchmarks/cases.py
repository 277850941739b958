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
from flax import nnx
import jax.numpy as jnp
import numpy as np

import normzoo

MODES = ("fwd", "fwd+bwd", "vjp")


# flax's own layer for each core norm (flax has no research variants: those
# are timed against the layer they replace, BatchNorm).
FLAX_LINEN = {"batch": nn.BatchNorm, "layer": nn.LayerNorm, "group": nn.GroupNorm,
              "instance": nn.InstanceNorm, "rms": nn.RMSNorm}
FLAX_NNX = {"batch": nnx.BatchNorm, "layer": nnx.LayerNorm, "group": nnx.GroupNorm,
            "instance": nnx.InstanceNorm, "rms": nnx.RMSNorm}


def _kwargs(name: str, x_ndim: int) -> dict:
  """Arguments given to both implementations of a core norm."""
  if name == "batch":
    return dict(momentum=0.9)
  if name == "layer":
    # Explicit on both sides: the registry's "layer" reduces every non-batch
    # axis, flax's default only the channels.
    return dict(reduction_axes=(1, 2, 3) if x_ndim == 4 else -1)
  if name == "group":
    return dict(num_groups=32)
  return {}


def modules(name: str, x_ndim: int, api: str = "linen"):
  """(ours, theirs, kwargs for both) for a benchmark name; ours comes from the registry.

  ``api``: ``"linen"`` (normzoo vs flax.linen) or ``"nnx"`` (normzoo.nnx vs flax.nnx).
  """
  registry = normzoo.NORMS if api == "linen" else normzoo.nnx.NORMS
  flax_table = FLAX_LINEN if api == "linen" else FLAX_NNX
  base = PALLAS.get(name, name)
  if base in VARIANTS:
    return functools.partial(registry[base], **VARIANTS[base]), flax_table["batch"], {}
  if base not in flax_table:
    raise ValueError(f"unknown benchmark norm {name!r}")
  ours = registry[base]
  if name in PALLAS:
    ours = functools.partial(ours, implementation="pallas")
  return ours, flax_table[base], _kwargs(base, x_ndim)


def nnx_modules(name: str, x_ndim: int):
  """:func:`modules` in flax.nnx form: normzoo.nnx vs flax.nnx."""
  return modules(name, x_ndim, api="nnx")


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


def nnx_program(module_cls, kwargs, x, mode: str, train: bool) -> tuple[Callable, tuple]:
  """:func:`jax_program` for an nnx module class, jitted with ``nnx.jit``.

  The module is an argument (its state goes in and the updated statistics
  come back, as in an nnx training step); autodiff runs on the split state.
  """
  from normzoo.nnx.registry import uses_batch_statistics
  is_bn = uses_batch_statistics(module_cls)  # also right for flax.nnx's classes
  extra = {"use_running_average": not train} if is_bn else {}
  module = module_cls(x.shape[-1], **kwargs, **extra, rngs=nnx.Rngs(0))

  def pure(x, graphdef, state):
    # copy=True: fresh Variables at the trace level of the autodiff transform
    # (merging the caller's own would mutate them from inside it).
    m = nnx.merge(graphdef, state, copy=True)
    return m(x), nnx.state(m)

  if mode == "fwd":
    return nnx.jit(lambda x, m: m(x)), (x, module)
  if mode == "vjp":
    graphdef, state = nnx.split(module)
    out = jax.eval_shape(lambda x, state: pure(x, graphdef, state)[0], x, state)
    ct = jax.random.normal(jax.random.PRNGKey(1), out.shape, out.dtype)

    @nnx.jit
    def with_cotangent(x, m, ct):
      graphdef, state = nnx.split(m)
      # The state's cotangent is unused and XLA removes it.
      y, pull, new_state = jax.vjp(lambda x, s: pure(x, graphdef, s), x, state, has_aux=True)
      nnx.update(m, new_state)
      return y, pull(ct)[0]
    return with_cotangent, (x, module, ct)
  if mode == "fwd+bwd":
    @nnx.jit
    def grad(x, m):
      graphdef, state = nnx.split(m)

      def loss(x, state):
        y, new_state = pure(x, graphdef, state)
        return jnp.sum(jnp.square(y.astype(jnp.float32))), new_state
      dx, new_state = jax.grad(loss, has_aux=True)(x, state)
      nnx.update(m, new_state)
      return dx
    return grad, (x, module)
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
