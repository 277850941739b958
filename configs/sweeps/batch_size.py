"""Batch norm vs group norm across the per-device batch size (Group Norm paper, Figure 1).

Per-device batch sizes 2 ... 128 on one device, the learning rate scaled
linearly with the batch (0.05 at 128), a fixed number of epochs. Claim
tested (Wu & He 2018): BN's accuracy degrades as the per-device batch
shrinks (ResNet-50/ImageNet: 23.6 -> 34.7 % error from 32 to 2 images per
GPU) while GN's does not (24.1 -> 24.1 %). Two variants made for the
small-batch regime ride along: batch renorm (Ioffe 2017), which corrects
batch statistics towards the running ones, and FRN (Singh & Krishnan 2020),
which uses no batch statistics at all.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

BATCH_SIZES = [2, 4, 8, 16, 32, 64, 128]


def get_config():
  return common.base(train_examples=4096, num_epochs=3)


def get_sweep():
  return common.scale_learning_rate(
      grid(norm=["batch", "group", "batch_renorm", "frn"], batch_size=BATCH_SIZES,
           seed=common.SEEDS))


def get_report():
  return dict(x="batch_size", series="norm", logx=2,
              title="Batch norm vs group norm across the batch size (Fashion-MNIST)",
              claim="BN degrades as the per-device batch shrinks; GN does not.")
