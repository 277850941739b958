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


# Found by trying the API as a new user would (issue 22): each was a silent NaN
# or a TypeError from deep inside jnp before.
@pytest.mark.parametrize("call,pattern", [
    (lambda: F.batch_norm(jnp.ones((0, 4))), r"batch_norm: .*zero elements .*axis 0 has size 0"),
    (lambda: normzoo.BatchNorm(use_running_average=False).init(jax.random.PRNGKey(0),
                                                               jnp.ones((0, 4))),
     r"zero elements"),
    (lambda: normzoo.nnx.BatchNorm(4, rngs=normzoo_nnx_rngs())(jnp.ones((0, 4))),
     r"zero elements"),
    (lambda: stats.moments(jnp.ones((3, 0, 4)), (0, 1)), r"moments: .*axis 1 has size 0"),
    (lambda: F.batch_norm(X, axis=None), r"axis=None is not an axis"),
    (lambda: F.batch_norm(X, axis=1.0), r"axis=1.0 is not an axis"),
    (lambda: F.batch_norm(X, axis=(1.0, 2)), r"axis=1.0 is not an int axis"),
    (lambda: F.layer_norm(X, feature_axes="C"), r"feature_axes='C' is not an axis"),
    (lambda: F.group_norm(X, num_groups=4.0), r"num_groups must be a positive int; got "
                                              r"num_groups=4.0"),
    (lambda: F.group_norm(X, num_groups=None, group_size=2.0), r"group_size=2.0"),
    (lambda: normzoo.GroupNorm(num_groups=4.0).init(jax.random.PRNGKey(0), X), r"num_groups=4.0"),
    (lambda: normzoo.evonorm_s0(X, None, None, jnp.ones(8), num_groups=True),
     r"num_groups=True"),
    (lambda: normzoo.fold_batch_norm(jnp.ones((3, 4)), None, None, None, jnp.zeros(4),
                                     jnp.array([1.0, -0.5, 1.0, 1.0])),
     r"var must be >= 0 .*var=-0.5"),
    (lambda: normzoo.fold_batch_norm(jnp.ones((3, 4)), None, None, None, jnp.zeros(4),
                                     jnp.array([1.0, jnp.nan, 1.0, 1.0])),
     r"var must be >= 0 .*var=nan"),
])
def test_silent_nans_and_deep_type_errors_are_value_errors(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def normzoo_nnx_rngs():
  from flax import nnx
  return nnx.Rngs(0)


def test_fold_batch_norm_still_traces_with_abstract_var():
  fold = jax.jit(lambda v: normzoo.fold_batch_norm(jnp.ones((3, 4)), None, None, None,
                                                   jnp.zeros(4), v))
  kernel, bias = fold(jnp.full(4, 4.0))
  np.testing.assert_allclose(kernel, np.full((3, 4), 1 / np.sqrt(4.0 + 1e-5)), rtol=1e-6)
