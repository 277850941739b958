r"""Train and evaluate one configuration.

  normzoo-train --config=normzoo:fashion_mnist --workdir=runs/fmnist_gn \
      --config.norm=group --config.num_epochs=2
  python -m experiments.main --config=configs/fashion_mnist.py ...   # in a clone

--config takes a config file or a shipped one by name (normzoo:fashion_mnist,
normzoo:mnist, normzoo:cifar10, normzoo:cifar10_resnet20, normzoo:synthetic).

Re-running the same command resumes from the last checkpoint in --workdir (or
reports the run if it already finished). Bad values (unknown norm, model,
dataset, optimizer, missing data, ...) exit with status 1 and one line on
stderr. Field reference: configs/default.py.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from normzoo.cli import config_errors
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


def run() -> None:
  """The ``normzoo-train`` console script."""
  config_errors.run(main, __doc__)


if __name__ == "__main__":
  run()
