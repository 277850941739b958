"""Flag values the benchmarks parse themselves, refused with the flag's name."""

from __future__ import annotations

from absl import app


def parse_ints(flag: str, values: list[str], minimum: int = 1) -> list[int]:
  """``values`` as integers of at least ``minimum``, else a UsageError naming ``--flag``."""
  try:
    ints = [int(v) for v in values]
  except ValueError:
    ints = None
  if ints is None or any(i < minimum for i in ints):
    raise app.UsageError(f"--{flag}: expected integers >= {minimum}; got {','.join(values)}")
  return ints


def parse_shapes(flag: str, values: list[str]) -> list[tuple[int, ...]]:
  """'x'-separated shapes such as ``128x32x32x64``, else a UsageError naming ``--flag``."""
  shapes = []
  for value in values:
    try:
      shape = tuple(int(d) for d in value.split("x"))
    except ValueError:
      shape = ()
    if not shape or min(shape) < 1:
      raise app.UsageError(f"--{flag}: {value!r} is not a shape of positive sizes separated "
                           f"by 'x' (such as 128x32x32x64)")
    shapes.append(shape)
  return shapes


DTYPES = ("float32", "bfloat16", "float16")


def check_choices(flag: str, values: list[str], valid) -> list[str]:
  """``values`` if each is one of ``valid``, else a UsageError naming ``--flag`` and the choices."""
  unknown = [v for v in values if v not in valid]
  if unknown:
    raise app.UsageError(f"--{flag}: unknown {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(valid)}")
  return values
