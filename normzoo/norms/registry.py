"""Name -> module constructor registry for normalizers.

Models and configs refer to normalizers by name (``config.norm='group'``);
:func:`get_norm` turns the name into a ``functools.partial`` of a linen module
class, with any keyword overrides bound, so a model can build as many
instances as it needs: ``norm = get_norm('group', num_groups=8); norm()(x)``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
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


def register_norm(name: str, constructor: NormConstructor | None = None) -> Any:
  """Adds ``constructor`` under ``name``; refuses to silently replace one.

  Also a decorator: ``@normzoo.register_norm("my_norm")`` above a module
  class registers it (and returns it unchanged), so a config file that
  defines its own normalizer can use ``config.norm = "my_norm"``.
  """
  return register(NORMS, name, constructor)


def register(table: dict[str, Any], name: str, constructor: Any = None, kind: str = "norm") -> Any:
  """``table[name] = constructor`` (a decorator when ``constructor`` is None); no silent replacing."""
  if constructor is None:
    return lambda constructor: register(table, name, constructor, kind)
  if not isinstance(name, str) or not name:
    raise ValueError(f"{kind} name must be a non-empty string; got {name!r}")
  if name in table and table[name] is not constructor:
    raise ValueError(f"{kind} name {name!r} is already registered to {table[name]!r}")
  table[name] = constructor
  return constructor


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


def get_norm(name: str | NormConstructor, **overrides: Any) -> functools.partial:
  """Returns ``partial(ModuleClass, **overrides)`` for the normalizer ``name``.

  ``name`` may also be a module class or a ``functools.partial`` of one (a
  normalizer of your own, unregistered); its overrides are checked the same way.

  Raises:
    ValueError: ``name`` is not registered (the message lists valid names), or
      an override is not a field of the module.
  """
  constructor = name if callable(name) else lookup(NORMS, name)
  label = name if isinstance(name, str) else getattr(_target(constructor), "__name__", name)
  check_overrides(label, overrides, module_fields(constructor) - {"parent", "name"})
  return functools.partial(constructor, **overrides)


def instantiate_norm(norm: NormConstructor, *, train: bool, dtype: Any = None,
                     name: str | None = None) -> nn.Module:
  """One layer's module from a normalizer constructor, as normzoo's models build them.

  Passes ``use_running_average=not train`` only to normalizers that take it
  (batch statistics) and ``dtype`` only to those with a ``dtype`` field;
  a keyword already bound in a partial wins, so
  ``get_norm("batch", use_running_average=True)`` stays frozen. Use it in
  your own models to accept any registry normalizer.
  """
  fields = module_fields(norm)
  bound = _bound_keywords(norm)
  kwargs: dict[str, Any] = {}
  if uses_batch_statistics(norm) and "use_running_average" not in bound:
    kwargs["use_running_average"] = not train
  if dtype is not None and "dtype" in fields and "dtype" not in bound:
    kwargs["dtype"] = dtype
  return norm(name=name, **kwargs)


def _target(constructor: Any) -> Any:
  while isinstance(constructor, functools.partial):
    constructor = constructor.func
  return constructor


def _bound_keywords(constructor: Any) -> set[str]:
  """Keywords fixed by (possibly nested) ``functools.partial``s."""
  bound: set[str] = set()
  while isinstance(constructor, functools.partial):
    bound |= set(constructor.keywords)
    constructor = constructor.func
  return bound


def module_fields(constructor: NormConstructor) -> set[str]:
  """Dataclass field names of a linen module class or a partial of one."""
  target = _target(constructor)
  if dataclasses.is_dataclass(target):
    return {f.name for f in dataclasses.fields(target)}
  return set()


def constructor_arguments(constructor: Callable[..., Any]) -> set[str]:
  """Keyword arguments of a class's ``__init__`` (or a partial's class), following ``**kwargs``
  to its bases: what an nnx module (not a dataclass) accepts."""
  target = _target(constructor)
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


def uses_batch_statistics(constructor: NormConstructor) -> bool:
  """Whether the normalizer's output depends on other examples of the batch.

  Such normalizers (batch norm and its variants) take ``use_running_average``
  and an ``axis_name`` to share statistics across devices; per-example ones
  (layer, group, instance) do not need either.
  """
  return "use_running_average" in module_fields(constructor)
