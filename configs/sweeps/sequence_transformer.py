"""Normalization in a small transformer on row-sequential Fashion-MNIST.

28 rows as 28 tokens (normzoo/models/sequence.py): 2 blocks, d_model 64,
4 heads. LayerNorm / RMSNorm / BatchNorm (over batch x tokens) / none, in
pre-norm and post-norm blocks, AdamW at two learning rates (100 warmup
steps, then cosine), 1,000 steps, 2 paired seeds. Steps to target, final
accuracy, divergences; BN's running vs batch statistics at test time.

Budget: 1,000 steps x 128 images; 32 runs.
"""

from normzoo.configs.sweeps import common
from normzoo.sweeps import grid

STEPS = 1000


def get_config():
  return common.sequence_base("row_transformer", STEPS)


def get_sweep():
  return grid(norm=["layer", "rms", "batch", "none"], **{"model_kwargs.block": ["pre", "post"]},
              learning_rate=[1e-3, 3e-3], seed=[0, 1])


def get_report():
  return dict(x="learning_rate", series="norm", logx=10, targets=[0.8, 0.85],
              y=["test_accuracy", "test_accuracy_batch_stats"], baseline={"norm": "layer"},
              budget_steps=STEPS,
              title="Transformer on row-sequential Fashion-MNIST: norm x pre/post (1,000 steps)",
              claim="pre-norm trains more stably than post-norm (Xiong et al. 2020); RMSNorm "
                    "matches LayerNorm (Zhang & Sennrich 2019); batch norm suits sequences "
                    "poorly (Shen et al. 2020).")
