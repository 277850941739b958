"""Bad configs fail fast with a ValueError that names the problem."""

import os

import pytest

from normzoo.data import DataError
from normzoo.train import train_and_evaluate, validate_config
from tests.train.helpers import tiny_config


@pytest.mark.parametrize("overrides,message", [
    (dict(norm="batchnorm"), "unknown norm 'batchnorm'; valid names are"),
    (dict(model="vgg"), "unknown model 'vgg'; valid names are"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'; valid names are"),
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; valid names are: sgd, adam"),
    (dict(lr_schedule="linear"), "unknown lr_schedule 'linear'"),
    (dict(batch_size=30), "batch_size 30 is not divisible by the 8 devices"),
    (dict(num_epochs=0), "num_epochs must be >= 1"),
    (dict(learning_rate=-1.0), "learning_rate must be > 0"),
    (dict(norm_position="middle"), "norm_position='middle' is not valid"),
    (dict(norm="group", norm_kwargs={"num_group": 4}), "does not accept argument"),
    (dict(warmup_epochs=5.0), "warmup_epochs=5.0 must be < num_epochs=1"),
    (dict(lr_schedule="step", lr_boundaries_epochs=(3, 1)), "lr_boundaries_epochs"),
    (dict(batch_size=512), "exceeds the 256 training examples"),
])
def test_bad_config_raises_value_error(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    train_and_evaluate(tiny_config(**overrides), str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")  # failed before anything was written


def test_non_bool_host_allocator_switch_is_named():
  config = tiny_config()
  del config["tune_host_allocator"]  # ConfigDict's own typing would refuse a str for a bool
  config.tune_host_allocator = "yes"
  with pytest.raises(ValueError, match="tune_host_allocator must be True or False, got 'yes'"):
    validate_config(config, 8)


def test_missing_data_is_a_data_error(tmp_path):
  config = tiny_config(dataset="mnist", data_dir=str(tmp_path / "nowhere"))
  with pytest.raises(DataError, match="does not exist"):
    train_and_evaluate(config, str(tmp_path / "run"))


def test_missing_field_is_named():
  config = tiny_config()
  del config["optimizer"]
  with pytest.raises(ValueError, match="missing field"):
    validate_config(config, 1)


def test_valid_config_passes():
  validate_config(tiny_config(), 8)
