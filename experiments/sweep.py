"""``python -m experiments.sweep`` in a clone: the ``normzoo-sweep`` command (normzoo/cli/sweep.py)."""

from normzoo.cli.sweep import run

if __name__ == "__main__":
  run()
