"""Sweeps on a Ray cluster: each run becomes one Ray task.

A task runs exactly what :class:`normzoo.sweeps.runner.LocalLauncher` runs
(``python -m normzoo.sweeps.worker`` for one run) on whichever node Ray
picks, so naming, results, skip-finished and resume behaviour are those of
the local launcher: only the place of execution changes.

Requirements on the cluster: every node has normzoo installed (same
version) and sees the sweep directory and the sweep file at the same path
(shared storage such as NFS or a mounted bucket). A task that cannot write
to the sweep directory fails with an error naming the node and the path. A
task whose node or worker dies records the run as failed; its checkpoints
stay, and re-running the sweep resumes it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from normzoo.sweeps.runner import LocalLauncher, RunSpec
from normzoo.sweeps.spec import Sweep
from normzoo.train import rundir


def parse_resources(text: str) -> dict[str, float]:
  """``"cpu:2,gpu:1"`` -> ``{"num_cpus": 2.0, "num_gpus": 1.0}`` (other names: custom resources)."""
  out: dict[str, Any] = {}
  custom = {}
  for item in filter(None, (t.strip() for t in text.split(","))):
    name, _, amount = item.partition(":")
    try:
      value = float(amount)
    except ValueError:
      raise ValueError(f"--resources_per_run: {item!r} is not NAME:AMOUNT") from None
    if name == "cpu":
      out["num_cpus"] = value
    elif name == "gpu":
      out["num_gpus"] = value
    else:
      custom[name] = value
  if custom:
    out["resources"] = custom
  return out


def _execute_on_node(sweep_path: str, run_name: str, overrides: dict[str, Any],
                     run_workdir: str, sweep_workdir: str) -> dict[str, Any]:
  """The body of the Ray task: check shared storage, then run like the local launcher."""
  node = socket.gethostname()
  try:
    os.makedirs(run_workdir, exist_ok=True)
    probe = os.path.join(run_workdir, f".write_test_{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    return {"status": "failed", "error": f"node {node} cannot write to the sweep directory "
            f"{sweep_workdir!r} ({e}); it must be on storage every node sees"}
  if not os.path.exists(sweep_path):
    return {"status": "failed", "error": f"node {node} cannot read the sweep file {sweep_path!r}"}
  result = LocalLauncher()(_SweepRef(sweep_path), RunSpec(run_name, overrides, run_workdir),
                           sweep_workdir)
  return {**result, "node": node}


class _SweepRef:
  """What LocalLauncher needs of a Sweep (its path), without shipping the config."""

  def __init__(self, path: str):
    self.path = path


class RayLauncher:
  """Runs each run as a Ray task on an existing (or local) Ray cluster."""

  def __init__(self, address: str | None = "auto", resources_per_run: str = "cpu:1",
               init_kwargs: dict[str, Any] | None = None):
    try:
      import ray
    except ImportError:
      raise ValueError("--launcher=ray needs Ray: pip install 'normzoo[ray]'") from None
    self._ray = ray
    if not ray.is_initialized():
      try:
        ray.init(address=address, **(init_kwargs or {}))
      except ConnectionError as e:
        # Ray's own traceback says nothing of normzoo's flags; one line does.
        raise ValueError(
            f"--launcher=ray: no Ray cluster at --ray_address={address} "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); start one with "
            f"`ray start --head` (and `ray start --address=HEAD:6379` on the other nodes), or "
            f"pass --ray_address=local to start a single-machine cluster for this sweep") from None
    self._task = ray.remote(max_retries=0, **parse_resources(resources_per_run))(
        _execute_on_node)

  def __call__(self, sweep: Sweep, run: RunSpec, sweep_workdir: str) -> dict[str, Any]:
    paths = [os.path.abspath(p) for p in (sweep.path, run.workdir, sweep_workdir)]
    ref = self._task.remote(paths[0], run.name, run.overrides, paths[1], paths[2])
    try:
      result = self._ray.get(ref)
    except Exception as e:  # the worker or its node died: the run stays resumable
      result = {"status": "failed", "error": f"Ray task failed: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}"}
    if result.get("status") == "failed" and rundir.read_result(run.workdir) is None:
      os.makedirs(run.workdir, exist_ok=True)
      rundir.write_result(run.workdir, {**result, "overrides": run.overrides})
    return result
