"""Name -> module constructor registry for normalizers.

Models and configs refer to normalizers by name (``config.norm='group'``);
:func:`get_norm` turns the name into a ``functools.partial`` of a linen module
class, with any keyword overrides bound, so a model can build as many
instances as it needs: ``norm = get_norm('group', num_groups=8); norm()(x)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn

from normzoo.norms import modules, variants

NormConstructor = Callable[..., nn.Module]

NORMS: dict[str, NormConstructor] = {
    "batch": modules.BatchNorm,
    # "layer" is layer norm as convolutional nets use it (Ba et al.; the GN
    # paper's LN): per example over every non-batch axis. flax.linen's
    # LayerNorm default, channels only, is get_norm("layer", reduction_axes=-1).
    "layer": functools.partial(modules.LayerNorm, reduction_axes=None),
    "group": modules.GroupNorm,
    "instance": modules.InstanceNorm,
    "none": modules.Identity,
    # Research variants (normzoo.norms.variants).
    "batch_renorm": variants.BatchRenorm,
    "ghost_batch": variants.GhostBatchNorm,
    "frn": variants.FilterResponseNorm,
    "evonorm_b0": variants.EvoNormB0,
    "evonorm_s0": variants.EvoNormS0,
    "rms": variants.RMSNorm,
    "switchable": variants.SwitchableNorm,
    "batch_frozen": variants.FrozenBatchNorm,
}


def available_norms() -> list[str]:
  """Sorted names accepted by :func:`get_norm`."""
  return sorted(NORMS)


def register_norm(name: str, constructor: NormConstructor) -> None:
  """Adds ``constructor`` under ``name``; refuses to silently replace one."""
  if name in NORMS and NORMS[name] is not constructor:
    raise ValueError(f"norm name {name!r} is already registered to {NORMS[name]!r}")
  NORMS[name] = constructor


def lookup(table: dict[str, Any], name: str, kind: str = "norm") -> Any:
  """``table[name]``; ValueError listing the valid names otherwise.

  Shared by the linen and nnx registries of norms and convolutions, so both
  APIs give the same message.
  """
  if name not in table:
    raise ValueError(f"unknown {kind} {name!r}; valid names are: {', '.join(sorted(table))}")
  return table[name]


def check_overrides(name: str, overrides: dict[str, Any], accepted: set[str],
                    kind: str = "norm") -> None:
  """ValueError naming the keyword arguments of ``overrides`` not in ``accepted``."""
  unknown = sorted(set(overrides) - accepted)
  if unknown:
    raise ValueError(
        f"{kind} {name!r} does not accept argument(s) {unknown}; "
        f"it accepts: {', '.join(sorted(accepted))}")


def get_norm(name: str, **overrides: Any) -> functools.partial:
  """Returns ``partial(ModuleClass, **overrides)`` for the normalizer ``name``.

  Raises:
    ValueError: ``name`` is not registered (the message lists valid names), or
      an override is not a field of the module.
  """
  constructor = lookup(NORMS, name)
  check_overrides(name, overrides, module_fields(constructor) - {"parent", "name"})
  return functools.partial(constructor, **overrides)


def module_fields(constructor: NormConstructor) -> set[str]:
  """Dataclass field names of a linen module class or a partial of one."""
  target = constructor
  while isinstance(target, functools.partial):
    target = target.func
  if dataclasses.is_dataclass(target):
    return {f.name for f in dataclasses.fields(target)}
  return set()


def uses_batch_statistics(constructor: NormConstructor) -> bool:
  """Whether the normalizer's output depends on other examples of the batch.

  Such normalizers (batch norm and its variants) take ``use_running_average``
  and an ``axis_name`` to share statistics across devices; per-example ones
  (layer, group, instance) do not need either.
  """
  return "use_running_average" in module_fields(constructor)
