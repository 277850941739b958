"""config.precise_bn_batches and config.conv wired into the trainer."""

import functools
import os

import jax
import numpy as np
import pytest

import normzoo
from normzoo.data import epoch_batches, load_dataset
from normzoo.train import build, train_and_evaluate
from tests.train.helpers import tiny_config
from tests.train.test_multihost import _final_checkpoint


def test_precise_bn_replaces_running_stats_with_population_stats(tmp_path):
  config = tiny_config(num_epochs=1, precise_bn_batches=3)
  workdir = str(tmp_path / "run")
  result = train_and_evaluate(config, workdir, devices=jax.devices()[:4])
  assert result["status"] == "done"
  saved = _final_checkpoint(workdir)

  # Independent recomputation on one device: the same params, the same first 3 batches.
  dataset = load_dataset(config)
  model = build.make_model(tiny_config(num_epochs=1, sync_batch_stats=False),
                           dataset.num_classes)
  batches = [images for images, _, _ in epoch_batches(dataset.train, config.batch_size,
                                                        seed=config.seed, epoch=0)][:3]
  variables = {"params": saved["params"], "batch_stats": saved["batch_stats"]}
  want = normzoo.precise_batch_stats(functools.partial(model.apply, train=True), variables,
                                     batches)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               saved["batch_stats"], want["batch_stats"])


def test_weight_standardized_conv_from_the_config(tmp_path):
  result = train_and_evaluate(tiny_config(num_epochs=1, conv="ws", norm="group",
                                          norm_kwargs={"num_groups": 4}),
                              str(tmp_path / "ws"), devices=jax.devices()[:1])
  assert result["status"] == "done"
  with pytest.raises(ValueError, match="conv"):
    train_and_evaluate(tiny_config(conv="bogus"), str(tmp_path / "bad"))
