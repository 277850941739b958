"""Name -> flax.nnx class registry, under the same names as the linen registry.

``get_norm(name, num_features, rngs=rngs, **kw)`` builds a module; unknown
names and arguments raise the linen registry's errors.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from flax import nnx

from normzoo.norms import registry as linen_registry
from normzoo.nnx import modules, variants

NnxConstructor = Callable[..., nnx.Module]

NORMS: dict[str, NnxConstructor] = {
    "batch": modules.BatchNorm,
    # As in the linen registry: per example over every non-batch axis.
    "layer": functools.partial(modules.LayerNorm, reduction_axes=None),
    "group": modules.GroupNorm,
    "instance": modules.InstanceNorm,
    "none": modules.Identity,
    "batch_renorm": variants.BatchRenorm,
    "ghost_batch": variants.GhostBatchNorm,
    "frn": variants.FilterResponseNorm,
    "evonorm_b0": variants.EvoNormB0,
    "evonorm_s0": variants.EvoNormS0,
    "rms": modules.RMSNorm,
    "switchable": variants.SwitchableNorm,
    "batch_frozen": variants.FrozenBatchNorm,
}

__all__ = ["NORMS", "available_norms", "constructor_arguments", "get_norm", "register_norm",
           "uses_batch_statistics"]


def available_norms() -> list[str]:
  """Sorted names accepted by :func:`get_norm`."""
  return sorted(NORMS)


def register_norm(name: str, constructor: NnxConstructor) -> None:
  """Adds an nnx ``constructor`` under ``name``; refuses to silently replace one."""
  if name in NORMS and NORMS[name] is not constructor:
    raise ValueError(f"norm name {name!r} is already registered to {NORMS[name]!r}")
  NORMS[name] = constructor


def constructor_arguments(constructor: NnxConstructor) -> set[str]:
  """Keyword arguments a class (or partial of one) accepts, following ``**kwargs`` to its bases."""
  target = constructor
  while isinstance(target, functools.partial):
    target = target.func
  names: set[str] = set()
  for cls in (target.__mro__ if inspect.isclass(target) else ()):
    init = cls.__dict__.get("__init__")
    if init is None:
      continue
    parameters = inspect.signature(init).parameters.values()
    names |= {p.name for p in parameters
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
      break
  return names


def get_norm(name: str, num_features: int, *, rngs: nnx.Rngs | None = None,
             **overrides: Any) -> nnx.Module:
  """The nnx normalizer ``name`` for ``num_features`` channels, built with ``overrides``.

  Raises:
    ValueError: unknown ``name`` or argument (the messages of
      :func:`normzoo.get_norm`).
  """
  constructor = linen_registry.lookup(NORMS, name)
  accepted = constructor_arguments(constructor) - {"num_features", "rngs"}
  linen_registry.check_overrides(name, overrides, accepted)
  return constructor(num_features, rngs=rngs, **overrides)


def uses_batch_statistics(constructor: NnxConstructor) -> bool:
  """Whether the normalizer's output depends on other examples of the batch."""
  return "use_running_average" in constructor_arguments(constructor)
