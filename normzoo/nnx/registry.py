"""Name -> flax.nnx class registry, under the same names as the linen registry.

``get_norm(name, num_features, rngs=rngs, **kw)`` builds a module; unknown
names and arguments raise the linen registry's errors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from flax import nnx

from normzoo.norms import registry as linen_registry
from normzoo.norms.registry import constructor_arguments
from normzoo.nnx import modules, variants

NnxConstructor = Callable[..., nnx.Module]

# The nnx class of each linen class, by class name (the two APIs use the same names).
_NNX_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (
        modules.BatchNorm, modules.LayerNorm, modules.GroupNorm, modules.InstanceNorm,
        modules.RMSNorm, modules.Identity, variants.BatchRenorm, variants.GhostBatchNorm,
        variants.FilterResponseNorm, variants.EvoNormB0, variants.EvoNormS0,
        variants.SwitchableNorm, variants.FrozenBatchNorm)}


def nnx_counterpart(constructor: Callable[..., Any]) -> NnxConstructor:
  """The nnx form of a linen registry entry: same class name, same bound keyword arguments.

  Raises:
    ValueError: the linen class has no nnx form in normzoo.
  """
  keywords: dict[str, Any] = {}
  target = constructor
  while isinstance(target, functools.partial):
    keywords = {**target.keywords, **keywords}
    target = target.func
  name = getattr(target, "__name__", repr(target))
  if name not in _NNX_CLASSES:
    raise ValueError(f"{name} has no flax.nnx form in normzoo.nnx; register one with "
                     f"normzoo.nnx.register_norm(name, constructor)")
  cls = _NNX_CLASSES[name]
  return functools.partial(cls, **keywords) if keywords else cls


# Derived from the linen registry, so both hold the same names and arguments.
NORMS: dict[str, NnxConstructor] = {
    name: nnx_counterpart(constructor) for name, constructor in linen_registry.NORMS.items()}

__all__ = ["NORMS", "available_norms", "constructor_arguments", "get_norm", "nnx_counterpart",
           "register_norm", "uses_batch_statistics"]


def available_norms() -> list[str]:
  """Sorted names accepted by :func:`get_norm`."""
  return sorted(NORMS)


def register_norm(name: str, constructor: NnxConstructor | None = None) -> Any:
  """Adds an nnx ``constructor`` under ``name`` (or decorates a class); no silent replacing."""
  return linen_registry.register(NORMS, name, constructor)


def get_norm(name: str | NnxConstructor, num_features: int, *, rngs: nnx.Rngs | None = None,
             **overrides: Any) -> nnx.Module:
  """The nnx normalizer ``name`` for ``num_features`` channels, built with ``overrides``.

  ``name`` may also be an nnx module class (or a partial of one).

  Raises:
    ValueError: unknown ``name`` or argument (the messages of
      :func:`normzoo.get_norm`).
  """
  constructor = name if callable(name) else linen_registry.lookup(NORMS, name)
  accepted = constructor_arguments(constructor) - {"num_features", "rngs"}
  label = name if isinstance(name, str) else getattr(
      getattr(constructor, "func", constructor), "__name__", repr(name))
  linen_registry.check_overrides(label, overrides, accepted)
  return constructor(num_features, rngs=rngs, **overrides)


def uses_batch_statistics(constructor: NnxConstructor) -> bool:
  """Whether the normalizer's output depends on other examples of the batch."""
  return "use_running_average" in constructor_arguments(constructor)
