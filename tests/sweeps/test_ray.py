"""Sweeps on a local Ray cluster started inside the test."""

import os
import subprocess
import sys
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
    from normzoo.configs import synthetic
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


# Before any test starts this module's cluster (tests run in file order, and
# every Ray test is in this file): Ray's address="auto" also finds a cluster
# of another process by its processes, so this test must not run beside one.
NO_CLUSTER_SWEEP = textwrap.dedent("""
    from normzoo.configs import synthetic
    from normzoo.sweeps import grid

    def get_config():
      return synthetic.get_config()

    def get_sweep():
      return grid(seed=[0])
""")


def test_sweep_with_no_ray_cluster_says_how_to_start_one(tmp_path):
  sweep = tmp_path / "sweep.py"
  sweep.write_text(NO_CLUSTER_SWEEP)
  env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
  # Ray looks for a running cluster's address file under its temp dir: an empty one here.
  env.update(RAY_TMPDIR=str(tmp_path), TMPDIR=str(tmp_path), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--sweep={sweep}",
       f"--workdir={tmp_path / 'w'}", "--launcher=ray"],
      capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 1, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1, proc.stderr
  assert "Traceback" not in proc.stderr
  assert "ray start --head" in errors[0] and "--ray_address=local" in errors[0]


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
