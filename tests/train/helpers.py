"""Tiny configs shared by the training tests (synthetic data, small model)."""

from __future__ import annotations

import ml_collections

from normzoo.configs import synthetic


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  """configs/synthetic.py, shrunk further: 256 train / 100 test 8x8 images, batch 32."""
  c = synthetic.get_config()
  c.train_examples = 256
  c.test_examples = 100
  c.num_epochs = 1
  c.learning_rate = 0.1
  for key, value in overrides.items():
    setattr(c, key, value)
  return c
