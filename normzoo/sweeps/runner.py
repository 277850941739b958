"""Running a sweep: one run directory per override set, resumable, failure-tolerant.

What a run *is* lives in :func:`run_one` (load the sweep, apply one run's
overrides, call :func:`normzoo.train.train_and_evaluate` in its directory,
record a failure as ``status: failed``). Launchers only decide where that
executes: :class:`LocalLauncher` starts ``python -m normzoo.sweeps.worker``
subprocesses, ``--parallel`` at a time, so a crash or an out-of-memory kill
ends one run and not the sweep.

Re-running a sweep skips runs whose ``result.json`` is final (``done`` or
``diverged``), resumes interrupted runs from their checkpoints and retries
failed ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from normzoo.sweeps.spec import Overrides, Sweep, apply_overrides, load_sweep
from normzoo.train import progress, rundir
from normzoo.train.runlock import RunDirLocked

MANIFEST = "sweep.json"
LOG_FILE = "log.txt"


@dataclass(frozen=True)
class RunSpec:
  name: str
  overrides: Overrides
  workdir: str


def plan(sweep: Sweep, workdir: str) -> list[RunSpec]:
  return [RunSpec(name, o, os.path.join(workdir, name)) for name, o in sweep.runs()]


def write_manifest(sweep: Sweep, workdir: str, runs: list[RunSpec]) -> None:
  os.makedirs(workdir, exist_ok=True)
  manifest = {"sweep_file": os.path.relpath(sweep.path), "report": sweep.report,
              "runs": [{"name": r.name, "overrides": r.overrides} for r in runs]}
  with open(os.path.join(workdir, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2, default=str)


def read_manifest(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, MANIFEST)
  if not os.path.exists(path):
    raise ValueError(f"{workdir} is not a sweep directory (no {MANIFEST}); run "
                     f"normzoo-sweep --sweep=FILE --workdir={workdir} first")
  with open(path) as f:
    return json.load(f)


def is_finished(run: RunSpec, num_epochs: int) -> bool:
  return rundir.finished_result(run.workdir, num_epochs) is not None


def run_one(sweep_path: str, run_name: str, sweep_workdir: str) -> dict[str, Any]:
  """Executes one run of a sweep in-process; failures become ``status: failed``."""
  sweep = load_sweep(sweep_path)
  runs = {r.name: r for r in plan(sweep, sweep_workdir)}
  if run_name not in runs:
    raise ValueError(f"sweep {sweep_path} has no run named {run_name!r}")
  run = runs[run_name]
  os.makedirs(run.workdir, exist_ok=True)
  try:
    from normzoo.train import train_and_evaluate
    config = apply_overrides(sweep.base, run.overrides)
    return train_and_evaluate(config, run.workdir)
  except RunDirLocked as e:
    # Another live worker owns this run (e.g. one left by a killed sweep): its
    # result.json is its own to write, so this attempt records nothing there.
    print(f"error: {e}", file=sys.stderr)
    return {"status": "failed", "error": f"{type(e).__name__}: {e}", "overrides": run.overrides}
  except Exception as e:  # recorded, so that one bad run does not stop the sweep
    traceback.print_exc()
    result = {"status": "failed", "error": f"{type(e).__name__}: {e}",
              "overrides": run.overrides}
    rundir.write_result(run.workdir, result)
    return result


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
  """A ``preexec_fn``: on Linux the child gets SIGKILL when the sweep process dies.

  Without it a SIGKILLed sweep leaves its workers running, re-parented to
  PID 1, and a re-run starts a second worker on the same run. (The kernel
  sends the signal when the forking *thread* exits; the launcher's thread
  waits in :func:`call_worker` for the whole life of the child.)
  """
  def preexec() -> None:
    if sys.platform.startswith("linux"):
      import ctypes  # pylint: disable=import-outside-toplevel
      pr_set_pdeathsig = 1
      ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the sweep died between fork and prctl
      os._exit(1)
  return preexec


def call_worker(cmd: list[str], **kwargs: Any) -> int:
  """``subprocess.call`` whose child dies with this process (see :func:`_die_with_parent`)."""
  return subprocess.call(cmd, preexec_fn=_die_with_parent(os.getpid()), **kwargs)


class LocalLauncher:
  """Runs each run in a ``python -m normzoo.sweeps.worker`` subprocess on this machine."""

  def __init__(self, parallel: int = 1, env: dict[str, str] | None = None):
    if parallel < 1:
      raise ValueError(f"--parallel must be >= 1; got {parallel}")
    self.parallel = parallel
    self.env = env

  def __call__(self, sweep: Sweep, run: RunSpec, sweep_workdir: str) -> dict[str, Any]:
    os.makedirs(run.workdir, exist_ok=True)
    previous = rundir.read_result(run.workdir)
    if previous is not None and previous.get("status") == "failed":
      # An earlier attempt's failure: were it left, a worker killed this time
      # before writing its own result would be reported with the old error.
      rundir.clear_result(run.workdir)
    cmd = [sys.executable, "-m", "normzoo.sweeps.worker", f"--sweep={sweep.path}",
           f"--run={run.name}", f"--workdir={sweep_workdir}"]
    with open(os.path.join(run.workdir, LOG_FILE), "a") as log:
      code = call_worker(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
    result = rundir.read_result(run.workdir)
    if result is None or (code != 0 and result.get("status") != "failed"):
      # Killed before it could say anything: its checkpoints stay for a resume.
      result = {"status": "failed", "error": f"worker exited with code {code}; see "
                f"{os.path.join(run.workdir, LOG_FILE)}", "overrides": run.overrides}
      rundir.write_result(run.workdir, result)
    return result


class _Progress:
  """Thread-safe outcome counts over a tqdm counter of runs (its rate and estimate)."""

  def __init__(self, total: int, skipped: int, printer: Callable[[str], None]):
    self.counts = {"done": skipped, "diverged": 0, "failed": 0}
    self.bar = progress.progress_bar(total, initial=skipped, desc="sweep", unit="run",
                                     interval_s=0)  # a line per finished run instead
    self.lock = threading.Lock()
    self.printer = printer

  def finished(self, run: RunSpec, result: dict[str, Any]) -> None:
    with self.lock:
      status = result.get("status", "failed")
      self.counts[status if status in self.counts else "failed"] += 1
      self.bar.update()
      progress.postfix(self.bar, diverged=self.counts["diverged"], failed=self.counts["failed"])
      detail = f"test accuracy {result.get('test_accuracy')}" if status == "done" else \
          result.get("error", status)
      self.printer(f"[{progress.summary(self.bar)}] {run.name}: {status} ({detail})")

  def close(self) -> None:
    self.bar.close()


def run_sweep(sweep_path: str, workdir: str, launcher: Callable[..., dict[str, Any]],
              parallel: int = 1, printer: Callable[[str], None] = progress.write
              ) -> dict[str, dict[str, Any]]:
  """Runs every unfinished run of the sweep; returns results by run name."""
  sweep = load_sweep(sweep_path)
  runs = plan(sweep, workdir)
  write_manifest(sweep, workdir, runs)
  results: dict[str, dict[str, Any]] = {}
  todo = []
  for run in runs:
    num_epochs = int(apply_overrides(sweep.base, run.overrides).num_epochs)
    finished = rundir.finished_result(run.workdir, num_epochs)
    if finished is not None:
      results[run.name] = finished
    else:
      todo.append(run)
  printer(f"sweep {sweep_path}: {len(runs)} runs, {len(runs) - len(todo)} already finished, "
          f"{len(todo)} to run ({parallel} at a time) in {workdir}")
  counter = _Progress(len(runs), len(runs) - len(todo), printer)

  def execute(run: RunSpec) -> None:
    result = launcher(sweep, run, workdir)
    results[run.name] = result
    counter.finished(run, result)

  try:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
      list(pool.map(execute, todo))
  finally:
    counter.close()
  return results
