"""Write the markdown report and plots of a sweep, a comparison or one run into its directory.

  normzoo-report --workdir=sweeps/steps_to_target
  normzoo-report --workdir=runs/compare   # normzoo-compare output
  normzoo-report --workdir=runs/one_run
  python -m experiments.report --workdir=...   # the same, in a clone
"""

import sys

from absl import flags

from normzoo.cli import config_errors
from normzoo.sweeps.report import write_report

_WORKDIR = flags.DEFINE_string("workdir", None, "A sweep, comparison or run directory.")
_TITLE = flags.DEFINE_string("title", "", "Report title (default: from the sweep file).")
_COMMAND = flags.DEFINE_string("command", "", "Command line to print as 'regenerate with'.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  try:
    path = write_report(_WORKDIR.value, _TITLE.value, _COMMAND.value)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"wrote {path}")


def run() -> None:
  """The ``normzoo-report`` console script."""
  config_errors.run(main, __doc__)


if __name__ == "__main__":
  run()
