"""precise_batch_stats: recomputed running statistics are the population statistics."""

import functools

import flax.linen as nn
import jax
import numpy as np
import pytest

import normzoo

RNG = np.random.default_rng(16)
KEY = jax.random.PRNGKey(0)


class TwoLayer(nn.Module):
  """BN(x) -> dense -> relu -> norm; the first norm's input is the data itself."""
  norm: object = normzoo.BatchNorm

  @nn.compact
  def __call__(self, x, train):
    x = normzoo.BatchNorm(name="bn0")(x, use_running_average=not train)
    x = nn.relu(nn.Dense(5, name="dense")(x))
    return self.norm(name="bn1")(x, use_running_average=not train)


def _np_forward(x, v):
  """float64 training-mode forward: returns the inputs of bn0 and bn1."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
  h = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) * p["bn0"]["scale"] + p["bn0"]["bias"]
  return x, np.maximum(h @ p["dense"]["kernel"] + p["dense"]["bias"], 0.0)


def test_recomputed_statistics_are_population_statistics():
  model = TwoLayer()
  sizes = [16, 16, 8, 24]  # unequal: batches are weighted by size
  batches = [(3.0 + 2.0 * RNG.standard_normal((n, 4))).astype(np.float32) for n in sizes]
  v = model.init(KEY, batches[0], train=False)
  v = {"params": jax.tree.map(lambda a: a + 0.3, v["params"]), "batch_stats": v["batch_stats"]}
  new = normzoo.precise_batch_stats(functools.partial(model.apply, train=True), v, batches)
  ins = [_np_forward(b.astype(np.float64), v) for b in batches]
  for i, layer in enumerate(("bn0", "bn1")):
    data = np.concatenate([pair[i] for pair in ins])
    np.testing.assert_allclose(new["batch_stats"][layer]["mean"], data.mean(0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(new["batch_stats"][layer]["var"], data.var(0), rtol=1e-4,
                               atol=1e-6)
  assert set(new) == {"params", "batch_stats"}
  jax.tree.map(np.testing.assert_array_equal, new["params"], v["params"])
  # Only the first num_batches are used; the input variables are untouched.
  two = normzoo.precise_batch_stats(functools.partial(model.apply, train=True), v, batches,
                                    num_batches=2, jit=False)
  np.testing.assert_allclose(two["batch_stats"]["bn0"]["mean"],
                             np.concatenate(batches[:2]).mean(0), rtol=1e-5)
  np.testing.assert_array_equal(v["batch_stats"]["bn0"]["mean"], 0.0)


@pytest.mark.parametrize("norm", [
    functools.partial(normzoo.GhostBatchNorm, virtual_batch_size=4),
    normzoo.EvoNormB0, normzoo.SwitchableNorm,
    functools.partial(normzoo.BatchNorm, zero_debias=True),
])
def test_variants_record_their_batch_input(norm):
  batches = [(1.0 + RNG.standard_normal((8, 2, 2, 3))).astype(np.float32) for _ in range(3)]
  layer = norm()
  v = layer.init(KEY, batches[0], use_running_average=False)
  apply_fn = lambda v, x, mutable: layer.apply(v, x, use_running_average=False, mutable=mutable)
  new = normzoo.precise_batch_stats(apply_fn, v, batches)["batch_stats"]
  data = np.concatenate(batches).astype(np.float64)
  np.testing.assert_allclose(new["var"], data.var((0, 1, 2)), rtol=1e-4)
  if "mean" in v["batch_stats"]:
    np.testing.assert_allclose(new["mean"], data.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
  for other in set(v["batch_stats"]) - {"mean", "var"}:
    np.testing.assert_array_equal(new[other], v["batch_stats"][other])
  # Training without the raw collection records nothing: variable trees stay as they were.
  _, upd = layer.apply(v, batches[0], use_running_average=False, mutable=["batch_stats"])
  assert set(upd) == {"batch_stats"}


def test_errors():
  model = TwoLayer()
  x = np.ones((4, 4), np.float32)
  v = model.init(KEY, x, train=False)
  with pytest.raises(ValueError, match="no batches"):
    normzoo.precise_batch_stats(functools.partial(model.apply, train=True), v, [])
  with pytest.raises(ValueError, match="training mode"):
    normzoo.precise_batch_stats(functools.partial(model.apply, train=False), v, [x])
