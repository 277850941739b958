"""Write the markdown report and plots of a sweep, a comparison or one run into its directory.

  normzoo-report --workdir=sweeps/steps_to_target
  normzoo-report --workdir=runs/compare   # normzoo-compare output
  normzoo-report --workdir=runs/one_run
  python -m experiments.report --workdir=...   # the same, in a clone

  normzoo-report --workdir=sweeps/steps_to_target --out=reports/steps_to_target
  normzoo-report --index=reports   # reports/README.md from every reports/*/report.md

--out writes the report and plots elsewhere (a committed reports/ entry) and
appends the hand-written analysis.md found there.
"""

import sys

from absl import app, flags

from normzoo.cli import config_errors
from normzoo.sweeps.index import write_index
from normzoo.sweeps.report import write_report

_WORKDIR = flags.DEFINE_string("workdir", None, "A sweep, comparison or run directory.")
_TITLE = flags.DEFINE_string("title", "", "Report title (default: from the sweep file).")
_COMMAND = flags.DEFINE_string("command", "", "Command line to print as 'regenerate with'.")
_OUT = flags.DEFINE_string("out", None, "Directory for report.md and the plots "
                           "(default: --workdir); its analysis.md is appended.")
_INDEX = flags.DEFINE_string("index", None, "Write DIR/README.md, the table of the reports "
                             "in DIR's subdirectories (instead of --workdir).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if (_WORKDIR.value is None) == (_INDEX.value is None):
    print("error: pass exactly one of --workdir=DIR (a report) or --index=DIR (the table)",
          file=sys.stderr)
    sys.exit(1)
  try:
    if _INDEX.value is not None:
      path = write_index(_INDEX.value)
    else:
      path = write_report(_WORKDIR.value, _TITLE.value, _COMMAND.value, _OUT.value)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"wrote {path}")


def run() -> None:
  """The ``normzoo-report`` console script."""
  config_errors.run(main, __doc__)


if __name__ == "__main__":
  run()
