"""The issue-24 report sweeps: load, expand, budgets in steps, validation split, paired seeds."""

import collections

import pytest

from normzoo.sweeps import apply_overrides, load_sweep
from normzoo.train import build
from normzoo.train.validate import validate_config

SCIENCE_SWEEPS = ["statistic_size", "steps_to_target", "sequence_transformer", "sequence_rnn",
                  "placement_head", "regularizer", "init_scale_steps", "train_eval_gap_steps"]


@pytest.mark.parametrize("name", SCIENCE_SWEEPS)
def test_sweep_expands_with_its_stated_budget_and_paired_seeds(name):
  sweep = load_sweep(f"configs/sweeps/{name}.py")
  budget = sweep.report["budget_steps"]
  seeds = collections.defaultdict(set)
  for run_name, overrides in sweep.runs():
    config = apply_overrides(sweep.base, overrides)
    validate_config(config, 1)
    build.make_model(config, 10)  # model, norm and kwargs all resolve
    steps = config.num_epochs * (config.train_examples // config.batch_size)
    assert steps == budget, run_name
    assert config.validation_examples > 0 and config.eval_every_steps > 0
    key = tuple(sorted((k, str(v)) for k, v in overrides.items() if k != "seed"))
    seeds[key].add(overrides["seed"])
  assert len({frozenset(s) for s in seeds.values()}) == 1  # every cell has the same seeds
  assert min(len(s) for s in seeds.values()) >= 2
  baseline = sweep.report.get("baseline")
  if baseline:
    # The named baseline is a value the sweep actually runs.
    for field, value in baseline.items():
      assert any(o.get(field) == value for _, o in sweep.runs()), (field, value)
