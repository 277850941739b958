"""Two processes on loopback CPU (4 devices each) train one 8-device data-parallel run.

The reference is this test process on its own 8 host devices: the same
global batches must give the same parameters and batch statistics.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from normzoo.train import train_and_evaluate
from tests.train.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.multihost
def test_two_processes_of_four_devices_agree_with_one_process_of_eight(tmp_path):
  port = _free_port()
  workdir = str(tmp_path / "run")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  procs = [subprocess.Popen(
      [sys.executable, "-m", "tests.train.multihost_worker", str(port), str(i), workdir,
       str(tmp_path / f"result{i}.json")],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=90)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]

  results = [json.load(open(tmp_path / f"result{i}.json")) for i in range(2)]
  assert [r["process_index"] for r in results] == [0, 1]
  for r in results:
    assert r["status"] == "done" and r["num_processes"] == 2 and r["num_devices"] == 8
    assert r["local_devices"] == 4
  keys = ("test_accuracy", "test_loss", "train_loss", "test_accuracy_batch_stats")
  assert [results[0][k] for k in keys] == [results[1][k] for k in keys]
  with open(os.path.join(workdir, "result.json")) as f:
    assert json.load(f)["test_loss"] == results[0]["test_loss"]

  # The same global batches on 8 devices of this one process give the same run.
  single = train_and_evaluate(tiny_config(num_epochs=2), str(tmp_path / "single"),
                              devices=jax.devices()[:8])
  assert single["test_accuracy"] == pytest.approx(results[0]["test_accuracy"], abs=0.011)
  assert single["test_loss"] == pytest.approx(results[0]["test_loss"], rel=1e-4)
  assert single["train_loss"] == pytest.approx(results[0]["train_loss"], rel=1e-4)
  single_state = _final_checkpoint(str(tmp_path / "single"))
  multi_state = _final_checkpoint(workdir, like=single_state)
  for part in ("params", "batch_stats"):
    assert jax.tree.structure(multi_state[part]) == jax.tree.structure(single_state[part])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 multi_state[part], single_state[part])
  assert multi_state["batch_stats"], "the tiny config must use batch statistics"


def _final_checkpoint(workdir: str, like: dict | None = None) -> dict:
  """The arrays of the newest checkpoint as NumPy (``like`` gives the tree for another topology)."""
  import orbax.checkpoint as ocp
  directory = os.path.join(workdir, "checkpoints", "")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  target = None
  if like is not None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), like)
  restored = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"),
                                                target)
  return jax.tree.map(np.asarray, restored)
