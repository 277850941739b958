r"""Train one run per normalizer and tabulate them.

  normzoo-compare --config=normzoo:fashion_mnist --workdir=runs/compare \
      --norms=batch,group,layer,instance,none --config.num_epochs=1
  python -m experiments.compare --config=configs/fashion_mnist.py ...   # in a clone

Each run goes to <workdir>/<norm>/ with the usual resume semantics (finished
runs are reused). The markdown table is printed and written to
<workdir>/comparison.md. Bad values exit with status 1 and one line on stderr.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from normzoo.cli import config_errors
from normzoo.train import compare

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory holding one run per norm.")
_NORMS = flags.DEFINE_list("norms", ["batch", "group", "layer", "instance", "none"],
                           "Normalizers to compare (registry names).")
flags.DEFINE_bool("config_help", False, "Print the documented config fields (configs/default.py) and exit.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    results = compare.run_comparison(config, workdir, _NORMS.value)
  except ValueError as e:  # user errors: bad config values, unknown names, missing data
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  header = (f"{config.model} on {config.dataset}, {config.num_epochs} epoch(s), "
            f"batch {config.batch_size}, {config.optimizer} lr {config.learning_rate} "
            f"({config.lr_schedule})")
  print(compare.write_table(workdir, results, header))


def run() -> None:
  """The ``normzoo-compare`` console script."""
  config_errors.run(main, __doc__)


if __name__ == "__main__":
  run()
