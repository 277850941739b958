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
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from normzoo.sweeps.spec import Overrides, Sweep, apply_overrides, load_sweep
from normzoo.train import rundir
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
                     f"python -m experiments.sweep --sweep=FILE --workdir={workdir} first")
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


class Progress:
  """Thread-safe counts and a one-line progress report with a time estimate."""

  def __init__(self, total: int, skipped: int, parallel: int,
               printer: Callable[[str], None] = print):
    self.total, self.done, self.parallel = total, skipped, parallel
    self.counts = {"done": skipped, "diverged": 0, "failed": 0}
    self.durations: list[float] = []
    self.start = time.time()
    self.lock = threading.Lock()
    self.printer = printer

  def finished(self, run: RunSpec, result: dict[str, Any], seconds: float) -> None:
    with self.lock:
      self.done += 1
      status = result.get("status", "failed")
      key = status if status in self.counts else "failed"
      self.counts[key] += 1
      self.durations.append(seconds)
      remaining = self.total - self.done
      eta = remaining * (sum(self.durations) / len(self.durations)) / self.parallel
      detail = f"test accuracy {result.get('test_accuracy')}" if status == "done" else \
          result.get("error", status)
      self.printer(f"[{self.done}/{self.total} runs; {self.counts['diverged']} diverged, "
                   f"{self.counts['failed']} failed; elapsed {_fmt(time.time() - self.start)}, "
                   f"about {_fmt(eta)} left] {run.name}: {status} ({detail})")


def _fmt(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


def run_sweep(sweep_path: str, workdir: str, launcher: Callable[..., dict[str, Any]],
              parallel: int = 1, printer: Callable[[str], None] = print
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
  progress = Progress(len(runs), len(runs) - len(todo), parallel, printer)

  def execute(run: RunSpec) -> None:
    start = time.time()
    result = launcher(sweep, run, workdir)
    results[run.name] = result
    progress.finished(run, result, time.time() - start)

  with ThreadPoolExecutor(max_workers=parallel) as pool:
    list(pool.map(execute, todo))
  return results
