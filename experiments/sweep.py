"""Run every configuration of a sweep file, resumably.

  python -m experiments.sweep --sweep=configs/sweeps/batch_size.py --workdir=sweeps/batch_size \
      [--parallel=2]

One run directory per override set under --workdir, named from the overrides.
Re-running skips finished runs, resumes interrupted ones from their
checkpoints and retries failed ones; a diverged or failed run is recorded and
the sweep carries on. Then: python -m experiments.report --workdir=...
"""

import sys

from absl import app, flags

from normzoo.sweeps import runner

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (get_config() and get_sweep()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (created; reused to resume).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at a time on this machine.")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", ["local"], "Where runs execute.")
flags.mark_flags_as_required(["sweep", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    launcher = runner.LocalLauncher(_PARALLEL.value)
    results = runner.run_sweep(_SWEEP.value, _WORKDIR.value, launcher, _PARALLEL.value)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  failed = sorted(name for name, r in results.items() if r.get("status") == "failed")
  print(f"finished: {len(results)} runs, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else ""))


if __name__ == "__main__":
  app.run(main)
