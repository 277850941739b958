"""Report statistics against scipy / numpy oracles."""

import builtins
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from normzoo.sweeps import stats


def _hide_scipy(monkeypatch):
  real_import = builtins.__import__

  def no_scipy(name, *args, **kwargs):
    if name.startswith("scipy"):
      raise ImportError(name)
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_scipy)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 30])
def test_t_quantile_matches_scipy_with_and_without_scipy(df, monkeypatch):
  expected = scipy_stats.t.ppf(0.975, df)
  assert stats.t_quantile_975(df) == pytest.approx(expected, rel=1e-12)
  _hide_scipy(monkeypatch)
  assert stats.t_quantile_975(df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_fallback_beyond_the_table(monkeypatch):
  _hide_scipy(monkeypatch)
  for df in (31, 60, 200, 5000):
    assert stats.t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-4)
  with pytest.raises(ValueError, match="df"):
    stats.t_quantile_975(0)


def test_paired_difference_matches_the_scipy_paired_t_interval():
  rng = np.random.default_rng(0)
  base = rng.uniform(0.7, 0.9, size=5)
  other = base + rng.normal(0.01, 0.02, size=5)
  values = {s: float(v) for s, v in enumerate(other)}
  baseline = {s: float(v) for s, v in enumerate(base)}
  baseline[7] = 0.5  # a seed only the baseline has is not paired
  values[3] = None   # a run that did not finish drops its pair
  out = stats.paired_difference(values, baseline)
  keep = [0, 1, 2, 4]
  diffs = other[keep] - base[keep]
  assert out["n"] == 4 and out["diffs"] == pytest.approx(list(diffs))
  low, high = scipy_stats.ttest_rel(other[keep], base[keep]).confidence_interval(0.95)
  assert out["mean"] == pytest.approx(diffs.mean())
  assert (out["low"], out["high"]) == pytest.approx((low, high))
  one = stats.paired_difference({0: 0.5}, {0: 0.4})
  assert one["n"] == 1 and one["low"] is None and one["mean"] == pytest.approx(0.1)


def test_mean_std_and_median_skip_non_finite():
  assert stats.mean_std([1.0, None, 3.0, math.nan]) == pytest.approx((2.0, math.sqrt(2)))
  assert stats.mean_std([]) == (None, None) and stats.mean_std([0.5])[1] is None
  assert stats.median([3.0, 1.0, None, 2.0, 10.0]) == 2.5
  assert stats.median([]) is None


def test_outcomes_count_collapsed_runs_apart():
  assert stats.outcome({"status": "done", "test_accuracy": 0.85}) == "done"
  assert stats.outcome({"status": "done", "test_accuracy": 0.1}) == "collapsed"
  assert stats.outcome({"status": "done", "test_accuracy": 0.05,
                        "dataset": "cifar100"}) == "done"
  assert stats.outcome({"status": "diverged"}) == "diverged"
  assert stats.outcome({"status": "failed", "error": "x"}) == "failed"
  assert stats.outcome({"status": "not run"}) == "not run"


def test_bimodal_and_steps_to_target():
  assert stats.is_bimodal([0.1, 0.1, 0.85]) and not stats.is_bimodal([0.8, 0.85, 0.86])
  rows = [{"step": 0, "validation_accuracy": 0.1}, {"step": 10, "validation_accuracy": 0.81},
          {"step": 5, "validation_accuracy": 0.79}, {"step": 20, "validation_accuracy": 0.9}]
  assert stats.steps_to_target(rows, 0.8) == 10
  assert stats.steps_to_target(rows, 0.9) == 20
  assert stats.steps_to_target(rows, 0.95) is None
  assert stats.steps_to_target([{"step": 3, "test_accuracy": 0.9}], 0.5) is None
