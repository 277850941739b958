"""The train step: cross-device batch norm equals single-device batch norm on the global batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from normzoo.train import build, distributed
from normzoo.train.state import create_train_state
from normzoo.train.step import cross_entropy, make_eval_step, make_train_step
from tests.train.helpers import tiny_config

BATCH = 32


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.standard_normal((BATCH, 8, 8, 1)).astype(np.float32) * 2 + 1
  labels = rng.integers(0, 10, BATCH).astype(np.int32)
  return images, labels, np.ones(BATCH, bool)


def _one_step(config, num_devices):
  mesh = distributed.make_mesh(jax.devices()[:num_devices])
  model = build.make_model(config, 10)
  tx = optax.sgd(0.1, momentum=0.9)
  state = create_train_state(model, tx, jax.random.PRNGKey(0), (8, 8, 1), mesh)
  step = make_train_step(model, mesh, donate=False)
  batch = jax.device_put(_batch(), distributed.batch_sharding(mesh))
  new_state, metrics = step(state, *batch)
  loss = float(metrics["loss_sum"] / metrics["count"])
  return loss, jax.device_get(new_state.params), jax.device_get(new_state.batch_stats)


def _max_diff(a, b):
  return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def single_device():
  return _one_step(tiny_config(sync_batch_stats=True), 1)


def test_sync_batch_stats_on_8_devices_matches_one_device(single_device):
  assert jax.device_count() >= 8
  loss1, params1, stats1 = single_device
  loss8, params8, stats8 = _one_step(tiny_config(sync_batch_stats=True), 8)
  assert loss8 == pytest.approx(loss1, rel=1e-5)
  assert _max_diff(params1, params8) < 1e-5
  assert _max_diff(stats1, stats8) < 1e-5
  assert _max_diff(params1, jax.tree.map(np.zeros_like, params1)) > 1e-3  # the step did move


def test_per_device_batch_stats_differ_from_global(single_device):
  loss1, params1, stats1 = single_device
  loss8, params8, stats8 = _one_step(tiny_config(sync_batch_stats=False), 8)
  assert abs(loss8 - loss1) > 1e-4
  assert _max_diff(params1, params8) > 1e-4
  # Running means are averaged over devices: the mean of per-device means is
  # the global mean, but the variances differ (within- vs total variance).
  assert _max_diff(stats1["norm_0"]["var"], stats8["norm_0"]["var"]) > 1e-4


def test_per_example_norm_is_device_count_invariant():
  loss1, params1, _ = _one_step(tiny_config(norm="layer"), 1)
  loss8, params8, _ = _one_step(tiny_config(norm="layer"), 8)
  assert loss8 == pytest.approx(loss1, rel=1e-5)
  assert _max_diff(params1, params8) < 1e-5


def test_eval_counts_only_masked_examples():
  config = tiny_config()
  mesh = distributed.make_mesh(jax.devices()[:8])
  model = build.make_model(config, 10)
  state = create_train_state(model, optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 1), mesh)
  images, labels, mask = _batch()
  mask[20:] = False
  images[20:] = np.nan  # padding must not leak into the sums
  sums = make_eval_step(model, mesh)(state, *jax.device_put(
      (images, labels, mask), distributed.batch_sharding(mesh)))
  logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                       images[:20], train=False)
  expected_loss = float(jnp.sum(cross_entropy(logits, labels[:20])))
  assert float(sums["count"]) == 20
  assert float(sums["loss_sum"]) == pytest.approx(expected_loss, rel=1e-5)
  assert float(sums["correct"]) == float(jnp.sum(jnp.argmax(logits, -1) == labels[:20]))


def test_label_smoothing_cross_entropy():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  labels = jnp.array([0])
  logp = jax.nn.log_softmax(logits[0])
  target = np.array([1 - 0.3 + 0.1, 0.1, 0.1])
  assert float(cross_entropy(logits, labels, 0.3)[0]) == pytest.approx(float(-(target * logp).sum()),
                                                                       rel=1e-6)


def test_half_precision_keeps_float32_params_and_statistics():
  config = tiny_config(half_precision=True)
  mesh = distributed.make_mesh(jax.devices()[:8])
  model = build.make_model(config, 10)
  state = create_train_state(model, optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 1), mesh)
  state, metrics = make_train_step(model, mesh, donate=False)(
      state, *jax.device_put(_batch(), distributed.batch_sharding(mesh)))
  assert bool(metrics["finite"])
  dtypes = {x.dtype for x in jax.tree.leaves((state.params, state.batch_stats))}
  assert dtypes == {jnp.dtype(jnp.float32)}
  # The computation itself ran in bfloat16.
  hidden = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                       _batch()[0], train=False, capture_intermediates=True,
                       mutable=["intermediates"])[1]["intermediates"]
  assert hidden["conv_0"]["__call__"][0].dtype == jnp.bfloat16


def test_evaluate_covers_every_example_once():
  from normzoo.data import Split
  from normzoo.train.evaluate import evaluate
  config = tiny_config()
  mesh = distributed.make_mesh(jax.devices()[:8])
  model = build.make_model(config, 10)
  state = create_train_state(model, optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 1), mesh)
  rng = np.random.default_rng(1)
  split = Split(rng.standard_normal((100, 8, 8, 1)).astype(np.float32),
                rng.integers(0, 10, 100).astype(np.int32))
  sharding = distributed.batch_sharding(mesh)
  full = evaluate(make_eval_step(model, mesh), state, split, BATCH, sharding)
  assert full["count"] == 100  # 3 full batches + 4 real examples of a padded one
  logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                       split.images, train=False)
  assert full["accuracy"] == pytest.approx(
      float(np.mean(np.argmax(logits, -1) == split.labels)), abs=1e-6)
  train_mode = evaluate(make_eval_step(model, mesh, batch_statistics=True), state, split,
                        BATCH, sharding, full_coverage=False)
  assert train_mode["count"] == 96  # the partial batch is dropped
  assert evaluate(make_eval_step(model, mesh, batch_statistics=True), state, split, 128,
                  sharding, full_coverage=False) is None
