"""The bound on steps in flight that avoids the 8-CPU-device all-reduce hang (train/dispatch.py).

The hang itself needs the full Fashion-MNIST epoch on a loaded 2-core
machine to show; what these tests pin is the mechanism that prevents it:
on CPU with several devices, no train or eval step is dispatched while an
earlier one is still running.
"""

import jax
import jax.numpy as jnp
import pytest

from normzoo.train import evaluate as evaluate_lib
from normzoo.train import loop, train_and_evaluate
from normzoo.train.dispatch import InflightLimit, max_inflight_steps
from tests.train.helpers import tiny_config


def _ready(tree):
  return all(leaf.is_ready() for leaf in jax.tree.leaves(tree))


def _recording(make_step, log):
  """Wraps a step factory: before each dispatch, records whether earlier outputs are done."""
  def factory(*args, **kwargs):
    step = make_step(*args, **kwargs)
    outputs = []

    def wrapped(*a, **k):
      log.append(all(_ready(o) for o in outputs))
      out = step(*a, **k)
      # The metrics only: the train state is donated to the next step.
      outputs.append(out[1] if isinstance(out, tuple) else out)
      del outputs[:-3]
      return out
    return wrapped
  return factory


def test_eight_cpu_devices_run_one_step_at_a_time(tmp_path, monkeypatch):
  assert jax.default_backend() == "cpu" and jax.device_count() == 8
  train_log, eval_log = [], []
  monkeypatch.setattr(loop, "make_train_step", _recording(loop.make_train_step, train_log))
  monkeypatch.setattr(loop, "make_eval_step", _recording(loop.make_eval_step, eval_log))
  result = train_and_evaluate(tiny_config(num_epochs=1), str(tmp_path))
  assert result["status"] == "done" and result["num_devices"] == 8
  assert len(train_log) == 256 // 32 and len(eval_log) >= 4
  assert all(train_log), train_log  # every earlier step had finished before the next dispatch
  assert all(eval_log), eval_log


@pytest.mark.parametrize("backend,devices,expected", [
    ("cpu", 8, 1), ("cpu", 1, None), ("gpu", 8, None), ("tpu", 8, None)])
def test_limit_only_on_multi_device_cpu(backend, devices, expected):
  assert max_inflight_steps(devices, backend) == expected


def test_inflight_limit_blocks_on_the_oldest():
  limit = InflightLimit(2)
  first = jnp.ones(4) * 2
  limit.add(first)
  second = jnp.ones(4) * 3
  limit.add(second)  # two pending reached: waits for `first`
  assert first.is_ready()
  with pytest.raises(ValueError, match="limit must be >= 1"):
    InflightLimit(0)
  InflightLimit(None).add(jnp.ones(2))  # unbounded: a no-op
