"""``train_and_evaluate``: the whole run, resumable, with metrics and a result file.

Workdir layout (process 0 writes all but the checkpoints):

* ``config.json``: the config of the latest invocation;
* ``metrics.jsonl``: one row per evaluation (see :mod:`normzoo.train.metrics`);
* ``tensorboard/``: the same values as TensorBoard scalars;
* ``checkpoints/``: orbax checkpoints (the last two kept);
* ``result.json``: written when the run ends (see :func:`make_result`).

Re-running with the same workdir resumes from the newest checkpoint; with a
larger ``num_epochs`` training continues (the schedule is rebuilt for the new
length). A run whose ``result.json`` is final (``done`` or ``diverged``) for
the same ``num_epochs`` is not redone: its result is returned.

Divergence is checked without stalling the device pipeline: each step
returns an on-device ``finite`` flag that is AND-ed into the epoch's metric
sums; the host reads them once per epoch (and every ``log_every_steps``
steps when that is set). A non-finite loss ends the run with ``status:
'diverged'`` (no checkpoint of the NaN state is saved).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import jax
from absl import logging

from normzoo.data import epoch_batches, load_dataset, num_batches, prefetch_to_device
from normzoo.train import build, distributed, divergence, host_memory, progress, rundir, runlock
from normzoo.train.dispatch import InflightLimit, max_inflight_steps
from normzoo.train.checkpoint import Checkpointer
from normzoo.train.evaluate import accumulate, evaluate, summarize
from normzoo.train.metrics import MetricsWriter
from normzoo.train.optim import make_optimizer, make_schedule
from normzoo.train.precise_bn import make_precise_bn
from normzoo.train.state import count_params, create_train_state
from normzoo.train.step import make_eval_step, make_train_step
from normzoo.train.validate import validate_config


def make_result(config: Any, status: str, rows: list[dict[str, Any]], epochs: int,
                wall_time_s: float, extra: dict[str, Any]) -> dict[str, Any]:
  """The ``result.json`` content: final test accuracy, best accuracy, run facts.

  A diverged run has no final accuracy (its parameters are not finite);
  ``best_test_accuracy`` still reports the evaluations before it diverged.
  """
  evaluated = [r for r in rows if r.get("test_accuracy") is not None]
  last = evaluated[-1] if evaluated and status == "done" else {}
  validated = [r for r in rows if r.get("validation_accuracy") is not None]
  best_val = max(validated, key=lambda r: r["validation_accuracy"], default={})
  speeds = [r["images_per_sec"] for r in rows if r.get("images_per_sec")]
  return {
      "status": status, "epochs": epochs, "num_epochs": int(config.num_epochs),
      "test_accuracy": last.get("test_accuracy"), "test_loss": last.get("test_loss"),
      "test_accuracy_batch_stats": last.get("test_accuracy_batch_stats"),
      # With a validation split the test set is seen once, at the end: "best"
      # is chosen on validation, never on test.
      "best_test_accuracy": (None if validated else
                             max((r["test_accuracy"] for r in evaluated), default=None)),
      "validation_accuracy": validated[-1]["validation_accuracy"] if validated else None,
      "best_validation_accuracy": best_val.get("validation_accuracy"),
      "best_validation_step": best_val.get("step"),
      "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
      "images_per_sec": sum(speeds) / len(speeds) if speeds else None,
      "wall_time_s": wall_time_s, "norm": str(config.norm), "model": str(config.model),
      "dataset": str(config.dataset), "sync_batch_stats": bool(config.sync_batch_stats),
      **extra,
  }


def train_and_evaluate(config: Any, workdir: str, *,
                       devices: Sequence[jax.Device] | None = None) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming if possible) and returns the result dict.

  Args:
    config: an experiment ConfigDict (see ``configs/default.py``).
    workdir: the run directory, created if missing.
    devices: devices of the data-parallel mesh (default: all devices of all
      processes); tests pass a subset to compare device counts.

  Raises:
    ValueError: an invalid config value or unknown name (norm, model,
      dataset, optimizer, ...); ``normzoo.data.DataError`` (a ValueError)
      for missing data; ``runlock.RunDirLocked`` (a ValueError) when another
      live process is training in ``workdir``.
  """
  locks: list[runlock.RunLock] = []
  try:
    return _train_and_evaluate(config, workdir, devices, locks)
  finally:
    for lock in locks:
      lock.release()


def _train_and_evaluate(config: Any, workdir: str, devices: Sequence[jax.Device] | None,
                        locks: list) -> dict[str, Any]:
  """The body of :func:`train_and_evaluate`; appends the run-directory lock to ``locks``."""
  distributed.maybe_initialize(config)
  mesh = distributed.make_mesh(devices)
  validate_config(config, mesh.size)
  if config.get("tune_host_allocator", True) and jax.default_backend() == "cpu":
    try:
      host_memory.tune_host_allocator()
    except RuntimeError as e:  # a speed-up only: the run is still correct without it
      logging.warning("host allocator left at its defaults: %s", e)
  # Unknown model / norm / norm_position and bad kwargs fail before data loading.
  build.make_model(config, num_classes=2)
  main = distributed.is_main_process()
  num_epochs = int(config.num_epochs)

  finished = rundir.finished_result(workdir, num_epochs)
  if finished is not None:
    logging.info("%s already finished (%s after %d epochs, test accuracy %s); not redone",
                 workdir, finished["status"], finished["epochs"], finished["test_accuracy"])
    return finished

  dataset = load_dataset(config)
  model = build.make_model(config, dataset.num_classes)
  batch_size = int(config.batch_size)
  steps_per_epoch = num_batches(dataset.train, batch_size)
  if steps_per_epoch == 0:
    raise ValueError(f"invalid config: batch_size {batch_size} exceeds the "
                     f"{len(dataset.train)} training examples")
  schedule = make_schedule(config, steps_per_epoch)
  tx = make_optimizer(config, schedule)
  state = create_train_state(model, tx, jax.random.PRNGKey(int(config.seed)),
                             dataset.image_shape, mesh)

  if main:
    try:
      os.makedirs(workdir, exist_ok=True)
      if not os.access(workdir, os.W_OK):
        raise PermissionError(f"no write permission on {workdir}")
    except OSError as e:  # e.g. a path below a file, a read-only mount: one line, not a traceback
      raise ValueError(f"invalid --workdir={workdir}: cannot create or write it ({e})") from None
    locks.append(runlock.acquire(workdir))
  checkpointer = Checkpointer(workdir)
  latest = checkpointer.latest_epoch() or 0
  if latest > num_epochs:
    raise ValueError(f"invalid config: {workdir} holds a checkpoint after {latest} "
                     f"epochs, more than num_epochs={num_epochs}; use another workdir")
  # Verified restore: a damaged newest checkpoint falls back to the previous one.
  start_epoch, state = checkpointer.restore_latest(state)
  if start_epoch < latest:
    checkpointer.discard_after(start_epoch)
  if start_epoch:
    logging.info("resumed from %s at epoch %d (step %d)", checkpointer.directory, start_epoch,
                 int(state.step))
  if main:
    changed = rundir.changed_fields(rundir.read_config(workdir), rundir.config_to_dict(config))
    if start_epoch and changed:
      logging.warning("config differs from the checkpointed run in: %s", ", ".join(changed))
    rundir.clear_result(workdir)
    rundir.write_config(workdir, config)
  writer = MetricsWriter(workdir, start_epoch, int(state.step), enabled=main)

  run = _Run(config, dataset, mesh, model, schedule, writer,
             label=os.path.basename(os.path.normpath(workdir)) or workdir, main=main)
  extra = {"num_devices": mesh.size, "num_processes": jax.process_count(),
           "num_params": count_params(state.params), "steps_per_epoch": steps_per_epoch,
           "host_allocator": host_memory.host_allocator_state()}
  logging.info("%s: %s + %s norm on %s, %d params, %d devices, %d steps/epoch",
               workdir, config.model, config.norm, config.dataset, extra["num_params"],
               mesh.size, steps_per_epoch)
  status, epochs, state = run.train(state, checkpointer, start_epoch)
  if run.divergence_reason:
    extra["divergence_reason"] = run.divergence_reason
  checkpointer.close()
  writer.close()
  result = make_result(config, status, writer.rows, epochs, run.wall_time(), extra)
  if main:
    rundir.write_result(workdir, result)
  held_out = ("validation", result["validation_accuracy"]) if (
      result["validation_accuracy"] is not None) else ("best", result["best_test_accuracy"])
  logging.info("%s: %s after %d epochs, test accuracy %s (%s %s)", workdir, status, epochs,
               result["test_accuracy"], *held_out)
  return result


class _Run:
  """The epoch loop of one invocation (state is passed in and out, not kept)."""

  def __init__(self, config, dataset, mesh, model, schedule, writer: MetricsWriter, *,
               label: str = "train", main: bool = True):
    self.config, self.dataset, self.schedule, self.writer = config, dataset, schedule, writer
    self.label, self.main = label, main
    self.batch_size = int(config.batch_size)
    self.max_inflight = max_inflight_steps(mesh.size)  # the 8-CPU-device hang (dispatch.py)
    self.sharding = distributed.batch_sharding(mesh)
    self.precise_bn = make_precise_bn(config, model, mesh, dataset, self.sharding)
    smoothing = float(config.get("label_smoothing", 0.0))
    self.train_step = make_train_step(model, mesh, augment=dataset.augment,
                                      label_smoothing=smoothing, seed=int(config.seed))
    self.eval_step = make_eval_step(model, mesh, label_smoothing=smoothing)
    self.eval_batch_stats_step = make_eval_step(model, mesh, batch_statistics=True,
                                                label_smoothing=smoothing)
    last = writer.last_row()
    self._wall_offset = float(last["wall_time_s"]) if last else 0.0
    self._start = time.time()
    self.divergence_reason: str | None = None

  def wall_time(self) -> float:
    return self._wall_offset + time.time() - self._start

  def train(self, state, checkpointer: Checkpointer, start_epoch: int):
    """Runs epochs ``start_epoch .. num_epochs``; returns ``(status, epochs, state)``.

    Evaluation rows are written every ``eval_every_steps`` steps (and at step
    0) when that is set, else every ``eval_every_epochs`` epochs; the last
    row always holds the final evaluation (the test set included). The
    training sums are checked for divergence every ``check_every`` steps
    (normzoo/train/divergence.py), not only at epoch ends; each check also
    writes the ``train_step/*`` scalars and updates the progress display.
    """
    config = self.config
    steps_per_epoch = num_batches(self.dataset.train, self.batch_size)
    final_step = int(config.num_epochs) * steps_per_epoch
    interval = float(config.get("progress_interval_s", progress.DEFAULT_INTERVAL_S))
    with progress.progress_bar(final_step, initial=int(state.step), desc=self.label,
                               unit="step", interval_s=interval, enabled=self.main) as bar:
      return self._epochs(state, checkpointer, start_epoch, bar)

  def _epochs(self, state, checkpointer: Checkpointer, start_epoch: int, bar):
    config, num_epochs = self.config, int(self.config.num_epochs)
    eval_every = int(config.get("eval_every_epochs", 1))
    eval_steps = int(config.get("eval_every_steps", 0) or 0)
    ckpt_every = int(config.checkpoint_every_epochs)
    log_every = int(config.get("log_every_steps", 0))
    bound, check_every = divergence.loss_bound(config), divergence.check_every(config)
    steps_per_epoch = num_batches(self.dataset.train, self.batch_size)
    final_step = num_epochs * steps_per_epoch
    self.timer = {"images": 0, "seconds": 0.0}
    sums = window = None  # since the last evaluation row / since the last check
    first_step = True
    host_step = int(state.step)  # counted on the host: reading state.step would block
    inflight = InflightLimit(self.max_inflight)
    if eval_steps and host_step == 0 and not any(r.get("step") == 0 for r in self.writer.rows):
      # The untrained model: curves start at step 0.
      state = self._write_eval_row(state, None, epoch=0, step=0, final=False)
    for epoch in range(start_epoch, num_epochs):
      bar.set_description(f"{self.label} epoch {epoch + 1}/{num_epochs}", refresh=False)
      batches = epoch_batches(self.dataset.train, self.batch_size, seed=int(config.seed),
                              epoch=epoch, process_index=jax.process_index(),
                              process_count=jax.process_count())
      tick = time.perf_counter()
      for batch in prefetch_to_device(batches, size=2, sharding=self.sharding):
        state, metrics = self.train_step(state, *batch)
        inflight.add(metrics)
        sums, window = accumulate(sums, metrics), accumulate(window, metrics)
        host_step += 1
        bar.update()
        if first_step:
          # Keep compilation out of images/s: time from the end of the first step.
          jax.block_until_ready(metrics)
          first_step, tick = False, time.perf_counter()
        else:
          self.timer["images"] += self.batch_size
        if host_step % check_every == 0:
          self._report_steps(window, host_step, bar, log=bool(log_every))
          window = None
          if divergence.train_reason(summarize(sums), bound):
            break  # recorded below
        if eval_steps and host_step % eval_steps == 0 and host_step < final_step:
          train = summarize(sums)
          if divergence.train_reason(train, bound):
            break
          self.timer["seconds"] += time.perf_counter() - tick
          state = self._write_eval_row(state, train, epoch=host_step / steps_per_epoch,
                                       step=host_step, final=False)
          if self.divergence_reason:
            return "diverged", epoch + 1, state
          sums, tick = None, time.perf_counter()
      self.timer["seconds"] += time.perf_counter() - tick
      train = summarize(sums) if sums is not None else None
      self.divergence_reason = divergence.train_reason(train, bound) if train else None
      if self.divergence_reason:
        row = self._train_row(train, epoch + 1, host_step)
        self.writer.write({**row, "test_loss": None, "test_accuracy": None,
                           "test_accuracy_batch_stats": None, "status": "diverged"})
        logging.warning("epoch %d: %s; stopping (status diverged)", epoch + 1,
                        self.divergence_reason)
        return "diverged", epoch + 1, state
      last_epoch = epoch + 1 == num_epochs
      if last_epoch or (not eval_steps and (epoch + 1) % eval_every == 0):
        state = self._write_eval_row(state, train, epoch=epoch + 1, step=host_step,
                                     final=last_epoch)
        if self.divergence_reason:
          return "diverged", epoch + 1, state
        sums = None
      if (ckpt_every and (epoch + 1) % ckpt_every == 0) or last_epoch:
        checkpointer.save(epoch + 1, state)
    last = self.writer.last_row()
    if last is None or last["epoch"] != num_epochs:
      # Resumed from the final checkpoint of a run killed before its last row.
      state = self._write_eval_row(state, None, epoch=num_epochs, step=int(state.step),
                                   final=True)
    return "done", num_epochs, state

  def _report_steps(self, window, step: int, bar, log: bool) -> dict[str, Any]:
    """The mean loss and accuracy of the steps since the last check, as
    ``train_step/*`` TensorBoard scalars, the progress display and (``log``) a log line."""
    recent = summarize(window)
    rate = bar.format_dict.get("rate")  # tqdm's smoothed steps/s; None before it knows
    lr = float(self.schedule(max(step - 1, 0)))
    self.writer.write_scalars(step, {
        "train_step/loss": recent["loss"], "train_step/accuracy": recent["accuracy"],
        "train_step/learning_rate": lr,
        "train_step/steps_per_sec": rate,
        "train_step/images_per_sec": rate * self.batch_size if rate else None})
    progress.postfix(bar, loss=f"{recent['loss']:.4f}", acc=f"{recent['accuracy']:.3f}",
                     **({"img/s": f"{rate * self.batch_size:.0f}"} if rate else {}))
    if log:
      logging.info("step %d: train loss %.4f accuracy %.4f (last %d examples)", step,
                   recent["loss"], recent["accuracy"], recent["count"])
    return recent

  def _train_row(self, train: dict[str, Any] | None, epoch: float, step: int) -> dict[str, Any]:
    """The training part of a row; resets the throughput counters."""
    images, seconds = self.timer["images"], self.timer["seconds"]
    self.timer.update(images=0, seconds=0.0)
    return {"epoch": epoch, "step": step,
            "train_loss": train["loss"] if train else None,
            "train_accuracy": train["accuracy"] if train else None,
            "images_per_sec": images / seconds if images and seconds > 0 else None,
            "wall_time_s": self.wall_time(),
            "learning_rate": float(self.schedule(max(step - 1, 0)))}  # of the last step

  def _write_eval_row(self, state, train: dict[str, Any] | None, *, epoch: float, step: int,
                      final: bool):
    """Evaluates (PreciseBN first, if configured), writes and logs a row; returns the state.

    A held-out accuracy back at chance after having been well above it sets
    ``divergence_reason`` and marks the row diverged (the validation accuracy
    when there is a split, else the test accuracy).
    """
    row = self._train_row(train, epoch, step)
    if self.precise_bn is not None:
      state = self.precise_bn(state)
    key = "validation_accuracy" if self.dataset.validation is not None else "test_accuracy"
    best_before = max((r[key] for r in self.writer.rows if r.get(key) is not None),
                      default=None)
    row.update(self.evaluate(state, final=final))
    row["wall_time_s"] = self.wall_time()
    self.divergence_reason = divergence.chance_reason(row.get(key), best_before,
                                                      self.dataset.num_classes,
                                                      what=key.replace("_", " "))
    if self.divergence_reason:
      row["status"] = "diverged"
    self.writer.write(row)
    _log_row(row, int(self.config.num_epochs))
    if self.divergence_reason:
      logging.warning("step %d: %s; stopping (status diverged)", step, self.divergence_reason)
    return state

  def evaluate(self, state, final: bool = True) -> dict[str, Any]:
    """Validation loss/accuracy if there is a validation split; test metrics when
    ``final`` or when there is none (running statistics, and accuracy with batch
    statistics)."""
    out: dict[str, Any] = {}
    if self.dataset.validation is not None:
      val = evaluate(self.eval_step, state, self.dataset.validation, self.batch_size,
                     self.sharding)
      out = {"validation_loss": val["loss"], "validation_accuracy": val["accuracy"]}
      if not final:
        # No test-set look during training: selection happens on validation.
        return {**out, "test_loss": None, "test_accuracy": None,
                "test_accuracy_batch_stats": None}
    test = evaluate(self.eval_step, state, self.dataset.test, self.batch_size, self.sharding)
    if jax.tree.leaves(state.batch_stats):
      batch_stats = evaluate(self.eval_batch_stats_step, state, self.dataset.test,
                             self.batch_size, self.sharding, full_coverage=False,
                             seed=int(self.config.seed))
      accuracy_bs = batch_stats["accuracy"] if batch_stats else None
    else:
      accuracy_bs = test["accuracy"]  # no batch statistics: both modes are the same model
    return {**out, "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "test_accuracy_batch_stats": accuracy_bs}


def _fmt(value: Any, spec: str) -> str:
  return "n/a" if value is None else format(value, spec)


def _log_row(row: dict[str, Any], num_epochs: int) -> None:
  logging.info(
      "epoch %d/%d step %d: train loss %s acc %s | test loss %s acc %s (batch-stats acc %s) | "
      "%s images/s | lr %s | %.0f s", row["epoch"], num_epochs, row["step"],
      _fmt(row["train_loss"], ".4f"), _fmt(row["train_accuracy"], ".4f"),
      _fmt(row["test_loss"], ".4f"), _fmt(row["test_accuracy"], ".4f"),
      _fmt(row["test_accuracy_batch_stats"], ".4f"), _fmt(row["images_per_sec"], ".0f"),
      _fmt(row["learning_rate"], ".4g"), row["wall_time_s"])
