"""One-line errors for bad command lines, and ``--config_help``.

absl and ml_collections report a misspelt ``--config.field``, a key added
to a locked config or a missing config file as a 40-55 line traceback. The
entry points parse their flags through :func:`run` instead, which turns any
flag error into one line on stderr naming the flag with the closest valid
names (difflib), and exits 1.
"""

import difflib
import importlib.util
import logging
import pathlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from normzoo.cli import references

# jax logs "Unable to initialize backend 'tpu'" at INFO while probing
# backends on CPU-only machines; it would precede every one-line error.
_QUIET_LOGGERS = ("jax._src.xla_bridge",)


def _closest(name: str, options: Sequence[str]) -> str:
  close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
  shown = close or sorted(options)[:8]
  label = "closest" if close else "valid"
  return f"{label}: {', '.join(shown)}" if shown else "it has no fields"


def _load_config(path: str) -> Any:
  """``get_config()`` of the config file at ``path`` (as config_flags loads it)."""
  spec = importlib.util.spec_from_file_location("_normzoo_config_check", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _config_file_error(path: str) -> str:
  p = pathlib.Path(path)
  siblings = sorted(str(q) for q in p.parent.glob("*.py")) if p.parent.is_dir() else []
  siblings = [s for s in siblings if not s.endswith("__init__.py")]
  return f"--config={path}: no such config file; {_closest(str(p), siblings)}"


def _override_error(config: Any, flag: str) -> str | None:
  """The message for the first path in ``--config.a.b=v`` that is not a field."""
  node, walked = config, "config"
  for key in flag.split("."):
    fields = list(node.keys()) if hasattr(node, "keys") else []
    if key not in fields:
      hint = _closest(key, fields)
      if not fields:  # a locked config takes no new keys: set the whole dict
        parent = walked.removeprefix("config").lstrip(".")
        hint = (f"{walked} is empty and locked; pass the whole dict instead: "
                f"--config.{parent}='{{\"{key}\": ...}}'")
      return f"--config.{flag}: {walked} has no field '{key}'; {hint}"
    node, walked = node[key], f"{walked}.{key}"
  return None


def explain_flag_error(argv: Sequence[str], error: BaseException) -> str:
  """One line describing why ``argv`` failed to parse with ``error``."""
  config_path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if config_path is not None:
    if not pathlib.Path(config_path).is_file():
      return _config_file_error(config_path)
    try:
      config = _load_config(config_path)
    except Exception as e:  # a broken config file: its own error, on one line
      return f"--config={config_path}: {type(e).__name__}: {e}".splitlines()[0]
    for arg in argv:
      m = re.match(r"--config\.([\w.]+)(=|$)", arg)
      if m and (msg := _override_error(config, m.group(1))):
        return msg
  if isinstance(error, flags.UnrecognizedFlagError):
    known = [f"--{n}" for n in flags.FLAGS]
    return f"unknown flag --{error.flagname}; {_closest('--' + error.flagname, known)}"
  return str(error).splitlines()[0] if str(error) else type(error).__name__


def _parse(argv: list[str]) -> list[str]:
  try:
    # config_flags defers a missing file's error to the first use of the
    # config (a traceback from inside the run): check it while parsing.
    for arg in argv[1:]:
      if arg.startswith("--config=") and not pathlib.Path(arg.split("=", 1)[1]).is_file():
        raise FileNotFoundError(arg)
    return flags.FLAGS(argv)
  except Exception as e:  # any parse failure is a user error: one line, exit 1
    print(f"error: {explain_flag_error(argv[1:], e)}", file=sys.stderr)
    sys.exit(1)


def config_help(path: str | pathlib.Path | None = None) -> str:
  """The documented fields of ``path`` (default: the shipped ``configs/default.py``):
  its docstring, section comments, and each ``c.field = default  # comment``
  line as ``field = default  # comment``."""
  path = path or references.resolve(references.PREFIX + "default")
  source = pathlib.Path(path).read_text()
  doc = re.match(r'\s*"""(.*?)"""', source, re.S)
  lines = [doc.group(1).strip(), "", "Fields (--config.<field>=VALUE):"] if doc else []
  for line in source.splitlines():
    stripped = line.strip()
    if stripped.startswith("c."):
      lines.append("  " + stripped[2:])
    elif stripped.startswith("#"):
      lines.append("  " + stripped)
  return "\n".join(lines)


def run(main: Callable[[list[str]], Any], doc: str | None = None) -> None:
  """``absl.app.run(main)`` with one-line flag errors, ``normzoo:NAME`` config
  references resolved, and a quiet backend probe.

  ``doc`` is the usage text ``--help`` prints (absl reads it from
  ``__main__``, which for a console script is the generated stub).
  """
  for name in _QUIET_LOGGERS:
    logging.getLogger(name).setLevel(logging.WARNING)
  if "--config_help" in sys.argv[1:]:
    print(config_help())
    sys.exit(0)
  try:
    sys.argv = references.resolve_argv(sys.argv)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  if doc:
    sys.modules["__main__"].__doc__ = doc
  app.run(main, flags_parser=_parse)
