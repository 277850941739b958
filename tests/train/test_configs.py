"""Every shipped config validates and builds its model (no data, no training)."""

import importlib

import pytest

from normzoo.train import build, validate_config


@pytest.mark.parametrize("name", ["default", "synthetic", "mnist", "fashion_mnist", "cifar10",
                                  "cifar10_resnet20"])
def test_config_validates_and_builds(name):
  config = importlib.import_module(f"normzoo.configs.{name}").get_config()
  config.lock()
  validate_config(config, 8)
  build.make_model(config, 10)


def test_fashion_mnist_recipe():
  from normzoo.configs import fashion_mnist
  c = fashion_mnist.get_config()
  assert (c.model, c.batch_size, c.optimizer, c.momentum, c.num_epochs) == (
      "mnist_cnn", 128, "sgd", 0.9, 10)
  assert build.norm_kwargs(c) == {"momentum": 0.9}  # batch-norm momentum


def test_cifar10_recipe():
  from normzoo.configs import cifar10
  c = cifar10.get_config()
  assert (c.learning_rate, c.momentum, c.weight_decay, c.batch_size, c.num_epochs,
          c.lr_schedule) == (0.1, 0.9, 5e-4, 128, 200, "cosine")
