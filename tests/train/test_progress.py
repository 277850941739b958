"""Progress display (normzoo/train/progress.py) and the per-step train scalars of a run."""

import io
import logging
import os

import numpy as np
import pytest

from normzoo.train import progress, train_and_evaluate
from tests.train.helpers import tiny_config


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def _lines(caplog):
  return [r.getMessage() for r in caplog.records if r.pathname.endswith("progress.py")]


def test_without_a_terminal_it_logs_lines_and_writes_nothing(caplog):
  caplog.set_level(logging.INFO)
  stream = io.StringIO()
  with progress.progress_bar(20, desc="run", unit="step", interval_s=1e-9, stream=stream) as bar:
    for _ in range(20):
      bar.update()
  assert stream.getvalue() == ""  # no carriage-return stream in a log file
  lines = _lines(caplog)
  assert lines and all("\r" not in line for line in lines)
  assert lines[-1].startswith("run: 20/20 steps (100%)") and " left" in lines[-1]


def test_interval_limits_the_lines(caplog):
  caplog.set_level(logging.INFO)
  with progress.progress_bar(50, desc="run", unit="step", interval_s=1e6,
                             stream=io.StringIO()) as bar:
    for _ in range(50):
      bar.update()
  # No periodic line within the interval; the closing line only.
  assert [line.split(" [")[0] for line in _lines(caplog)] == ["run: 50/50 steps (100%)"]


def test_interval_zero_gives_no_periodic_lines(caplog):
  caplog.set_level(logging.INFO)
  with progress.progress_bar(5, desc="sweep", unit="run", interval_s=0,
                             stream=io.StringIO()) as bar:
    bar.update(3)
    assert progress.summary(bar).startswith("sweep: 3/5 runs (60%)")
  assert _lines(caplog) == []


def test_on_a_terminal_it_draws_a_bar_and_resumes_from_initial(caplog):
  caplog.set_level(logging.INFO)
  stream = _Terminal()
  with progress.progress_bar(10, desc="run", unit="step", initial=4, stream=stream) as bar:
    bar.update(6)
  drawn = stream.getvalue()
  assert "\r" in drawn and "10/10" in drawn and "4/10" in drawn
  assert _lines(caplog) == []


def test_disabled_reports_nothing(caplog):
  caplog.set_level(logging.INFO)
  stream = _Terminal()
  with progress.progress_bar(10, desc="run", unit="step", stream=stream,
                             enabled=False) as bar:
    bar.update(10)
  assert stream.getvalue() == "" and _lines(caplog) == []


def test_run_logs_progress_and_per_step_scalars(tmp_path, caplog):
  accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  caplog.set_level(logging.INFO)
  # 256 images / batch 32 = 8 steps per epoch, 2 epochs; scalars every 4 steps.
  config = tiny_config(num_epochs=2, log_every_steps=4, progress_interval_s=1e-9,
                       lr_schedule="cosine")
  workdir = str(tmp_path / "run")
  train_and_evaluate(config, workdir)
  lines = _lines(caplog)
  assert any(line.startswith("run epoch 2/2: 16/16 steps (100%)") for line in lines), lines
  assert any("loss=" in line for line in lines)

  events = accumulator.EventAccumulator(os.path.join(workdir, "tensorboard"))
  events.Reload()
  loss = events.Scalars("train_step/loss")
  assert [e.step for e in loss] == [4, 8, 12, 16]
  assert all(np.isfinite(e.value) and e.value > 0 for e in loss)
  # Cosine decay over 16 steps, the value of each logged step's update (steps 3, 7, ...).
  lr = [e.value for e in events.Scalars("train_step/learning_rate")]
  expected = [0.05 * (1 + np.cos(np.pi * s / 16)) for s in (3, 7, 11, 15)]
  np.testing.assert_allclose(lr, expected, rtol=1e-5)
  # Per-evaluation scalars are still there, at the epoch ends.
  assert [e.step for e in events.Scalars("test_accuracy")] == [8, 16]
