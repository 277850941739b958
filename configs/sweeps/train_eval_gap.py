"""Train/eval discrepancy of batch norm: batch statistics vs running statistics.

Every evaluation records the test accuracy twice: with the running averages
(``test_accuracy``, the usual evaluation) and with the test batch's own
statistics in training mode (``test_accuracy_batch_stats``). Swept over the
running-average momentum and the batch size, for batch norm and batch
renorm. Claims tested: running statistics lag behind the weights when the
momentum is high and the run is short, and small batches make batch
statistics noisy; both open a train/eval gap (Ioffe 2017), which batch
renorm was designed to close.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid


def get_config():
  return common.base(train_examples=5000, num_epochs=2)


def get_sweep():
  return common.scale_learning_rate(
      grid(norm=["batch", "batch_renorm"], **{"norm_kwargs.momentum": [0.5, 0.9, 0.99, 0.999]},
           batch_size=[8, 128], seed=common.SEEDS))


def get_report():
  return dict(x="norm_kwargs.momentum", xscale="logit",
              y=["test_accuracy", "test_accuracy_batch_stats"],
              title="Running vs batch statistics at test time (Fashion-MNIST)",
              claim="high momentum in short runs and small batches open a train/eval gap; "
                    "batch renorm narrows it.")
