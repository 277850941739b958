"""Size of the normalization statistic apart from the optimizer batch (ghost batch norm).

Replaces ``batch_size`` as the test of the GN paper's claim. The optimizer
batch is fixed at 128 for 800 steps (100 of linear warmup, then cosine), so
every run gets the same steps, images and gradient noise; only the virtual
batch over which ghost batch norm takes its statistics changes (2, 4, 8,
32, 128; 128 is plain batch norm). Group and layer norm are the
batch-independent controls. mnist_cnn and mlp, 3 paired seeds; accuracy with
running and with batch statistics; paired differences against virtual batch 128.

Budget: 800 steps x 128 images; 42 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid, product

STEPS = 800


def get_config():
  return common.steps_base(STEPS, batch_size=128, warmup_steps=100)


def get_sweep():
  models = grid(model=["mnist_cnn", "mlp"])
  ghost = grid(norm=["ghost_batch"], **{"norm_kwargs.virtual_batch_size": [2, 4, 8, 32, 128]})
  controls = grid(norm=["group", "layer"])
  return product(models, ghost + controls, grid(seed=common.SEEDS))


def get_report():
  return dict(x="norm_kwargs.virtual_batch_size", series="model", logx=2,
              y=["test_accuracy", "test_accuracy_batch_stats"], budget_steps=STEPS,
              baseline={"norm_kwargs.virtual_batch_size": 128}, targets=[0.8, 0.85],
              title="Statistic size at a fixed optimizer batch (ghost batch norm, 800 steps)",
              claim="batch norm degrades as the batch its statistics come from shrinks, while "
                    "group and layer norm do not depend on it (Wu & He 2018), with the "
                    "optimizer batch and step count held fixed.")
