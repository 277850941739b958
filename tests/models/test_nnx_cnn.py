"""The nnx MNIST CNN: the same function as the linen model, and a short nnx training run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import normzoo
from normzoo.models import MnistCNN as LinenMnistCNN
from normzoo.models.nnx_cnn import MnistCNN
from normzoo.train import nnx_train

RNG = np.random.default_rng(21)


def _load_linen(model: MnistCNN, variables: dict) -> None:
  params, stats = variables["params"], variables.get("batch_stats", {})
  layers = [(f"conv_{i}", c) for i, c in enumerate(model.convs)]
  layers += [(f"norm_{i}", n) for i, n in enumerate(model.norms)]
  layers += [("dense_0", model.dense), ("head", model.head)]
  for name, layer in layers:
    for collection in (params, stats):
      for key, value in collection.get(name, {}).items():
        getattr(layer, key)[...] = value


@pytest.mark.parametrize("norm,kwargs,position", [("batch", {}, "before_activation"),
                                                  ("group", dict(num_groups=8),
                                                   "after_activation")])
def test_nnx_cnn_computes_the_linen_cnn(norm, kwargs, position):
  x = jnp.asarray(RNG.standard_normal((6, 28, 28, 1)).astype(np.float32))
  linen = LinenMnistCNN(norm=normzoo.get_norm(norm, **kwargs), norm_position=position)
  variables = linen.init(jax.random.key(0), x, train=False)
  model = MnistCNN(norm=norm, norm_kwargs=kwargs, norm_position=position, rngs=nnx.Rngs(0))
  assert (sum(v.size for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
          == sum(v.size for v in jax.tree.leaves(variables["params"])))
  _load_linen(model, variables)
  for train in (True, False):
    getattr(model, "train" if train else "eval")()
    expected, updates = linen.apply(variables, x, train=train, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(expected), rtol=2e-4, atol=2e-4)
    # The nnx model updated its statistics in place; the linen one returned them.
    variables = {**variables, **updates}


def _synthetic(n: int, templates: np.ndarray):
  labels = RNG.integers(0, 10, n)
  images = templates[labels] + 0.5 * RNG.standard_normal((n, 28, 28, 1))
  return images.astype(np.float32), labels.astype(np.int32)


def test_nnx_training_loop_learns_a_synthetic_task():
  templates = RNG.standard_normal((10, 28, 28, 1))
  model = MnistCNN(norm="batch", features=(8,), hidden_units=32, rngs=nnx.Rngs(0))
  optimizer = nnx_train.make_optimizer(model, learning_rate=3e-3)
  batches = [_synthetic(32, templates) for _ in range(40)]
  losses = nnx_train.fit(model, optimizer, batches)
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
  images, labels = _synthetic(256, templates)
  model.eval()
  assert float(nnx_train.accuracy(model, jnp.asarray(images), jnp.asarray(labels))) > 0.8
  # Training moved the running statistics away from their initial values.
  assert not np.allclose(np.asarray(model.norms[0].mean[...]), 0.0)


def test_fit_refuses_a_non_finite_loss():
  model = MnistCNN(norm="none", features=(4,), hidden_units=None, rngs=nnx.Rngs(0))
  optimizer = nnx_train.make_optimizer(model)
  images = np.full((4, 28, 28, 1), np.nan, np.float32)
  with pytest.raises(FloatingPointError, match="step 0"):
    nnx_train.fit(model, optimizer, [(images, np.zeros(4, np.int32))])
