"""The adversarial table: inputs a new user might try, and the outcome each must have.

Each row is (case, call, outcome): ``("raises", pattern)`` for a ValueError
naming the argument, ``"finite"`` for a finite result, ``"nan"`` where a
NaN/inf in the input must show in the output (never hidden by the norm).
Fault cases of runs and sweeps (kill, bit flip, truncation, concurrent
start) are in tests/train/test_faults.py, tests/train/test_runlock.py and
tests/sweeps/test_sweeps.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import normzoo
from normzoo.norms import functional as F
from normzoo.norms import stats
from normzoo.norms.folding import fold_batch_norm
from normzoo.norms.variants import ghost, renorm, rms
from normzoo.train import train_and_evaluate
from tests.train.helpers import tiny_config

X = jnp.arange(32.0).reshape(4, 8) / 7.0
X4 = jnp.arange(128.0).reshape(2, 2, 4, 8) / 11.0
X_INT = jnp.arange(32).reshape(4, 8)
# |x| up to 6e4: near float16's largest finite value (65504); x^2 overflows float16.
X_HALF = (jnp.arange(1.0, 5.0)[:, None] * jnp.linspace(-1, 1, 8)[None] * 15000).astype(jnp.float16)

TABLE = [
    # NaN / inf inputs propagate to the output; they are not turned into finite garbage.
    ("nan input, batch_norm", lambda: F.batch_norm(X.at[0, 0].set(jnp.nan))[0], "nan"),
    ("inf input, layer_norm", lambda: F.layer_norm(X.at[0, 0].set(jnp.inf)), "nan"),
    ("nan input, group_norm", lambda: F.group_norm(X4.at[0, 0, 0, 0].set(jnp.nan), num_groups=2),
     "nan"),
    # Empty inputs.
    ("(0, C) training batch_norm", lambda: F.batch_norm(jnp.ones((0, 8))),
     ("raises", r"no elements")),
    ("moments over an empty axis", lambda: stats.moments(jnp.ones((3, 0)), 1),
     ("raises", r"moments .*no elements")),
    ("(N, 0) layer_norm", lambda: F.layer_norm(jnp.ones((4, 0))), ("raises", r"no elements")),
    ("(0, C) training batch_renorm",
     lambda: renorm.batch_renorm(jnp.ones((0, 8)), None, None, jnp.zeros(8), jnp.ones(8)),
     ("raises", r"batch_renorm .*no elements")),
    ("(0, C) training ghost_batch_norm",
     lambda: ghost.ghost_batch_norm(jnp.ones((0, 8)), virtual_batch_size=2),
     ("raises", r"ghost_batch_norm .*no elements")),
    ("int input, batch_renorm",
     lambda: renorm.batch_renorm(X_INT, None, None, jnp.zeros(8), jnp.ones(8)),
     ("raises", r"x.dtype=int32")),
    ("(1, C) training batch_norm", lambda: F.batch_norm(jnp.ones((1, 8))),
     ("raises", r"single value")),
    # Wrong dtypes and types.
    ("int input, batch_norm", lambda: F.batch_norm(X_INT), ("raises", r"x.dtype=int32")),
    ("int input, layer_norm", lambda: F.layer_norm(X_INT), ("raises", r"x.dtype=int32")),
    ("bool input, group_norm", lambda: F.group_norm(jnp.ones((2, 4, 8), bool), num_groups=2),
     ("raises", r"x.dtype=bool")),
    ("complex input, instance_norm", lambda: F.instance_norm(jnp.ones((2, 4, 8), jnp.complex64)),
     ("raises", r"x.dtype=complex64")),
    ("int input, moments", lambda: stats.moments(X_INT, 0), ("raises", r"x.dtype=int32")),
    ("int input, rms_norm", lambda: rms.rms_norm(X_INT), ("raises", r"x.dtype=int32")),
    ("list input, layer_norm", lambda: F.layer_norm([[1.0, 2.0], [3.0, 4.0]]),
     ("raises", r"x must be an array .*list")),
    ("numpy input, layer_norm", lambda: F.layer_norm(np.ones((2, 4), np.float32) * [[1], [2]]),
     "finite"),
    # Bad axes.
    ("axis=None, batch_norm", lambda: F.batch_norm(X, axis=None), ("raises", r"axis=None")),
    ("axis=1.0, batch_norm", lambda: F.batch_norm(X, axis=1.0), ("raises", r"axis=1.0")),
    ("axis=True, batch_norm", lambda: F.batch_norm(X, axis=True), ("raises", r"axis=True")),
    ("axis='x', batch_norm", lambda: F.batch_norm(X, axis="x"), ("raises", r"axis='x'")),
    ("axis=2, batch_norm on 2-D", lambda: F.batch_norm(X, axis=2), ("raises", r"out of range")),
    ("reduction_axes=(0, 0.5)", lambda: F.layer_norm(X, reduction_axes=(0, 0.5)),
     ("raises", r"reduction_axes=0.5")),
    ("scalar input, layer_norm", lambda: F.layer_norm(jnp.float32(1.0)),
     ("raises", r"reduction_axes=-1 is out of range")),
    # Group counts.
    ("num_groups=4.0", lambda: F.group_norm(X4, num_groups=4.0), ("raises", r"num_groups=4.0")),
    ("num_groups=3 (does not divide 8)", lambda: F.group_norm(X4, num_groups=3),
     ("raises", r"num_groups=3 does not divide")),
    ("num_groups=0", lambda: F.group_norm(X4, num_groups=0), ("raises", r"num_groups=0")),
    ("group_size=2.0", lambda: F.group_norm(X4, num_groups=None, group_size=2.0),
     ("raises", r"group_size=2.0")),
    # Bad masks.
    ("mask that does not broadcast", lambda: F.batch_norm(X, mask=np.ones(3, bool)),
     ("raises", r"mask of shape \(3,\)")),
    ("float 0/1 mask", lambda: F.batch_norm(X, mask=jnp.ones((4, 1)))[0], "finite"),
    ("all-false mask", lambda: F.batch_norm(X, mask=jnp.zeros((4, 1), bool))[0], "finite"),
    # Half precision with large values: statistics in float32 keep the output finite.
    ("float16 |x|~6e4, batch_norm", lambda: F.batch_norm(X_HALF)[0], "finite"),
    ("float16 |x|~6e4, layer_norm", lambda: F.layer_norm(X_HALF), "finite"),
    ("float16 |x|~6e4, group_norm", lambda: F.group_norm(X_HALF.reshape(4, 2, 4), num_groups=2),
     "finite"),
    ("float16 |x|~6e4, instance_norm", lambda: F.instance_norm(X_HALF.reshape(4, 2, 4)), "finite"),
    ("float16 |x|~6e4, rms_norm", lambda: rms.rms_norm(X_HALF), "finite"),
    # Other arguments.
    ("epsilon=nan", lambda: F.layer_norm(X, epsilon=float("nan")), ("raises", r"epsilon=nan")),
    ("momentum=1.5", lambda: F.batch_norm(X, momentum=1.5), ("raises", r"momentum=1.5")),
    ("scale of the wrong shape", lambda: F.layer_norm(X, jnp.ones(7)),
     ("raises", r"scale has shape \(7,\)")),
    ("fold_batch_norm, var < 0",
     lambda: fold_batch_norm(jnp.ones((3, 2)), None, None, None, jnp.zeros(2),
                             jnp.array([1.0, -1.0])), ("raises", r"var=-1.0")),
    ("GroupNorm module, num_groups=4.0",
     lambda: normzoo.GroupNorm(num_groups=4.0).init(jax.random.PRNGKey(0), X4),
     ("raises", r"num_groups=4.0")),
    ("BatchNorm module, axis=None",
     lambda: normzoo.BatchNorm(use_running_average=False, axis=None).init(
         jax.random.PRNGKey(0), X), ("raises", r"axis=None")),
]


@pytest.mark.parametrize("call,outcome", [row[1:] for row in TABLE], ids=[r[0] for r in TABLE])
def test_api_table(call, outcome):
  if isinstance(outcome, tuple):
    with pytest.raises(ValueError, match=outcome[1]):
      call()
    return
  y = np.asarray(call(), np.float64)
  if outcome == "finite":
    assert np.isfinite(y).all()
  else:
    assert not np.isfinite(y).all()


CONFIG_TABLE = [
    ("batch_size=0", {"batch_size": 0}, r"batch_size"),
    ("learning_rate=-1", {"learning_rate": -1.0}, r"learning_rate"),
    ("num_epochs=0", {"num_epochs": 0}, r"num_epochs"),
    ("unknown norm", {"norm": "nope"}, r"nope"),
    ("unknown model", {"model": "nope"}, r"nope"),
    ("momentum=1", {"momentum": 1.0}, r"momentum"),
    ("divergence_loss_bound=0", {"divergence_loss_bound": 0.0}, r"divergence_loss_bound"),
    ("batch larger than the data", {"batch_size": 512}, r"batch_size 512 exceeds"),
]


@pytest.mark.parametrize("overrides,pattern", [r[1:] for r in CONFIG_TABLE],
                         ids=[r[0] for r in CONFIG_TABLE])
def test_config_table(tmp_path, overrides, pattern):
  with pytest.raises(ValueError, match=pattern):
    train_and_evaluate(tiny_config(**overrides), str(tmp_path / "run"),
                       devices=jax.devices()[:1])


def test_workdir_below_a_file_is_one_error(tmp_path):
  """Was a NotADirectoryError traceback from os.makedirs."""
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match=r"invalid --workdir=.*file.run: cannot create or write"):
    train_and_evaluate(tiny_config(), str(blocker / "run"), devices=jax.devices()[:1])
