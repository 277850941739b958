"""Sweep expansion, naming, skip/resume/failure behaviour and reports on tiny synthetic runs."""

import json
import os
import textwrap

import pytest

from normzoo.sweeps import apply_overrides, grid, load_sweep, product, run_name, zip_axes
from normzoo.sweeps import report, runner
from normzoo.train import metrics as metrics_lib
from normzoo.train import rundir

SWEEP = textwrap.dedent("""
    from normzoo.configs import synthetic
    from normzoo.sweeps import grid

    def get_config():
      c = synthetic.get_config()
      c.num_epochs = {epochs}
      c.train_examples = 128
      c.test_examples = 64
      c.checkpoint_every_epochs = 1
      return c

    def get_sweep():
      return grid(norm={norms}, learning_rate=[0.05], seed=[0, 1]) + {extra}

    def get_report():
      return dict(x="learning_rate", series="norm", title="tiny", claim="nothing in particular")
""")


def _write_sweep(tmp_path, epochs=1, norms=("batch", "none"), extra="[]"):
  path = tmp_path / "sweep.py"
  path.write_text(SWEEP.format(epochs=epochs, norms=list(norms), extra=extra))
  return str(path)


def in_process(sweep, run, sweep_workdir):
  return runner.run_one(sweep.path, run.name, sweep_workdir)


def test_grid_zip_product_and_names():
  assert grid(a=[1, 2], b=["x"]) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
  assert zip_axes(a=[1, 2], b=[3, 4]) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
  with pytest.raises(ValueError, match="one length"):
    zip_axes(a=[1], b=[1, 2])
  assert product([{"a": 1}], [{"b": 2}, {"b": 3}]) == [{"a": 1, "b": 2}, {"a": 1, "b": 3}]
  assert run_name({"norm": "group", "batch_size": 8, "learning_rate": 0.00625}) == \
      "norm=group,batch_size=8,learning_rate=0.00625"
  assert run_name({"norm_kwargs": {"num_groups": 4}}) == "norm_kwargs={num_groups=4}"
  assert len(run_name({"x": "y" * 500})) <= 120


def test_overrides_are_checked_against_the_config(tmp_path):
  sweep = load_sweep(_write_sweep(tmp_path))
  config = apply_overrides(sweep.base, {"learning_rate": 1, "norm_kwargs.num_groups": 4,
                                        "per_norm_kwargs.batch.momentum": 0.5})
  assert config.learning_rate == 1.0 and config.norm_kwargs.num_groups == 4
  assert config.per_norm_kwargs.batch.momentum == 0.5
  with pytest.raises(ValueError, match="no field 'learnig_rate'"):
    apply_overrides(sweep.base, {"learnig_rate": 0.1})
  with pytest.raises(ValueError, match="no field 'distributed.bogus'"):
    apply_overrides(sweep.base, {"distributed.bogus": 1})
  with pytest.raises(ValueError, match="does not exist"):
    load_sweep(str(tmp_path / "missing.py"))


def test_sweep_runs_skips_finished_records_failures_and_reports(tmp_path):
  path = _write_sweep(tmp_path, extra='[dict(norm="batch", learning_rate=0.2, optimizer="bogus", seed=0)]')
  workdir = str(tmp_path / "out")
  lines = []
  results = runner.run_sweep(path, workdir, in_process, printer=lines.append)
  assert len(results) == 5
  failed = [n for n, r in results.items() if r["status"] == "failed"]
  assert failed == ["norm=batch,learning_rate=0.2,optimizer=bogus,seed=0"]
  assert "bogus" in results[failed[0]]["error"]
  assert all(r["status"] == "done" for n, r in results.items() if n not in failed)
  assert any("5/5 runs" in l and "failed=1" in l and " left" in l for l in lines)

  # Re-running skips the four finished runs and retries only the failed one.
  calls = []
  runner.run_sweep(path, workdir, lambda s, r, w: calls.append(r.name) or in_process(s, r, w),
                   printer=lambda _: None)
  assert calls == failed

  md = report.write_report(workdir, command="python -m experiments.report --workdir=out")
  text = open(md).read()
  assert ("| norm | learning_rate | optimizer | runs | done | diverged | collapsed | failed "
          "| not run |") in text
  assert "nothing in particular" in text and "python -m experiments.report" in text
  for png in ("final_accuracy.png", "curves.png", "outcomes.png"):
    assert os.path.getsize(os.path.join(workdir, png)) > 1000
  summaries = report.group(report.collect(workdir)[1])
  batch = next(s for s in summaries if s["key"] == {"norm": "batch", "learning_rate": 0.05})
  assert batch["runs"] == 2 and batch["done"] == 2
  accs = [m["result"]["test_accuracy"] for m in batch["members"]]
  assert batch["test_accuracy"][0] == pytest.approx(sum(accs) / 2)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
  path = _write_sweep(tmp_path, epochs=2, norms=("batch",))
  workdir = str(tmp_path / "out")
  sweep = load_sweep(path)
  first = runner.plan(sweep, workdir)[0]
  # An "interrupted" run: one epoch trained and checkpointed, no final result.
  from normzoo.train import train_and_evaluate
  config = apply_overrides(sweep.base, first.overrides)
  config.num_epochs = 1
  train_and_evaluate(config, first.workdir)
  rundir.clear_result(first.workdir)
  epoch1 = metrics_lib.read_rows(first.workdir)[0]

  runner.run_sweep(path, workdir, in_process, printer=lambda _: None)
  rows = metrics_lib.read_rows(first.workdir)
  assert [r["epoch"] for r in rows] == [1, 2]
  assert rows[0]["wall_time_s"] == epoch1["wall_time_s"]  # not recomputed
  assert rundir.read_result(first.workdir)["status"] == "done"


def test_local_launcher_runs_a_subprocess_and_records_a_crash(tmp_path):
  path = _write_sweep(tmp_path, norms=("none",))
  workdir = str(tmp_path / "out")
  sweep = load_sweep(path)
  run = runner.plan(sweep, workdir)[0]
  result = runner.LocalLauncher()(sweep, run, workdir)
  assert result["status"] == "done", open(os.path.join(run.workdir, "log.txt")).read()[-2000:]
  # A worker that dies without writing a result is recorded as failed.
  env = dict(os.environ, PYTHONPATH="/nonexistent-so-the-import-fails", PYTHONNOUSERSITE="1")
  bad = runner.RunSpec("crash", {}, str(tmp_path / "out" / "crash"))
  result = runner.LocalLauncher(env={**env, "PATH": ""})(sweep, bad, workdir)
  assert result["status"] == "failed" and "exited with code" in result["error"]
  # A second crash reports itself, not the first attempt's recorded failure.
  rundir.write_result(bad.workdir, {"status": "failed", "error": "an earlier attempt"})
  result = runner.LocalLauncher(env={**env, "PATH": ""})(sweep, bad, workdir)
  assert result["status"] == "failed" and "exited with code" in result["error"], result


def test_shipped_sweep_files_load():
  import glob
  files = [f for f in glob.glob("configs/sweeps/*.py") if not f.endswith(("__init__.py",
                                                                           "common.py"))]
  assert len(files) >= 6
  for f in files:
    sweep = load_sweep(f)
    names = [name for name, _ in sweep.runs()]
    assert len(names) == len(set(names)) and sweep.report.get("claim"), f


def test_report_needs_a_sweep_directory(tmp_path):
  with pytest.raises(ValueError, match="not a sweep directory"):
    report.write_report(str(tmp_path))


_SWEEP_PARENT = """
import subprocess, sys, threading
from normzoo.sweeps.runner import call_worker
cmd = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(120)"]
threading.Thread(target=call_worker, args=(cmd,), daemon=True).start()  # as the launcher's pool
threading.Event().wait()
"""


def test_workers_die_with_a_killed_sweep():
  """SIGKILL of the sweep process left its worker running, re-parented to PID 1."""
  import signal
  import subprocess
  import sys
  import time
  parent = subprocess.Popen([sys.executable, "-c", _SWEEP_PARENT], stdout=subprocess.PIPE,
                            text=True)
  worker_pid = int(parent.stdout.readline())
  os.kill(worker_pid, 0)  # alive
  parent.send_signal(signal.SIGKILL)
  parent.wait()
  deadline = time.time() + 30
  while time.time() < deadline:
    try:
      os.kill(worker_pid, 0)
    except ProcessLookupError:
      return
    # A zombie re-parented to init is reaped quickly; a live worker keeps running.
    with open(f"/proc/{worker_pid}/stat") as f:
      if f.read().split()[2] == "Z":
        return
    time.sleep(0.1)
  os.kill(worker_pid, signal.SIGKILL)
  raise AssertionError(f"worker {worker_pid} outlived its sweep")
