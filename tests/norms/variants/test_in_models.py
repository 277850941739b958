"""Every variant by registry name inside the models, as configs use them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.models import get_model

KEY = jax.random.PRNGKey(0)
KWARGS = {"ghost_batch": dict(virtual_batch_size=2), "evonorm_s0": dict(num_groups=8)}
BATCH_STATS = {"batch_renorm", "ghost_batch", "evonorm_b0", "switchable", "batch_frozen"}
VARIANTS = sorted(BATCH_STATS | {"frn", "evonorm_s0", "rms"})
NO_FEATURES = {"evonorm_b0": "needs spatial axes", "switchable": "needs spatial axes",
               "frn": "learned_epsilon=True"}


def _train_and_eval(model, x):
  v = model.init(KEY, x, train=False)
  if "batch_stats" in v:
    logits, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
    v = {**v, **upd}
  else:
    logits = model.apply(v, x, train=True)
  assert logits.shape == (x.shape[0], 3) and np.all(np.isfinite(logits))
  assert np.all(np.isfinite(model.apply(v, x, train=False)))
  return v


def test_registry_names_and_batch_statistics_flags():
  assert set(VARIANTS) <= set(normzoo.available_norms())
  for name in VARIANTS:
    assert normzoo.uses_batch_statistics(normzoo.get_norm(name)) == (name in BATCH_STATS), name


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_in_a_cnn_and_an_mlp(name):
  norm = normzoo.get_norm(name, **KWARGS.get(name, {}))
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
  v = _train_and_eval(get_model("mnist_cnn_small", norm=norm, num_classes=3), x)
  if name in BATCH_STATS and name != "batch_frozen":
    assert np.any(v["batch_stats"]["norm_0"]["var"] != 1.0)  # running statistics were updated
  # (N, C) features: traced only (jax.eval_shape compiles nothing); the numerics on (N, C)
  # are tested per variant.
  mlp = get_model("mlp", norm=norm, num_classes=3, width=16, depth=1)
  init = lambda x: mlp.init(KEY, x, train=False)
  if name in NO_FEATURES:
    with pytest.raises(ValueError, match=NO_FEATURES[name]):
      jax.eval_shape(init, x)
  else:
    v = jax.eval_shape(init, x)
    out = jax.eval_shape(lambda v, x: mlp.apply(v, x, train=True, mutable=["batch_stats"]), v, x)
    assert out[0].shape == (4, 3)


def test_ws_conv_in_a_model():
  x = jnp.ones((2, 8, 8, 1))
  model = get_model("mnist_cnn_small", conv=normzoo.get_conv("ws"), num_classes=3,
                    norm=normzoo.get_norm("group", num_groups=8))
  _train_and_eval(model, x)
