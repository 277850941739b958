"""eval_every_steps with a validation split: rows per step, the test set only at the end."""

import pytest

from normzoo.train import train_and_evaluate
from normzoo.train.metrics import read_rows
from tests.train.helpers import tiny_config

STEPS_PER_EPOCH = 256 // 32


def _config(**overrides):
  return tiny_config(validation_examples=64, eval_every_steps=3, **overrides)


def test_rows_every_n_steps_from_step_0_and_test_only_at_the_end(tmp_path):
  result = train_and_evaluate(_config(num_epochs=2), str(tmp_path))
  rows = read_rows(str(tmp_path))
  assert [r["step"] for r in rows] == [0, 3, 6, 9, 12, 15, 2 * STEPS_PER_EPOCH]
  assert [r["epoch"] for r in rows][:2] == [0, 3 / STEPS_PER_EPOCH]
  assert rows[-1]["epoch"] == 2
  assert all(r["validation_accuracy"] is not None for r in rows)
  assert all(r["test_accuracy"] is None for r in rows[:-1])
  assert rows[-1]["test_accuracy"] == result["test_accuracy"] is not None
  assert rows[0]["train_loss"] is None  # nothing trained yet
  # No selection on the test set: "best" is the best validation row.
  assert result["best_test_accuracy"] is None
  best = max(rows, key=lambda r: r["validation_accuracy"])
  assert result["best_validation_accuracy"] == best["validation_accuracy"]
  assert result["best_validation_step"] == best["step"]
  assert result["validation_accuracy"] == rows[-1]["validation_accuracy"]
  assert result["validation_accuracy"] > 0.5  # chance is 0.1


def test_resume_matches_an_uninterrupted_run(tmp_path):
  straight = str(tmp_path / "straight")
  resumed = str(tmp_path / "resumed")
  expected = train_and_evaluate(_config(num_epochs=2), straight)
  train_and_evaluate(_config(num_epochs=1), resumed)
  result = train_and_evaluate(_config(num_epochs=2), resumed)
  rows = read_rows(resumed)
  steps = [r["step"] for r in rows]
  assert steps == sorted(set(steps))  # nothing written twice
  by_step = {r["step"]: r for r in rows}
  for row in read_rows(straight):
    assert by_step[row["step"]]["validation_loss"] == row["validation_loss"]
  assert result["test_loss"] == expected["test_loss"]
  assert result["test_accuracy"] == expected["test_accuracy"]
