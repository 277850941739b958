"""``python -m experiments.compare`` in a clone: the ``normzoo-compare`` command (normzoo/cli/compare.py)."""

from normzoo.cli.compare import run

if __name__ == "__main__":
  run()
