"""Storage faults in checkpoints: a damaged newest one falls back, none usable is one error.

Each case damages the newest checkpoint of a finished 2-epoch run the way
storage does (a flipped bit, a truncated or deleted file, an emptied
``_METADATA``), removes ``result.json`` and runs again: the run must resume
from epoch 1 with a warning and reproduce the undamaged run exactly, never
record ``diverged``.
"""

import json
import os
import shutil

import jax
import pytest

from normzoo.train import train_and_evaluate
from normzoo.train.checkpoint import CheckpointError
from tests.train.helpers import tiny_config


def _config():
  return tiny_config(num_epochs=2, checkpoint_every_epochs=1)


def _run(workdir):
  return train_and_evaluate(_config(), workdir, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("base"))
  return workdir, _run(workdir)


def _files(step_dir):
  out = []
  for root, _, names in os.walk(step_dir):
    out += [os.path.join(root, n) for n in names]
  return out


def _largest_data_file(step_dir):
  """The biggest array-data file (TensorStore/OCDBT chunks hold the parameters)."""
  return max((p for p in _files(step_dir) if "METADATA" not in os.path.basename(p)),
             key=os.path.getsize)


def flip_bit(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0x10
    f.seek(0)
    f.write(data)


def truncate(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def delete(step_dir):
  os.remove(_largest_data_file(step_dir))


def empty_metadata(step_dir):
  paths = [p for p in _files(step_dir) if os.path.basename(p) == "_METADATA"]
  assert paths, _files(step_dir)
  open(paths[0], "w").close()


@pytest.mark.parametrize("damage", [flip_bit, truncate, delete, empty_metadata])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(finished, tmp_path, damage, caplog):
  base, expected = finished
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  os.remove(os.path.join(workdir, "result.json"))
  damage(os.path.join(workdir, "checkpoints", "2"))
  caplog.set_level("WARNING")
  result = _run(workdir)
  assert "checkpoint after epoch 2 is damaged" in caplog.text
  assert result["status"] == "done"
  # Epoch 2 was retrained from the verified epoch-1 checkpoint: bit-exact.
  for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy"):
    assert result[key] == expected[key], key
  # The damaged checkpoint was replaced by a good one: a further resume verifies.
  os.remove(os.path.join(workdir, "result.json"))
  caplog.clear()
  assert _run(workdir)["test_accuracy"] == expected["test_accuracy"]
  assert "damaged" not in caplog.text


def test_no_usable_checkpoint_is_one_error_naming_the_file(finished, tmp_path):
  base, _ = finished
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  os.remove(os.path.join(workdir, "result.json"))
  for step in ("1", "2"):
    flip_bit(os.path.join(workdir, "checkpoints", step))
  with pytest.raises(CheckpointError, match=r"no usable checkpoint .*checkpoints.2.* SHA-256"):
    _run(workdir)
  assert not os.path.exists(os.path.join(workdir, "result.json"))  # never "diverged"


def test_non_finite_checkpoint_without_digests_is_refused(finished, tmp_path, caplog):
  """Checkpoints from before digests: garbage shows as non-finite arrays, not `diverged`."""
  import numpy as np
  import orbax.checkpoint as ocp
  base, _ = finished
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  os.remove(os.path.join(workdir, "result.json"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "digests"), ignore_errors=True)
  # Rewrite checkpoint 2 with a NaN parameter, as a bit flip in an exponent would.
  item = os.path.join(workdir, "checkpoints", "2", "default")
  tree = ocp.StandardCheckpointer().restore(item)
  leaves, treedef = jax.tree.flatten(tree["params"])
  bad = np.array(leaves[0])
  bad.flat[0] = np.nan
  tree["params"] = jax.tree.unflatten(treedef, [bad] + leaves[1:])
  shutil.rmtree(item)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(item, tree)
  checkpointer.wait_until_finished()
  result = _run(workdir)
  assert result["status"] == "done" and result["epochs"] == 2
  assert "non-finite arrays" in caplog.text


def test_finite_but_huge_loss_is_diverged_with_the_reason(tmp_path):
  """lr 1e4 with batch norm: a finite loss of ~1e15 at chance accuracy was recorded as done."""
  workdir = str(tmp_path)
  result = train_and_evaluate(
      tiny_config(learning_rate=1e4, num_epochs=2, log_every_steps=2), workdir,
      devices=jax.devices()[:1])
  assert result["status"] == "diverged", result
  # Caught at the first check (step 2, loss ~6e7), long before the loss overflows to NaN.
  assert "above divergence_loss_bound=1000" in result["divergence_reason"]
  with open(os.path.join(workdir, "result.json")) as f:
    assert json.load(f)["divergence_reason"] == result["divergence_reason"]


def test_loss_bound_is_checked_mid_epoch(tmp_path):
  # Initial cross-entropy of 10 classes is ~2.3 > 0.5: stops at the first check (step 2).
  result = train_and_evaluate(
      tiny_config(divergence_loss_bound=0.5, log_every_steps=2), str(tmp_path),
      devices=jax.devices()[:1])
  assert result["status"] == "diverged" and result["epochs"] == 1
  assert "above divergence_loss_bound=0.5" in result["divergence_reason"]
  from normzoo.train.metrics import read_rows
  rows = read_rows(str(tmp_path))
  assert rows[-1]["status"] == "diverged" and rows[-1]["step"] == 2


@pytest.mark.parametrize("bound", [0.0, -1.0])
def test_bad_divergence_bound(tmp_path, bound):
  with pytest.raises(ValueError, match=r"divergence_loss_bound"):
    train_and_evaluate(tiny_config(divergence_loss_bound=bound), str(tmp_path))


@pytest.mark.parametrize("accuracy,best,expected", [
    (0.10, 0.85, True),    # learned, then collapsed to chance (10 classes)
    (0.105, 0.85, True),
    (0.12, 0.85, False),   # above 1.1x chance
    (0.10, 0.15, False),   # never learned: a slow start is not divergence
    (0.10, None, False),   # first evaluation
    (None, 0.9, False),
])
def test_chance_collapse(accuracy, best, expected):
  from normzoo.train import divergence
  assert (divergence.chance_reason(accuracy, best, 10) is not None) == expected


def _cli(workdir, epochs):
  import subprocess
  import sys
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.main", "--config=configs/synthetic.py",
       f"--workdir={workdir}", f"--config.num_epochs={epochs}", "--config.train_examples=2048"],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_sigkill_mid_run_resumes_bit_exactly(tmp_path):
  """SIGKILL after the first checkpoint, then the same command: the result of an uninterrupted run."""
  import signal
  import time
  reference = _cli(tmp_path / "ref", 3)
  assert reference.wait(timeout=300) == 0, reference.stderr.read()
  killed = _cli(tmp_path / "run", 3)
  digest = tmp_path / "run" / "checkpoints" / "digests" / "1.json"
  deadline = time.time() + 300
  while not digest.exists() and killed.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  time.sleep(0.3)  # into epoch 2
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert not (tmp_path / "run" / "result.json").exists(), "finished before the kill"
  resumed = _cli(tmp_path / "run", 3)
  assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
  with open(tmp_path / "ref" / "result.json") as f:
    want = json.load(f)
  with open(tmp_path / "run" / "result.json") as f:
    got = json.load(f)
  assert got["status"] == "done" and got["epochs"] == 3
  for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "best_test_accuracy"):
    assert got[key] == want[key], key


def test_chance_reason_names_the_accuracy_it_judged():
  from normzoo.train import divergence
  assert divergence.chance_reason(0.1, 0.8, 10, what="validation accuracy").startswith(
      "validation accuracy 0.1000 collapsed to chance")
