"""Batch norm vs group/layer norm across the batch size where BN's statistic rests on few values.

The `batch_size` sweep found no small-batch degradation on ``mnist_cnn``: a
conv-layer statistic averages batch x H x W values (392 or more even at
batch 2). Here every norm sees the 1-d (N, 512) features of ``mlp`` (three
hidden layers), so a batch-norm statistic averages exactly ``batch`` values:
2 at batch 2, as in the Group Norm paper's regime where BN fails. Same
budget as `batch_size` (4,096 images, 3 epochs, learning rate scaled
linearly with the batch, 0.05 at 128). Claim tested (Wu & He 2018): BN's
accuracy degrades as the per-device batch shrinks; GN's and LN's do not.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

BATCH_SIZES = [2, 4, 8, 16, 32, 128]


def get_config():
  c = common.base(train_examples=4096, num_epochs=3)
  c.model = "mlp"
  return c


def get_sweep():
  return common.scale_learning_rate(
      grid(norm=["batch", "group", "layer"], batch_size=BATCH_SIZES, seed=common.SEEDS))


def get_report():
  return dict(x="batch_size", series="norm", logx=2,
              title="MLP (1-d features): batch vs group vs layer norm across the batch size",
              claim="BN degrades as the per-device batch shrinks; GN and LN do not.")
