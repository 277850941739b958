"""Dense-layer options: dropout_rate (training mode only, unbiased, per-step masks) and flatten_norm."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import normzoo
from normzoo.models import get_model
from normzoo.train import build, distributed
from normzoo.train.state import create_train_state
from normzoo.train.step import make_eval_step, make_train_step
from tests.models.helpers import SMALL
from tests.train.helpers import tiny_config


def _init(name, rate, norm="none"):
  fields, shape = SMALL[name]
  model = get_model(name, norm=normzoo.get_norm(norm), dropout_rate=rate, **fields)
  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  return model, variables, x


@pytest.mark.parametrize("name", sorted(SMALL))
def test_eval_is_the_model_without_dropout_and_train_mode_drops(name):
  model, variables, x = _init(name, 0.5)
  plain = model.clone(dropout_rate=0.0)
  np.testing.assert_array_equal(model.apply(variables, x, train=False),
                                plain.apply(variables, x, train=False))
  if "batch_stats" in variables:
    return  # train-mode outputs also differ by batch statistics; checked on norm=none below
  a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
  b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(plain.apply(variables, x, train=True), plain.apply(
      variables, x, train=False))


def test_train_mode_is_unbiased():
  # Inverted dropout: averaged over masks, the head's input (so the logits,
  # the head being linear) equals the eval-mode one.
  model, variables, x = _init("mnist_cnn", 0.5)
  keys = jax.random.split(jax.random.PRNGKey(4), 4000)
  runs = jax.vmap(lambda k: model.apply(variables, x, train=True, rngs={"dropout": k}))(keys)
  expected = np.asarray(model.apply(variables, x, train=False), np.float64)
  spread = np.asarray(runs).std(0) / np.sqrt(len(keys))
  assert np.all(np.abs(np.asarray(runs, np.float64).mean(0) - expected) < 5 * spread + 1e-6)


def test_bad_rate():
  with pytest.raises(ValueError, match="dropout_rate"):
    get_model("mlp", dropout_rate=1.0)


def test_train_step_draws_new_masks_and_batch_stats_eval_has_no_dropout():
  config = tiny_config(dropout_rate=0.5, model="mlp", norm="batch",
                       model_kwargs={"width": 16, "depth": 2})
  mesh = distributed.make_mesh(jax.devices()[:2])
  model = build.make_model(config, 10)
  assert model.dropout_rate == 0.5
  state = create_train_state(model, optax.sgd(0.0), jax.random.PRNGKey(0), (8, 8, 1), mesh)
  rng = np.random.default_rng(0)
  batch = (rng.standard_normal((32, 8, 8, 1)).astype(np.float32),
           rng.integers(0, 10, 32).astype(np.int32), np.ones(32, bool))
  batch = jax.device_put(batch, distributed.batch_sharding(mesh))
  step = make_train_step(model, mesh, donate=False)
  # lr 0: parameters do not move, so different losses come from different masks.
  state1, m0 = step(state, *batch)
  _, m1 = step(state1, *batch)
  assert float(m0["loss_sum"]) != float(m1["loss_sum"])
  with_dropout = make_eval_step(model, mesh, batch_statistics=True)(state, *batch)
  without = make_eval_step(model.clone(dropout_rate=0.0), mesh,
                           batch_statistics=True)(state, *batch)
  assert float(with_dropout["loss_sum"]) == float(without["loss_sum"])


def test_flatten_norm_normalizes_what_the_dense_layers_see():
  model, variables, x = _init("mnist_cnn", 0.0)
  with_norm = get_model("mnist_cnn", norm=normzoo.get_norm("none"), flatten_norm="layer",
                        **SMALL["mnist_cnn"][0])
  v = with_norm.init(jax.random.PRNGKey(0), x, train=False)
  assert "flatten_norm" in v["params"]
  _, state = with_norm.apply(v, x, train=False, capture_intermediates=True, mutable=True)
  out = np.asarray(state["intermediates"]["flatten_norm"]["__call__"][0], np.float64)
  np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-2)
  with pytest.raises(ValueError, match="unknown"):
    get_model("mnist_cnn", flatten_norm="nope").init(jax.random.PRNGKey(0), x, train=False)
