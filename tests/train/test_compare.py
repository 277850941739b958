"""run_comparison: one run per norm, reuse of finished runs, the markdown table."""

import os

import pytest

from normzoo.train import compare, loop
from normzoo.train.build import norm_kwargs
from tests.train.helpers import tiny_config


def test_compare_two_norms_then_reuse(tmp_path, monkeypatch):
  config = tiny_config()
  config.lock()  # as the command line hands it over
  workdir = str(tmp_path)
  results = compare.run_comparison(config, workdir, ["batch", "none"])
  assert [r["norm"] for r in results] == ["batch", "none"]
  assert all(r["status"] == "done" for r in results)
  for norm in ("batch", "none"):
    assert os.path.exists(os.path.join(workdir, norm, "result.json"))
  text = compare.write_table(workdir, results, "header")
  lines = text.splitlines()
  assert lines[0] == "header"
  assert lines[2].startswith("| norm | final test acc | best test acc | train-mode test acc")
  assert lines[4].startswith("| batch | ") and lines[5].startswith("| none | ")
  with open(os.path.join(workdir, compare.TABLE_FILE)) as f:
    assert f.read() == text

  def no_training(_):
    raise AssertionError("finished runs must be reused, not trained again")

  monkeypatch.setattr(loop, "load_dataset", no_training)
  reused = compare.run_comparison(config, workdir, ["batch", "none"])
  assert [r["test_accuracy"] for r in reused] == [r["test_accuracy"] for r in results]


def test_config_for_norm_keeps_only_the_kwargs_a_norm_takes():
  config = tiny_config(norm_kwargs={"momentum": 0.5, "epsilon": 1e-3})
  batch = compare.config_for_norm(config, "batch")
  assert norm_kwargs(batch) == {"momentum": 0.5, "epsilon": 1e-3}
  layer = compare.config_for_norm(config, "layer")
  assert norm_kwargs(layer) == {"epsilon": 1e-3}
  group = compare.config_for_norm(config, "group")
  assert norm_kwargs(group) == {"num_groups": 8, "epsilon": 1e-3}  # per_norm_kwargs default
  assert config.norm == "batch"  # the input is not modified


def test_bad_norm_list():
  with pytest.raises(ValueError, match="unknown norm 'bn'"):
    compare.run_comparison(tiny_config(), "/nonexistent", ["batch", "bn"])
  with pytest.raises(ValueError, match="listed twice"):
    compare.run_comparison(tiny_config(), "/nonexistent", ["batch", "batch"])


def test_comparison_table_shows_validation_accuracy_when_there_is_a_split():
  from normzoo.train.compare import comparison_table
  base = dict(norm="batch", test_accuracy=0.9, test_accuracy_batch_stats=0.9,
              images_per_sec=100.0, wall_time_s=1.0, status="done")
  table = comparison_table([{**base, "validation_accuracy": 0.88, "best_test_accuracy": None}])
  assert "| validation acc |" in table and "| 0.8800 |" in table and "best test acc" not in table
  table = comparison_table([{**base, "best_test_accuracy": 0.91}])
  assert "| best test acc |" in table and "| 0.9100 |" in table
