r"""Run every configuration of a sweep file, resumably.

  normzoo-sweep --sweep=normzoo:steps_to_target --workdir=sweeps/steps_to_target [--parallel=2]
  python -m experiments.sweep --sweep=configs/sweeps/steps_to_target.py ...   # in a clone

  normzoo-sweep --sweep=... --workdir=/shared/sweeps/x --launcher=ray \
      --ray_address=auto --resources_per_run=cpu:2

One run directory per override set under --workdir, named from the overrides.
Re-running skips finished runs, resumes interrupted ones from their
checkpoints and retries failed ones; a diverged or failed run is recorded and
the sweep carries on. Then: normzoo-report --workdir=...

With --launcher=ray each run is a Ray task on an existing cluster (normzoo
installed on every node, --workdir and the sweep file on storage every node
sees); --parallel then caps the runs in flight (default: all, Ray schedules
them by --resources_per_run).
"""

import sys

from absl import app, flags

from normzoo.cli import config_errors
from normzoo.sweeps import runner

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (get_config() and get_sweep()), "
                             "or a shipped one: normzoo:NAME.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (created; reused to resume).")
_PARALLEL = flags.DEFINE_integer("parallel", None, "Runs at a time (local default 1; ray: all).")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", ["local", "ray"], "Where runs execute.")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", "auto",
                                   "Ray cluster: 'auto', 'host:port', or 'local' for a new one.")
_RESOURCES = flags.DEFINE_string("resources_per_run", "cpu:1",
                                 "Ray resources per run, e.g. cpu:2,gpu:1.")
flags.mark_flags_as_required(["sweep", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    if _LAUNCHER.value == "ray":
      from normzoo.sweeps.ray_launcher import RayLauncher
      address = None if _RAY_ADDRESS.value == "local" else _RAY_ADDRESS.value
      launcher = RayLauncher(address, _RESOURCES.value)
      parallel = _PARALLEL.value or 256
    else:
      parallel = _PARALLEL.value or 1
      launcher = runner.LocalLauncher(parallel)
    results = runner.run_sweep(_SWEEP.value, _WORKDIR.value, launcher, parallel)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  failed = sorted(name for name, r in results.items() if r.get("status") == "failed")
  print(f"finished: {len(results)} runs, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else ""))


def run() -> None:
  """The ``normzoo-sweep`` console script."""
  config_errors.run(main, __doc__)


if __name__ == "__main__":
  run()
