"""Write the markdown report and plots of a sweep, a comparison or one run into its directory.

  python -m experiments.report --workdir=sweeps/batch_size
  python -m experiments.report --workdir=runs/compare   # experiments.compare output
  python -m experiments.report --workdir=runs/one_run
"""

import sys

from absl import app, flags

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


if __name__ == "__main__":
  app.run(main)
