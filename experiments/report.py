"""``python -m experiments.report`` in a clone: the ``normzoo-report`` command (normzoo/cli/report.py)."""

from normzoo.cli.report import run

if __name__ == "__main__":
  run()
