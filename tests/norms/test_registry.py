"""The registry as an extension point: decorator, classes and partials, instantiate_norm."""

import functools
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import normzoo
from normzoo.norms import registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Scale(nn.Module):
  """A per-channel scale: the smallest normalizer-shaped module."""
  dtype: object = None

  @nn.compact
  def __call__(self, x):
    return x * self.param("g", nn.initializers.ones, (x.shape[-1],))


@pytest.fixture
def table(monkeypatch):
  """A private copy of the linen registry, so tests can register freely."""
  monkeypatch.setattr(registry, "NORMS", dict(registry.NORMS))
  return registry.NORMS


def test_register_norm_as_a_decorator_and_by_call(table):
  decorated = registry.register_norm("scale_a")(_Scale)
  assert decorated is _Scale and table["scale_a"] is _Scale
  registry.register_norm("scale_b", _Scale)
  assert registry.get_norm("scale_b").func is _Scale
  registry.register_norm("scale_b", _Scale)  # the same constructor again: fine
  with pytest.raises(ValueError, match="'scale_b' is already registered"):
    registry.register_norm("scale_b", normzoo.LayerNorm)
  with pytest.raises(ValueError, match="non-empty string"):
    registry.register_norm("", _Scale)


def test_get_norm_takes_a_class_or_partial_and_checks_its_arguments():
  assert normzoo.get_norm(_Scale, dtype=jnp.bfloat16).keywords == {"dtype": jnp.bfloat16}
  partial = functools.partial(normzoo.GroupNorm, num_groups=4)
  assert normzoo.get_norm(partial, epsilon=1e-3)().num_groups == 4
  with pytest.raises(ValueError, match=r"norm '_Scale' does not accept argument\(s\) \['epsilon'\]"):
    normzoo.get_norm(_Scale, epsilon=1e-3)
  layer = normzoo.nnx.get_norm(normzoo.nnx.GroupNorm, 8, num_groups=2, rngs=nnx.Rngs(0))
  assert layer.num_groups == 2


@pytest.mark.parametrize("norm,train,expected", [
    (normzoo.get_norm("batch"), True, dict(use_running_average=False, dtype=jnp.bfloat16)),
    (normzoo.get_norm("batch"), False, dict(use_running_average=True, dtype=jnp.bfloat16)),
    (normzoo.get_norm("batch", use_running_average=True), True, dict(use_running_average=True)),
    (normzoo.get_norm("group", num_groups=4, dtype=jnp.float32), True, dict(dtype=jnp.float32)),
    (functools.partial(_Scale), True, dict(dtype=jnp.bfloat16)),
])
def test_instantiate_norm_passes_only_what_the_module_takes(norm, train, expected):
  module = normzoo.instantiate_norm(norm, train=train, dtype=jnp.bfloat16, name="n")
  for field, value in expected.items():
    assert getattr(module, field) == value, field
  assert not hasattr(module, "use_running_average") or "use_running_average" in expected
  x = jnp.ones((4, 3, 3, 8)) * jnp.arange(4.0)[:, None, None, None]
  variables = module.init(jax.random.PRNGKey(0), x)
  module.apply(variables, x, mutable=["batch_stats"])


_CONFIG = '''
import flax.linen as nn
import normzoo
from normzoo.configs import synthetic


@normzoo.register_norm("my_scale")
class MyScale(nn.Module):
  dtype: object = None

  @nn.compact
  def __call__(self, x):
    return x * self.param("g", nn.initializers.ones, (x.shape[-1],))


def get_config():
  config = synthetic.get_config()
  config.norm = "my_scale"
  config.num_epochs = 1
  return config
'''


def test_a_config_file_registers_its_own_norm_and_the_cli_trains_with_it(tmp_path):
  config = tmp_path / "my_norm_config.py"
  config.write_text(_CONFIG)
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, "-m", "experiments.main", f"--config={config}",
                         f"--workdir={tmp_path / 'run'}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "my_scale" in (tmp_path / "run" / "config.json").read_text()
