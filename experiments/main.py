"""``python -m experiments.main`` in a clone: the ``normzoo-train`` command (normzoo/cli/train.py)."""

from normzoo.cli.train import run

if __name__ == "__main__":
  run()
