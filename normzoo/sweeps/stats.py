"""Statistics for reports: outcomes per run, robust summaries, paired differences.

Kept apart from :mod:`normzoo.sweeps.report` (tables) and
:mod:`normzoo.sweeps.plots` (figures) so both import it and not each other.

* :func:`outcome`: ``done``, ``diverged``, ``collapsed`` (finished at chance
  accuracy), ``failed`` or ``not run``; every run of a cell is counted in
  exactly one.
* :func:`paired_difference`: per-seed differences of a cell against a named
  baseline cell (same seed = same init, subset and data order), with a 95 %
  interval ``mean +- t_{0.975, n-1} * sd / sqrt(n)``.
* :func:`steps_to_target`: the first evaluated step whose validation
  accuracy reaches a target.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

OUTCOMES = ("done", "diverged", "collapsed", "failed", "not run")

# Two-sided 95 % t quantiles t_{0.975, df} for df = 1..30 (used without scipy).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def finite(values: Sequence[Any]) -> list[float]:
  """The finite numbers of ``values`` (None / NaN / inf dropped)."""
  return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_std(values: Sequence[Any]) -> tuple[float | None, float | None]:
  """Mean and sample std (``ddof=1``) of the finite values; std is None below 2."""
  values = finite(values)
  if not values:
    return None, None
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, None
  var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
  return mean, math.sqrt(var)


def median(values: Sequence[Any]) -> float | None:
  values = sorted(finite(values))
  if not values:
    return None
  mid = len(values) // 2
  return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def t_quantile_975(df: int) -> float:
  """``t_{0.975, df}``: scipy when installed, else the table (df > 30: the
  Cornish-Fisher expansion of t around the normal quantile, error < 1e-4)."""
  if df < 1:
    raise ValueError(f"df must be >= 1, got {df}")
  try:
    from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
    return float(scipy_stats.t.ppf(0.975, df))
  except ImportError:
    if df <= len(_T975):
      return _T975[df - 1]
    z = 1.959963984540054
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def chance_accuracy(dataset: str | None) -> float:
  """1 / classes of ``dataset`` (100 for CIFAR-100, else 10)."""
  return 0.01 if dataset and "cifar100" in dataset else 0.1


def outcome(result: dict[str, Any]) -> str:
  """One of :data:`OUTCOMES`. ``collapsed``: finished, but the final accuracy is below
  1.5x chance (a run that never learned is not averaged as if it had)."""
  status = result.get("status", "not run")
  if status == "done":
    accuracy = result.get("test_accuracy")
    if accuracy is None:
      accuracy = result.get("validation_accuracy")
    if accuracy is not None and accuracy < 1.5 * chance_accuracy(result.get("dataset")):
      return "collapsed"
    return "done"
  return status if status in OUTCOMES else "failed"


def is_bimodal(values: Sequence[Any], scale: float = 0.2) -> bool:
  """Whether the values split into two clusters more than ``scale`` apart (a gap of
  20 accuracy points): then the mean describes no run and the median is shown."""
  values = sorted(finite(values))
  return len(values) >= 2 and max(b - a for a, b in zip(values, values[1:])) > scale


def paired_difference(values: dict[Any, float | None], baseline: dict[Any, float | None]
                      ) -> dict[str, Any]:
  """``values[s] - baseline[s]`` over seeds ``s`` present (finite) in both.

  Returns ``{'n', 'mean', 'low', 'high', 'diffs'}``; the interval is the 95 %
  t interval of the mean difference (None for n < 2, mean None for n = 0).
  """
  seeds = sorted(s for s in values if s in baseline and finite([values[s]])
                 and finite([baseline[s]]))
  diffs = [values[s] - baseline[s] for s in seeds]
  n = len(diffs)
  mean, sd = mean_std(diffs)
  low = high = None
  if n >= 2:
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
  return {"n": n, "mean": mean, "low": low, "high": high, "diffs": diffs}


def steps_to_target(rows: list[dict[str, Any]], target: float,
                    metric: str = "validation_accuracy") -> int | None:
  """The first ``step`` whose ``metric`` is >= ``target``; None if none is (or the run
  logged no ``metric``)."""
  for row in sorted(rows, key=lambda r: r.get("step", 0)):
    value = row.get(metric)
    if value is not None and value >= target:
      return int(row["step"])
  return None
