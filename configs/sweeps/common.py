"""The base every shipped sweep starts from: Fashion-MNIST, small enough for 2 CPU cores.

Each sweep trains on a fixed random subset of the training set (the test
set is always the full 10,000 images) for a few epochs, so that a sweep of
tens of runs with 3 seeds finishes in well under an hour on 2 CPU cores.
The claims are about relative behaviour, which shows at this scale; the
absolute accuracies are below those of full-length training.
"""

from configs import fashion_mnist

SEEDS = [0, 1, 2]
CORE_NORMS = ["batch", "group", "layer", "instance", "none"]
# The research variants (normzoo/norms/variants), as named in the registry.
VARIANT_NORMS = ["batch_renorm", "ghost_batch", "frn", "evonorm_b0", "evonorm_s0", "rms",
                 "switchable"]


def base(train_examples: int = 10000, num_epochs: int = 3):
  c = fashion_mnist.get_config()
  c.train_examples = train_examples
  c.num_epochs = num_epochs
  c.checkpoint_every_epochs = 1
  return c


def scale_learning_rate(runs: list[dict], base_lr: float = 0.05, base_batch: int = 128
                        ) -> list[dict]:
  """Adds ``learning_rate = base_lr * batch_size / base_batch`` (the linear scaling rule)."""
  for run in runs:
    run["learning_rate"] = base_lr * run["batch_size"] / base_batch
  return runs
