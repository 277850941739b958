"""Sweeps on a local Ray cluster started inside the test."""

import os
import textwrap
import threading
import time

import pytest

from normzoo.sweeps import runner
from normzoo.train import metrics as metrics_lib
from normzoo.train import rundir

ray = pytest.importorskip("ray", reason="Ray is part of the 'test' extra")

# pytest-xdist runs a file's tests on one worker (--dist loadfile in
# pyproject.toml), so this module's local Ray cluster starts once and two
# clusters never share the CPUs.

SWEEP = textwrap.dedent("""
    from configs import synthetic
    from normzoo.sweeps import grid

    def get_config():
      c = synthetic.get_config()
      c.num_epochs = {epochs}
      c.train_examples = {examples}
      c.test_examples = 64
      c.batch_size = 16
      c.checkpoint_every_epochs = 1
      return c

    def get_sweep():
      return grid(norm={norms}, seed={seeds})
""")


@pytest.fixture(scope="module")
def launcher():
  from normzoo.sweeps.ray_launcher import RayLauncher
  try:
    launch = RayLauncher(address=None, resources_per_run="cpu:1",
                         init_kwargs=dict(num_cpus=2, include_dashboard=False,
                                          log_to_driver=False))
  except Exception as e:  # noqa: BLE001
    pytest.skip(f"Ray could not start a local cluster on this machine: {e}")
  yield launch
  ray.shutdown()


def _sweep(tmp_path, **kw):
  path = tmp_path / "sweep.py"
  path.write_text(SWEEP.format(**kw))
  return str(path)


def test_ray_sweep_of_four_runs_completes_and_skips_on_rerun(tmp_path, launcher):
  path = _sweep(tmp_path, epochs=1, examples=128, norms=["batch", "none"], seeds=[0, 1])
  workdir = str(tmp_path / "out")
  results = runner.run_sweep(path, workdir, launcher, parallel=4, printer=lambda _: None)
  assert sorted(r["status"] for r in results.values()) == ["done"] * 4, results
  assert all(r.get("node") for r in results.values())
  calls = []
  runner.run_sweep(path, workdir, lambda *a: calls.append(a), parallel=4, printer=lambda _: None)
  assert calls == []


def _kill_when_checkpointed(run_dir: str, run_name: str, sweep_workdir: str,
                            timeout: float = 120.0) -> bool:
  import psutil
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.isdir(os.path.join(run_dir, "checkpoints", "1")):
      for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        # This sweep's worker only: another test (or another suite on the
        # machine) may run a worker of the same run name at the same time.
        if ("normzoo.sweeps.worker" in cmdline and f"--run={run_name}" in cmdline
            and f"--workdir={sweep_workdir}" in cmdline):
          proc.kill()
          return True
    time.sleep(0.05)
  return False


def test_run_killed_midway_is_recorded_and_resumes_on_rerun(tmp_path, launcher):
  path = _sweep(tmp_path, epochs=6, examples=2048, norms=["batch"], seeds=[0])
  workdir = str(tmp_path / "out")
  name = "norm=batch,seed=0"
  killed = []
  killer = threading.Thread(
      target=lambda: killed.append(_kill_when_checkpointed(os.path.join(workdir, name), name,
                                                           workdir)))
  killer.start()
  first = runner.run_sweep(path, workdir, launcher, parallel=1, printer=lambda _: None)
  killer.join()
  assert killed == [True], "the worker finished before it could be killed"
  assert first[name]["status"] == "failed" and "exited with code" in first[name]["error"]
  rows_before = metrics_lib.read_rows(os.path.join(workdir, name))
  assert rows_before and rows_before[0]["epoch"] == 1

  second = runner.run_sweep(path, workdir, launcher, parallel=1, printer=lambda _: None)
  log = os.path.join(workdir, name, runner.LOG_FILE)
  assert second[name]["status"] == "done", (second[name], open(log).read()[-3000:])
  rows = metrics_lib.read_rows(os.path.join(workdir, name))
  assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
  assert rows[0]["wall_time_s"] == rows_before[0]["wall_time_s"]  # resumed, not restarted
  assert rundir.read_result(os.path.join(workdir, name))["epochs"] == 6


def test_unwritable_workdir_is_a_clear_error(tmp_path, launcher):
  from normzoo.sweeps.ray_launcher import _execute_on_node, parse_resources
  assert parse_resources("cpu:2,gpu:1,tpu:4") == {"num_cpus": 2.0, "num_gpus": 1.0,
                                                   "resources": {"tpu": 4.0}}
  with pytest.raises(ValueError, match="NAME:AMOUNT"):
    parse_resources("cpu")
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  result = _execute_on_node("x.py", "r", {}, str(blocker / "run"), str(blocker))
  assert result["status"] == "failed" and "cannot write to the sweep directory" in result["error"]
