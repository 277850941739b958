"""Every documented mistake fails early with a ValueError naming the argument and value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import functional as F
from normzoo.norms import stats

X = jnp.ones((4, 3, 3, 8)) * jnp.arange(4.0)[:, None, None, None]


@pytest.mark.parametrize("call,pattern", [
    (lambda: F.batch_norm(X, axis=4), r"axis=4 is out of range .*shape \(4, 3, 3, 8\)"),
    (lambda: F.layer_norm(X, feature_axes=-5), r"feature_axes=-5 is out of range"),
    (lambda: F.layer_norm(X, reduction_axes=(1, 7)), r"reduction_axes=7 is out of range"),
    (lambda: F.instance_norm(X, feature_axes=0), r"includes axis 0"),
    (lambda: F.instance_norm(jnp.ones((4, 8))), r"at least one spatial axis .*\(4, 8\)"),
    (lambda: stats.moments(X, 9), r"reduction_axes=9 is out of range"),
])
def test_bad_axes(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def test_groups_that_do_not_divide_channels_name_both_numbers():
  with pytest.raises(ValueError, match=r"num_groups=3 does not divide the number of channels \(8\)"):
    F.group_norm(X, num_groups=3)
  with pytest.raises(ValueError, match=r"group_size=3 does not divide the number of channels \(8\)"):
    F.group_norm(X, num_groups=None, group_size=3)
  with pytest.raises(ValueError, match=r"num_groups=3 does not divide .*\(8\)"):
    normzoo.GroupNorm(num_groups=3).init(jax.random.PRNGKey(0), X)


@pytest.mark.parametrize("num_groups,group_size", [(None, None), (4, 2)])
def test_exactly_one_of_num_groups_and_group_size(num_groups, group_size):
  with pytest.raises(ValueError, match=f"num_groups={num_groups!r}, group_size={group_size!r}"):
    F.group_norm(X, num_groups=num_groups, group_size=group_size)


@pytest.mark.parametrize("shape", [(1, 8), (1, 1, 1, 8)])
def test_training_batch_norm_on_a_single_value_per_channel(shape):
  x = jnp.ones(shape)
  with pytest.raises(ValueError, match=r"single value .*use_running_average=True"):
    F.batch_norm(x)
  bn = normzoo.BatchNorm(use_running_average=False)
  v = normzoo.BatchNorm(use_running_average=True).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="single value"):
    bn.apply(v, x, mutable=["batch_stats"])
  # Evaluation with running statistics on one example is fine.
  F.batch_norm(x, None, None, jnp.zeros(8), jnp.ones(8), use_running_average=True)


def test_mask_that_does_not_broadcast():
  with pytest.raises(ValueError, match=r"mask of shape \(3,\) does not broadcast .*\(4, 3, 3, 8\)"):
    F.batch_norm(X, mask=np.ones(3, bool))
  with pytest.raises(ValueError, match=r"mask of shape \(5, 1\)"):
    F.layer_norm(jnp.ones((4, 6)), mask=np.ones((5, 1), bool))


@pytest.mark.parametrize("epsilon", [0.0, -1e-5])
def test_non_positive_epsilon(epsilon):
  for call in (lambda: F.batch_norm(X, epsilon=epsilon), lambda: F.layer_norm(X, epsilon=epsilon),
               lambda: F.group_norm(X, num_groups=2, epsilon=epsilon)):
    with pytest.raises(ValueError, match=f"epsilon={epsilon!r}"):
      call()


@pytest.mark.parametrize("momentum", [-0.1, 1.5])
def test_momentum_outside_unit_interval(momentum):
  with pytest.raises(ValueError, match=f"momentum={momentum!r}"):
    F.batch_norm(X, momentum=momentum)


def test_eval_batch_norm_without_running_statistics():
  with pytest.raises(ValueError, match="needs the running statistics"):
    F.batch_norm(X, use_running_average=True)


def test_parameter_shape_mismatch():
  with pytest.raises(ValueError, match=r"scale has shape \(4,\) .*\(8,\)"):
    F.batch_norm(X, scale=jnp.ones(4))


@pytest.mark.parametrize("call,pattern", [
    (lambda: F.batch_norm(jnp.ones((0, 8))), r"no elements"),
    (lambda: F.batch_norm(jnp.ones((0, 8)), None, None, jnp.zeros(8), jnp.ones(8)), r"no elements"),
    (lambda: stats.moments(jnp.ones((0, 8)), 0), r"moments .*shape \(0, 8\)"),
    (lambda: stats.moments(jnp.ones((4, 0, 3)), (1, 2)), r"no elements"),
    (lambda: F.layer_norm(jnp.ones((4, 0))), r"no elements"),
    (lambda: F.group_norm(jnp.ones((2, 0, 8)), num_groups=2), r"no elements"),
])
def test_statistics_over_zero_elements(call, pattern):
  """Was a silent NaN (0/0) before the check."""
  with pytest.raises(ValueError, match=pattern):
    call()


def test_zero_size_batch_is_fine_in_evaluation_and_per_example():
  # No statistic is taken over the empty batch axis: empty outputs, no error.
  y, _, _ = F.batch_norm(jnp.ones((0, 8)), None, None, jnp.zeros(8), jnp.ones(8),
                         use_running_average=True)
  assert y.shape == (0, 8)
  assert F.layer_norm(jnp.ones((0, 8))).shape == (0, 8)


@pytest.mark.parametrize("axis", [None, 1.0, "x", (1, 2.0), True])
def test_axis_of_the_wrong_type(axis):
  """None / 1.0 raised a TypeError from inside jnp; True was taken as axis 1."""
  with pytest.raises(ValueError, match=r"axis"):
    F.batch_norm(X, axis=axis)
  with pytest.raises(ValueError, match=r"axis"):
    normzoo.BatchNorm(use_running_average=False, axis=axis).init(jax.random.PRNGKey(0), X)


@pytest.mark.parametrize("call,pattern", [
    (lambda: F.layer_norm(X, reduction_axes=1.0), r"reduction_axes=1.0 must be an int"),
    (lambda: F.layer_norm(X, feature_axes=None), r"feature_axes=None must be an int"),
    (lambda: F.instance_norm(X, feature_axes=-1.0), r"feature_axes=-1.0"),
    (lambda: stats.moments(X, None), r"reduction_axes=None"),
])
def test_other_axis_arguments_of_the_wrong_type(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


@pytest.mark.parametrize("kwargs,pattern", [
    ({"num_groups": 4.0}, r"num_groups must be a positive int; got num_groups=4.0"),
    ({"num_groups": None, "group_size": 2.0}, r"group_size=2.0"),
    ({"num_groups": True}, r"num_groups=True"),
])
def test_group_counts_of_the_wrong_type(kwargs, pattern):
  """A float 4.0 divided the channels (8 % 4.0 == 0) and failed in jnp.reshape."""
  with pytest.raises(ValueError, match=pattern):
    F.group_norm(X, **kwargs)
  with pytest.raises(ValueError, match=pattern):
    normzoo.GroupNorm(**kwargs).init(jax.random.PRNGKey(0), X)


def test_group_counts_of_the_wrong_type_in_evonorm():
  with pytest.raises(ValueError, match=r"num_groups=4.0"):
    normzoo.EvoNormS0(num_groups=4.0).init(jax.random.PRNGKey(0), X)


def test_fold_batch_norm_negative_variance():
  from normzoo.norms.folding import fold_batch_norm
  k, b = jnp.ones((3, 4)), jnp.zeros(4)
  var = jnp.array([1.0, -0.5, 1.0, 1.0])
  with pytest.raises(ValueError, match=r"var must be >= 0 .*var=-0.5 at index \(1,\)"):
    fold_batch_norm(k, b, None, None, jnp.zeros(4), var)
  with pytest.raises(ValueError, match=r"var must be >= 0"):
    fold_batch_norm(k, b, None, None, jnp.zeros(4), jnp.array([1.0, jnp.nan, 1.0, 1.0]))
  # Under jit the values are unknown at trace time: no error, the NaN is XLA's.
  folded, _ = jax.jit(fold_batch_norm)(k, b, None, None, jnp.zeros(4), var)
  assert np.isnan(np.asarray(folded)[:, 1]).all()
