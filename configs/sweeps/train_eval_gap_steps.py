"""Running vs batch statistics at test time, with equal step counts across batch sizes.

``train_eval_gap`` gave batch 8 1,250 steps against 78 at batch 128, so
batch size and the number of running-average updates co-varied. Here both
batch sizes get 600 steps (``common.equal_steps``: 100 steps per epoch), at
the learning rate of ``common.BEST_LR`` scaled linearly with the batch.

Budget: 600 steps at batch 8 and at batch 128; 48 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 600


def get_config():
  return common.steps_base(STEPS, warmup_steps=100)


def get_sweep():
  runs = grid(norm=["batch", "batch_renorm"],
              **{"norm_kwargs.momentum": [0.5, 0.9, 0.99, 0.999]},
              batch_size=[8, 128], seed=common.SEEDS)
  for run in runs:
    run["learning_rate"] = common.BEST_LR[run["norm"]] * run["batch_size"] / 128
  return common.equal_steps(runs)


def get_report():
  return dict(x="norm_kwargs.momentum", xscale="logit",
              y=["test_accuracy", "test_accuracy_batch_stats"], budget_steps=STEPS,
              title="Running vs batch statistics at test time, 600 steps at every batch size",
              claim="high momentum in short runs and small batches open a train/eval gap; "
                    "batch renorm narrows it.")
