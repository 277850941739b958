"""``normzoo:NAME``: the configs and sweeps shipped inside the package.

The repository's ``configs/`` directory installs as :mod:`normzoo.configs`,
so an installed normzoo (no clone) can run the shipped experiments:
``normzoo-train --config=normzoo:fashion_mnist`` or
``normzoo-sweep --sweep=normzoo:steps_to_target`` (``sweeps/`` is implied
for ``--sweep``). A reference is
rewritten to the packaged file's path before the flags are parsed; any
other value is a path, as before.
"""

import importlib.resources
import os
from collections.abc import Sequence

PREFIX = "normzoo:"
REFERENCE_FLAGS = ("config", "sweep")


def packaged() -> dict[str, str]:
  """``{name: path}`` of every shipped config file, e.g. ``"sweeps/batch_size"``."""
  root = importlib.resources.files("normzoo.configs")
  found = {}
  for sub in ("", "sweeps/"):
    directory = root.joinpath(sub) if sub else root
    for entry in directory.iterdir():
      name = entry.name
      if name.endswith(".py") and not name.startswith("_") and name != "common.py":
        found[sub + name[:-3]] = os.fspath(entry)
  return dict(sorted(found.items()))


def resolve(value: str, flag: str = "config") -> str:
  """The file path ``value`` names: a ``normzoo:NAME`` reference, or ``value`` itself."""
  if not value.startswith(PREFIX):
    return value
  requested = value[len(PREFIX):].removesuffix(".py")
  files = packaged()
  name = requested
  if flag == "sweep" and name not in files:  # --sweep=normzoo:batch_size means the sweep
    name = "sweeps/" + name.removeprefix("sweeps/")
  if name not in files:
    kind = "sweep" if flag == "sweep" else "config"
    valid = [n.removeprefix("sweeps/") for n in files
             if n.startswith("sweeps/") == (kind == "sweep")]
    raise ValueError(f"--{flag}={value}: normzoo ships no {kind} named {requested!r}; "
                     f"valid: {', '.join(PREFIX + n for n in valid)}")
  return files[name]


def resolve_argv(argv: Sequence[str]) -> list[str]:
  """``argv`` with ``--config=normzoo:NAME`` (or ``--config normzoo:NAME``) as paths."""
  out = list(argv)
  for i, arg in enumerate(out):
    for flag in REFERENCE_FLAGS:
      if arg.startswith(f"--{flag}="):
        out[i] = f"--{flag}=" + resolve(arg.split("=", 1)[1], flag)
      elif arg == f"--{flag}" and i + 1 < len(out):
        out[i + 1] = resolve(out[i + 1], flag)
  return out
