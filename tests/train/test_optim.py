"""Schedules and optimizers against hand-computed values."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from normzoo.train.optim import make_optimizer, make_schedule


def _config(**kw):
  c = ml_collections.ConfigDict(dict(
      learning_rate=0.1, num_epochs=10, lr_schedule="constant", warmup_epochs=0.0,
      lr_boundaries_epochs=(5, 8), lr_decay_factor=0.1, optimizer="sgd", momentum=0.0,
      nesterov=False, weight_decay=0.0, weight_decay_mask="all"))
  c.update(kw)
  return c


def _lrs(config, steps, spe=10):
  schedule = make_schedule(config, spe)
  return [float(schedule(s)) for s in steps]


def test_constant():
  assert _lrs(_config(), [0, 50, 99]) == pytest.approx([0.1, 0.1, 0.1])


def test_cosine_reaches_half_at_midpoint_and_zero_at_end():
  assert _lrs(_config(lr_schedule="cosine"), [0, 50, 100]) == pytest.approx([0.1, 0.05, 0.0],
                                                                            abs=1e-7)


def test_step_boundaries_in_epochs():
  # 10 steps per epoch: boundaries at steps 50 and 80.
  lrs = _lrs(_config(lr_schedule="step"), [49, 50, 79, 80, 99])
  assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])


def test_warmup_then_cosine():
  # 2 warmup epochs = 20 steps, then cosine over the remaining 80.
  lrs = _lrs(_config(lr_schedule="cosine", warmup_epochs=2), [0, 10, 20, 60, 100])
  assert lrs == pytest.approx([0.0, 0.05, 0.1, 0.05, 0.0], abs=1e-7)


def test_warmup_keeps_step_boundaries_absolute():
  lrs = _lrs(_config(lr_schedule="step", warmup_epochs=1), [5, 10, 49, 50, 80])
  assert lrs == pytest.approx([0.05, 0.1, 0.1, 0.01, 0.001])


def test_warmup_covering_the_run_is_rejected():
  with pytest.raises(ValueError, match="warmup_epochs"):
    make_schedule(_config(warmup_epochs=10), 10)


def _update(config, grad, param, steps=1):
  tx = make_optimizer(config, make_schedule(config, 10))
  params = {"w": jnp.array([[param]]), "b": jnp.array([param])}
  state = tx.init(params)
  updates = None
  for _ in range(steps):
    grads = {"w": jnp.array([[grad]]), "b": jnp.array([grad])}
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return float(params["w"][0, 0]), float(params["b"][0])


def test_sgd_momentum_and_l2_weight_decay():
  # g' = g + wd * p = 0.5 + 0.01 * 2 = 0.52; two momentum steps: v1 = g1, v2 = 0.9 v1 + g2.
  config = _config(momentum=0.9, weight_decay=0.01)
  w, _ = _update(config, 0.5, 2.0, steps=1)
  assert w == pytest.approx(2.0 - 0.1 * 0.52)
  p1 = 2.0 - 0.1 * 0.52
  v2 = 0.9 * 0.52 + (0.5 + 0.01 * p1)
  w2, _ = _update(config, 0.5, 2.0, steps=2)
  assert w2 == pytest.approx(p1 - 0.1 * v2, rel=1e-6)


def test_nesterov():
  config = _config(momentum=0.9, nesterov=True)
  w, _ = _update(config, 1.0, 0.0, steps=1)
  assert w == pytest.approx(-0.1 * (1.0 + 0.9 * 1.0))  # g + mu * v


def test_weight_decay_mask_kernels_exempts_vectors():
  config = _config(weight_decay=0.5, weight_decay_mask="kernels")
  w, b = _update(config, 0.0, 1.0)
  assert w == pytest.approx(1.0 - 0.1 * 0.5)
  assert b == pytest.approx(1.0)


def test_adam_first_step_is_lr_times_sign():
  w, _ = _update(_config(optimizer="adam"), 3.0, 1.0)
  assert w == pytest.approx(1.0 - 0.1, rel=1e-6)


def test_adam_l2_is_added_to_gradient_adamw_is_decoupled():
  # Adam's first step is lr * sign(g'), g' = 0 + wd * p: pure decay still moves by lr.
  w_adam, _ = _update(_config(optimizer="adam", weight_decay=0.01), 0.0, 1.0)
  assert w_adam == pytest.approx(1.0 - 0.1, rel=1e-5)
  # AdamW: zero gradient -> zero Adam update; decay is lr * wd * p.
  w_adamw, _ = _update(_config(optimizer="adamw", weight_decay=0.01), 0.0, 1.0)
  assert w_adamw == pytest.approx(1.0 - 0.1 * 0.01 * 1.0, rel=1e-6)


@pytest.mark.parametrize("field,value", [("optimizer", "rmsprop"), ("lr_schedule", "linear"),
                                         ("weight_decay_mask", "biases")])
def test_unknown_names(field, value):
  config = _config(**{field: value})
  with pytest.raises(ValueError, match="valid names are"):
    make_optimizer(config, make_schedule(config, 10))


def test_schedule_is_numpy_friendly():
  assert np.isfinite(_lrs(_config(lr_schedule="cosine", warmup_epochs=0.5), [3])[0])
