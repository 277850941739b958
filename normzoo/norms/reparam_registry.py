"""Name -> wrapper registry for weight reparametrizations (spectral, weight norm).

Kept apart from :data:`normzoo.norms.registry.NORMS` because these wrap a
layer (``get_reparam("spectral")(nn.Dense(4))``) instead of normalizing
activations. ``get_reparam`` returns a ``functools.partial`` of the linen
class with the overrides bound; ``normzoo.nnx.get_reparam`` is the same over
the nnx classes, with the same errors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from normzoo.norms import reparam_modules
from normzoo.norms import registry
from normzoo.norms.registry import constructor_arguments, module_fields

REPARAMS: dict[str, Callable[..., Any]] = {
    "spectral": reparam_modules.SpectralNorm,  # Miyato et al. 2018
    "weight": reparam_modules.WeightNorm,      # Salimans & Kingma 2016
}


def available_reparams() -> list[str]:
  """Sorted names accepted by :func:`get_reparam`."""
  return sorted(REPARAMS)


def accepted_arguments(constructor: Callable[..., Any]) -> set[str]:
  """Dataclass fields of a linen class, else the keyword parameters of ``__init__`` (nnx)."""
  return (module_fields(constructor) - {"parent", "name"}) or constructor_arguments(constructor)


def lookup_reparam(table: dict[str, Callable[..., Any]], name: str,
                   overrides: dict[str, Any]) -> functools.partial:
  """``partial(table[name], **overrides)``; the norm registry's errors otherwise."""
  constructor = registry.lookup(table, name, kind="reparametrization")
  registry.check_overrides(name, overrides, accepted_arguments(constructor),
                           kind="reparametrization")
  return functools.partial(constructor, **overrides)


def get_reparam(name: str, **overrides: Any) -> functools.partial:
  """``partial(LinenClass, **overrides)`` for ``name`` in :data:`REPARAMS`.

  Usage: ``get_reparam("spectral", n_steps=2)(nn.Dense(4))(x, update_stats=True)``.

  Raises:
    ValueError: unknown ``name`` (the message lists valid names) or an
      override that is not a field of the module.
  """
  return lookup_reparam(REPARAMS, name, overrides)
