"""Tiny smoke-test run on generated data: no files, about a second per epoch on CPU."""

from normzoo.configs import default


def get_config():
  c = default.get_config()
  c.dataset = "synthetic"
  c.train_examples = 512
  c.test_examples = 200
  c.synthetic_image_shape = (8, 8, 1)
  c.model = "mnist_cnn_small"
  c.model_kwargs = {"features": (8,)}
  c.batch_size = 32
  c.num_epochs = 2
  c.learning_rate = 0.05
  return c
