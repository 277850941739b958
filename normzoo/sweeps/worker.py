"""One run of a sweep, in its own process: ``python -m normzoo.sweeps.worker``.

Started by the sweep launchers; not meant to be typed by hand (use
``python -m experiments.main`` for a single run).
"""

import sys

from absl import app, flags

from normzoo.sweeps.runner import run_one

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file.")
_RUN = flags.DEFINE_string("run", None, "Run name (a directory of the sweep).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.")
flags.mark_flags_as_required(["sweep", "run", "workdir"])


def main(argv):
  del argv
  result = run_one(_SWEEP.value, _RUN.value, _WORKDIR.value)
  sys.exit(1 if result.get("status") == "failed" else 0)


if __name__ == "__main__":
  app.run(main)
