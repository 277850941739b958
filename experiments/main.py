"""Train and evaluate one configuration.

  python -m experiments.main --config=configs/fashion_mnist.py --workdir=runs/fmnist_bn \
      --config.norm=group --config.num_epochs=2

Re-running the same command resumes from the last checkpoint in --workdir (or
reports the run if it already finished). Bad values (unknown norm, model,
dataset, optimizer, missing data, ...) exit with status 1 and one line on
stderr. Field reference: configs/default.py.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from normzoo import cli
from normzoo.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; reused to resume).")
flags.DEFINE_bool("config_help", False, "Print the documented config fields (configs/default.py) and exit.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ValueError as e:  # user errors: bad config values, unknown names, missing data
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main)
