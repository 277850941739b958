"""Row-sequential transformer and RNN: shapes, where the norm sits, what it normalizes, training."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import normzoo
from normzoo.models import ModelBase, get_model
from normzoo.models.sequence import rows_as_tokens, token_norm
from tests.models.helpers import Probe, flat, init, inputs, probe_inputs

SHAPE = (4, 6, 5, 1)  # 6 rows = 6 tokens of 5 features
TRANSFORMER = dict(d_model=8, num_heads=2, depth=1, mlp_ratio=2)


def _transformer(block, norm="layer"):
  norm = Probe if norm == "probe" else normzoo.get_norm(norm)
  return get_model("row_transformer", norm=norm, block=block, **TRANSFORMER)


@pytest.mark.parametrize("name,kwargs", [
    ("row_transformer", TRANSFORMER), ("row_transformer", {**TRANSFORMER, "block": "post"}),
    ("row_rnn", dict(hidden=8))])
@pytest.mark.parametrize("norm", ["layer", "rms", "batch", "none"])
def test_shapes(name, kwargs, norm):
  model = get_model(name, norm=normzoo.get_norm(norm), **kwargs)
  variables = init(model, SHAPE)
  out, _ = model.apply(variables, inputs(SHAPE), train=True, mutable=["batch_stats"])
  assert out.shape == (4, 10) and out.dtype == jnp.float32


def test_bad_fields():
  with pytest.raises(ValueError, match="block"):
    get_model("row_transformer", block="middle")
  with pytest.raises(ValueError, match="num_heads"):
    get_model("row_transformer", d_model=10, num_heads=4)


def _embedded(variables, x):
  p = variables["params"]
  tokens = np.asarray(rows_as_tokens(x), np.float64)
  return tokens @ np.asarray(p["embed"]["kernel"]) + np.asarray(p["embed"]["bias"]) + \
      np.asarray(p["pos_embed"])


def test_pre_norm_normalizes_the_residual_stream_and_post_norm_the_sum():
  x = inputs(SHAPE)
  pre = _transformer("pre", "probe")
  variables = init(pre, SHAPE)
  seen = probe_inputs(pre, variables, x)
  assert set(seen) == {"attn_0_norm", "mlp_0_norm", "final_norm"}
  stream = _embedded(variables, x).reshape(-1, 8)
  # Pre-norm: the first norm sees the stream itself, as (N*T, D) token rows.
  np.testing.assert_allclose(seen["attn_0_norm"], stream, rtol=1e-5, atol=1e-5)

  post = _transformer("post", "probe")
  variables = init(post, SHAPE)
  seen = probe_inputs(post, variables, x)
  assert set(seen) == {"attn_0_norm", "mlp_0_norm"}  # no final norm
  stream = _embedded(variables, x).reshape(-1, 8)
  # Post-norm: the norm sees stream + attention(stream), not the stream.
  assert np.abs(seen["attn_0_norm"] - stream).max() > 1e-3
  # ... and the MLP's residual starts from the normalized (probe-shifted) sum.
  p = flat(variables["params"])
  y = np.asarray(seen["attn_0_norm"], np.float64) - Probe.SHIFT
  hidden = np.maximum(y @ np.asarray(p["mlp_0_in/kernel"]) + np.asarray(p["mlp_0_in/bias"]), 0)
  mlp = hidden @ np.asarray(p["mlp_0_out/kernel"]) + np.asarray(p["mlp_0_out/bias"])
  np.testing.assert_allclose(seen["mlp_0_norm"], y + mlp, rtol=1e-4, atol=1e-5)


class _TokenNorm(ModelBase):
  @nn.compact
  def __call__(self, x, train):
    return token_norm(self, x, train, "n")


@pytest.mark.parametrize("norm", ["layer", "rms", "batch"])
def test_token_norm_semantics_against_numpy(norm):
  x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 6, 8)).astype(np.float32)
  module = _TokenNorm(norm=normzoo.get_norm(norm))
  variables = module.init(jax.random.PRNGKey(0), x, train=False)
  out, _ = module.apply(variables, x, train=True, mutable=["batch_stats"])
  x64 = x.astype(np.float64)
  if norm == "layer":  # per token over features
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6)
  elif norm == "rms":
    expected = x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + 1e-6)
  else:  # per feature over batch x tokens
    expected = (x64 - x64.mean((0, 1))) / np.sqrt(x64.var((0, 1)) + 1e-5)
  np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)


def test_rnn_norm_on_the_recurrent_preactivation_per_step_for_batch_norm():
  x = inputs(SHAPE)
  layer = get_model("row_rnn", norm=normzoo.get_norm("layer"), hidden=8)
  assert "norm" in init(layer, SHAPE)["params"]
  batch = get_model("row_rnn", norm=normzoo.get_norm("batch"), hidden=8)
  variables = init(batch, SHAPE)
  assert set(variables["batch_stats"]) == {f"norm_{t}" for t in range(6)}
  probe = get_model("row_rnn", norm=Probe, hidden=8, per_step_norm=True)
  variables = init(probe, SHAPE)
  seen = probe_inputs(probe, variables, x)
  assert set(seen) == {f"norm_{t}" for t in range(6)}
  p = flat(variables["params"])
  tokens = np.asarray(rows_as_tokens(x), np.float64)
  pre0 = tokens[:, 0] @ np.asarray(p["input/kernel"]) + np.asarray(p["input/bias"])
  np.testing.assert_allclose(seen["norm_0"], pre0, rtol=1e-5, atol=1e-5)  # h_0 = 0
  h1 = np.tanh(pre0 - Probe.SHIFT)
  pre1 = tokens[:, 1] @ np.asarray(p["input/kernel"]) + np.asarray(p["input/bias"]) + \
      h1 @ np.asarray(p["recurrent/kernel"])
  np.testing.assert_allclose(seen["norm_1"], pre1, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", [("row_transformer", TRANSFORMER),
                                         ("row_rnn", dict(hidden=16))])
def test_a_few_steps_reduce_the_loss(name, kwargs):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 32)
  # Class = which row carries a bright stripe: needs the sequence, not a token.
  x = rng.normal(0, 0.3, size=(32, 6, 5, 1)).astype(np.float32)
  x[np.arange(32), labels + 1] += 2.0
  model = get_model(name, norm=normzoo.get_norm("layer"), num_classes=4, **kwargs)
  variables = init(model, x.shape)
  tx = optax.adam(1e-2)
  opt = tx.init(variables["params"])

  def loss_fn(params):
    logits = model.apply({"params": params}, x, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def step(params, opt):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt)
    return optax.apply_updates(params, updates), opt, loss

  params, losses = variables["params"], []
  for _ in range(25):
    params, opt, loss = step(params, opt)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]


def test_trains_end_to_end_with_synced_batch_norm(tmp_path):
  from normzoo.train import train_and_evaluate
  from tests.train.helpers import tiny_config
  config = tiny_config(model="row_transformer", norm="batch", optimizer="adamw",
                       learning_rate=1e-2, num_epochs=4, model_kwargs=dict(TRANSFORMER))
  result = train_and_evaluate(config, str(tmp_path))
  assert result["status"] == "done" and result["test_accuracy"] > 0.2  # chance 0.1
