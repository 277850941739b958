"""Sweep files: a base config plus a list of overrides, one per run.

A sweep file is a Python file defining

* ``get_config()``: the base ``ml_collections.ConfigDict`` (usually a file of
  ``configs/`` with a few fields changed);
* ``get_sweep()``: a list of dicts of overrides, keys being config field
  names, dotted for nested fields (``"per_norm_kwargs.batch.momentum"``);
* optionally ``get_report()``: how to plot the sweep (see
  :mod:`normzoo.sweeps.report`): ``x`` (a swept field for the horizontal
  axis), ``series`` (a field drawn as one line each), ``logx`` (2 or 10) or
  ``xscale`` (any matplotlib scale, e.g. ``"logit"``), ``y``, ``title``
  and ``claim`` (the sentence the sweep tests).

:func:`grid` and :func:`zip_axes` build override lists; lists combine with
``+`` (concatenation) and :func:`product`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import ml_collections

Overrides = dict[str, Any]

# Fields that hold free-form dicts: a dotted key may create new entries below them.
OPEN_FIELDS = ("norm_kwargs", "model_kwargs", "per_norm_kwargs")


def grid(**axes: list[Any]) -> list[Overrides]:
  """Every combination of the given values (the first axis varies slowest)."""
  keys = list(axes)
  return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


def zip_axes(**axes: list[Any]) -> list[Overrides]:
  """Values taken together position by position; all lists must have one length."""
  lengths = {k: len(v) for k, v in axes.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"zip_axes needs lists of one length; got {lengths}")
  keys = list(axes)
  return [dict(zip(keys, values)) for values in zip(*axes.values())]


def product(*sweeps: list[Overrides]) -> list[Overrides]:
  """Every combination of one entry from each list, merged left to right."""
  return [{k: v for part in parts for k, v in part.items()} for parts in itertools.product(*sweeps)]


@dataclass(frozen=True)
class Sweep:
  """A loaded sweep file."""
  path: str
  base: ml_collections.ConfigDict
  overrides: list[Overrides]
  report: dict[str, Any] = field(default_factory=dict)

  def runs(self) -> list[tuple[str, Overrides]]:
    """``(run name, overrides)`` pairs with unique, readable names."""
    names: dict[str, int] = {}
    out = []
    for overrides in self.overrides:
      name = run_name(overrides)
      if name in names:
        raise ValueError(f"sweep {self.path} lists the same overrides twice: {overrides}")
      names[name] = 1
      out.append((name, overrides))
    return out


def load_sweep(path: str) -> Sweep:
  """Imports a sweep file and validates its overrides against the base config."""
  if not os.path.isfile(path):
    raise ValueError(f"sweep file {path!r} does not exist")
  root = os.getcwd()
  if root not in sys.path:  # sweep files may import modules of the working directory, as under python -m
    sys.path.insert(0, root)
  module_name = "normzoo_sweep_" + re.sub(r"\W", "_", os.path.abspath(path))
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for required in ("get_config", "get_sweep"):
    if not hasattr(module, required):
      raise ValueError(f"sweep file {path} must define {required}()")
  base = module.get_config()
  overrides = list(module.get_sweep())
  if not overrides:
    raise ValueError(f"sweep file {path}: get_sweep() returned no runs")
  for o in overrides:
    apply_overrides(base, o)  # fails early on a misspelled field
  report = dict(module.get_report()) if hasattr(module, "get_report") else {}
  return Sweep(path=path, base=base, overrides=overrides, report=report)


def apply_overrides(base: ml_collections.ConfigDict, overrides: Overrides
                    ) -> ml_collections.ConfigDict:
  """A copy of ``base`` with dotted ``overrides`` set; unknown fields are an error."""
  config = copy.deepcopy(base)
  config.unlock()
  for key, value in overrides.items():
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
      if part not in node:
        if not any(p in OPEN_FIELDS for p in parts[:depth + 1]):
          raise ValueError(f"override {key!r}: config has no field {'.'.join(parts[:depth + 1])!r}")
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    last = parts[-1]
    if last not in node and not any(p in OPEN_FIELDS for p in parts[:-1]):
      raise ValueError(f"override {key!r}: config has no field {key!r}")
    if isinstance(value, dict):
      value = ml_collections.ConfigDict(value)
    if last in node and node[last] is not None and not isinstance(value, ml_collections.ConfigDict):
      current = node[last]
      if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # ConfigDict refuses int -> float field assignments
      elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    node[last] = value
  return config


def _short(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:g}"
  if isinstance(value, (dict, ml_collections.ConfigDict)):
    value = dict(value)
    return "{" + ",".join(f"{k}={_short(v)}" for k, v in sorted(value.items())) + "}"
  if isinstance(value, (list, tuple)):
    return "[" + ",".join(_short(v) for v in value) + "]"
  return str(value)


def run_name(overrides: Overrides, max_len: int = 120) -> str:
  """A directory name that says what the run changed, e.g. ``norm=group,batch_size=8,seed=1``."""
  if not overrides:
    return "base"
  name = ",".join(f"{k}={_short(v)}" for k, v in overrides.items())
  name = re.sub(r"[^A-Za-z0-9._=,+\-\[\]{}]", "_", name)
  if len(name) > max_len:
    digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()
    name = name[:max_len - 9] + "~" + digest[:8]
  return name
