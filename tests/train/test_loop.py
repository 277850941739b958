"""train_and_evaluate end to end on synthetic data: files, resume, reuse, divergence."""

import json
import os
import shutil

import jax
import pytest

from normzoo.train import host_memory, loop, train_and_evaluate
from normzoo.train.metrics import ROW_KEYS, read_rows
from tests.train.helpers import tiny_config

STEPS_PER_EPOCH = 256 // 32


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
  """A finished 2-epoch run on all 8 devices (reused read-only by several tests)."""
  workdir = str(tmp_path_factory.mktemp("run8"))
  result = train_and_evaluate(tiny_config(num_epochs=2), workdir)
  return workdir, result


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def test_eight_device_run_learns_and_writes_its_files(two_epoch_run):
  workdir, result = two_epoch_run
  assert result["status"] == "done"
  assert result["num_devices"] == 8 and result["epochs"] == 2
  assert result["host_allocator"] == ("tuned" if host_memory._glibc() else "default")
  assert result["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
  assert result["best_test_accuracy"] >= result["test_accuracy"]
  assert _read_json(os.path.join(workdir, "result.json")) == result
  assert _read_json(os.path.join(workdir, "config.json"))["norm"] == "batch"
  rows = read_rows(workdir)
  assert [r["epoch"] for r in rows] == [1, 2]
  assert [r["step"] for r in rows] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
  for row in rows:
    assert set(ROW_KEYS) <= set(row)
    assert all(row[k] is not None for k in ROW_KEYS)
  assert rows[-1]["test_accuracy"] == result["test_accuracy"]
  events = os.listdir(os.path.join(workdir, "tensorboard"))
  assert any(name.startswith("events.out.tfevents") for name in events)


def test_one_device_run(tmp_path):
  result = train_and_evaluate(tiny_config(num_epochs=2), str(tmp_path),
                              devices=jax.devices()[:1])
  assert result["status"] == "done" and result["num_devices"] == 1
  assert result["test_accuracy"] > 0.5
  assert len(read_rows(str(tmp_path))) == 2


def test_finished_run_is_reported_not_redone(two_epoch_run, monkeypatch):
  workdir, result = two_epoch_run

  def no_training(_):
    raise AssertionError("a finished run must not load data again")

  monkeypatch.setattr(loop, "load_dataset", no_training)
  assert train_and_evaluate(tiny_config(num_epochs=2), workdir) == result


def test_more_epochs_resume_from_the_checkpoint(tmp_path, caplog):
  workdir = str(tmp_path)
  first = train_and_evaluate(tiny_config(num_epochs=1), workdir)
  first_rows = read_rows(workdir)
  caplog.set_level("INFO")
  second = train_and_evaluate(tiny_config(num_epochs=2), workdir)
  assert f"at epoch 1 (step {STEPS_PER_EPOCH})" in caplog.text
  rows = read_rows(workdir)
  assert [r["epoch"] for r in rows] == [1, 2]
  assert rows[0] == first_rows[0]
  assert first["epochs"] == 1 and second["epochs"] == 2 and second["status"] == "done"
  assert rows[1]["step"] == 2 * STEPS_PER_EPOCH


def test_interrupted_run_resumes_without_duplicate_rows(two_epoch_run, tmp_path):
  # Simulate a kill after epoch 2's metrics row but before its checkpoint and
  # result.json: only the epoch-1 checkpoint survives.
  source, result = two_epoch_run
  workdir = str(tmp_path / "run")
  shutil.copytree(source, workdir)
  os.remove(os.path.join(workdir, "result.json"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "2"))
  resumed = train_and_evaluate(tiny_config(num_epochs=2), workdir)
  rows = read_rows(workdir)
  assert [r["epoch"] for r in rows] == [1, 2]
  assert resumed["status"] == "done"
  # Same seed, data order and restored state: epoch 2 is trained again identically.
  assert resumed["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-6)
  assert resumed["test_loss"] == pytest.approx(result["test_loss"], rel=1e-4)


def test_non_finite_loss_stops_the_run(tmp_path):
  # log_every_steps=2 also checks mid-epoch, so the epoch is cut short.
  workdir = str(tmp_path)
  result = train_and_evaluate(
      tiny_config(norm="none", learning_rate=1e30, num_epochs=3, log_every_steps=2), workdir)
  assert result["status"] == "diverged"
  assert result["epochs"] == 1 and result["test_accuracy"] is None
  assert _read_json(os.path.join(workdir, "result.json"))["status"] == "diverged"
  rows = read_rows(workdir)
  assert len(rows) == 1 and rows[0]["status"] == "diverged"
  assert rows[0]["step"] < STEPS_PER_EPOCH
  assert rows[0]["train_loss"] is None  # NaN is stored as null
  assert not os.path.exists(os.path.join(workdir, "checkpoints", "1"))
