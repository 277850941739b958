"""Per-evaluation metrics: ``metrics.jsonl`` rows and TensorBoard scalars.

One row per evaluation (keys in :data:`ROW_KEYS`, plus ``status`` on the row
of a diverged run):

* ``epoch`` (completed epochs; fractional for rows of ``eval_every_steps``
  inside an epoch, and 0 for the step-0 row), ``step`` (optimizer steps so far);
* ``train_loss`` / ``train_accuracy``: means over the training steps since the
  previous row (training mode, augmented batches, parameters changing);
* ``test_loss`` / ``test_accuracy``: every test example once, running
  statistics (``train=False``);
* ``validation_loss`` / ``validation_accuracy``: only with
  ``config.validation_examples``: the held-out training examples, running
  statistics. The test keys are then ``null`` on every row but the last
  (the test set is looked at once, at the end);
* ``test_accuracy_batch_stats``: the test set in training mode (batch
  statistics of test batches of ``batch_size``, shuffled with ``seed``, last
  partial batch dropped, running statistics left unchanged); equal to
  ``test_accuracy`` for models without batch-statistics normalizers;
* ``images_per_sec``: training throughput since the previous row, excluding
  the first step of each invocation (compilation) and evaluation;
* ``wall_time_s``: since the run started, summed over resumed invocations;
* ``learning_rate``: of the last step.

NaN/inf values are written as ``null``. On resume after epoch ``E``, rows of
later epochs (written after the checkpoint by an interrupted run) are
dropped from the file and TensorBoard purges its later events, so nothing
appears twice.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
ROW_KEYS = ("epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
            "test_accuracy_batch_stats", "images_per_sec", "wall_time_s", "learning_rate")


def read_rows(workdir: str) -> list[dict[str, Any]]:
  """All rows of ``<workdir>/metrics.jsonl`` (empty when missing); skips a torn last line."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break  # a line cut short by a kill; everything after it is unusable too
  return rows


def _json_value(value: Any) -> Any:
  # NaN/inf are not JSON; a diverged run records them as null.
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


class MetricsWriter:
  """Appends rows to ``metrics.jsonl`` and scalars to TensorBoard.

  Args:
    workdir: the run directory.
    resume_epoch: completed epochs of the restored checkpoint (0 for a fresh
      run); rows with a larger ``epoch`` are removed.
    resume_step: the optimizer step of that checkpoint; TensorBoard events
      after it are purged.
    enabled: ``False`` on processes other than 0: they keep ``rows`` but
      write nothing.
  """

  def __init__(self, workdir: str, resume_epoch: int = 0, resume_step: int = 0,
               enabled: bool = True):
    self.enabled = enabled
    # Every process reads the rows (the workdir is shared), so all of them
    # agree on what has been evaluated; only process 0 writes.
    self.rows = [r for r in read_rows(workdir) if r.get("epoch", 0) <= resume_epoch]
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._path = os.path.join(workdir, METRICS_FILE)
    self._rewrite()
    # Imported here: tensorboardX imports PyTorch whenever it is installed
    # (about 1.3 s, and its OpenMP runtime), which only a writer needs.
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR),
                             purge_step=resume_step + 1 if resume_step else None)

  def _rewrite(self) -> None:
    tmp = self._path + ".tmp"
    with open(tmp, "w") as f:
      for row in self.rows:
        f.write(json.dumps(row) + "\n")
    os.replace(tmp, self._path)

  def write(self, row: dict[str, Any]) -> None:
    """Appends one row (flushed immediately) and its numeric values to TensorBoard."""
    row = {k: _json_value(v) for k, v in row.items()}
    self.rows.append(row)
    if not self.enabled:
      return
    with open(self._path, "a") as f:
      f.write(json.dumps(row) + "\n")
    step = int(row["step"])
    for key, value in row.items():
      if key not in ("epoch", "step") and isinstance(value, (int, float)):
        self._tb.add_scalar(key, value, global_step=step)
    self._tb.flush()

  def write_scalars(self, step: int, values: dict[str, float]) -> None:
    """TensorBoard scalars between evaluations (e.g. ``train_step/loss``); not in metrics.jsonl."""
    if not self.enabled:
      return
    for key, value in values.items():
      if value is not None and math.isfinite(value):
        self._tb.add_scalar(key, value, global_step=step)
    self._tb.flush()

  def last_row(self) -> dict[str, Any] | None:
    return self.rows[-1] if self.rows else None

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
