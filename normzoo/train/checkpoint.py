"""Orbax checkpoints of the train state, one per saved epoch.

The checkpoint "step" orbax sees is the number of completed epochs, so
``latest_epoch()`` is where a resumed run starts. Only arrays are stored
(params, batch_stats, optimizer state, step); the model and optimizer are
rebuilt from the config and the arrays restored into them with the current
shardings, so a run may resume on a different number of devices.

Verification. We found no checksum verification in orbax 0.12's restore
(tests/train/test_faults.py: a flipped bit in a TensorStore chunk restored
without an error before this module checked), so after each save
process 0 writes ``checkpoints/digests/<epoch>.json``: the SHA-256 and size of
every file of that step directory. :meth:`Checkpointer.restore_latest`
checks the digests, restores, and refuses non-finite arrays (a diverged run
never saves its state, so those mean damage); a damaged newest checkpoint is
deleted with a warning and the previous kept one used. When none is usable
it raises :class:`CheckpointError` (a ValueError: the CLI's one line) naming
the file. Checkpoints written before digests existed are still restored,
checked for finiteness only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from normzoo.train.state import TrainState

MAX_TO_KEEP = 2
DIGEST_DIR = "digests"


class CheckpointError(ValueError):
  """No kept checkpoint is usable (damaged or unreadable files)."""


def _file_digests(step_dir: str) -> dict[str, list]:
  """``{relative path: [size, sha256]}`` of every file under ``step_dir``."""
  digests = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
          h.update(chunk)
      digests[os.path.relpath(path, step_dir)] = [os.path.getsize(path), h.hexdigest()]
  return digests


def verify_step_dir(step_dir: str, expected: dict[str, list]) -> str | None:
  """``None`` if the files match ``expected``, else one line naming the first bad file."""
  for rel, (size, digest) in sorted(expected.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.exists(path):
      return f"{path} is missing"
    actual = os.path.getsize(path)
    if actual != size:
      return f"{path} has {actual} bytes, {size} when saved (truncated or overwritten)"
    h = hashlib.sha256()
    with open(path, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    if h.hexdigest() != digest:
      return f"{path} does not match its SHA-256 from the save (bit rot or overwrite)"
  return None


def _all_finite(tree: Any) -> bool:
  """Every floating leaf finite (read to the host: the arrays are small next to an epoch)."""
  return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree)
             if np.issubdtype(np.dtype(leaf.dtype), np.inexact))


class _DropOrbaxInfo(logging.Filter):
  """Orbax logs ~30 INFO lines per save through absl; keep its warnings only."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname


def _quiet_orbax() -> None:
  logger = logging.getLogger("absl")
  if not any(isinstance(f, _DropOrbaxInfo) for f in logger.filters):
    logger.addFilter(_DropOrbaxInfo())


def _arrays(state: TrainState) -> dict[str, Any]:
  return {"params": state.params, "batch_stats": state.batch_stats,
          "opt_state": state.opt_state, "step": state.step}


class Checkpointer:
  """Saves and restores :class:`TrainState` arrays under ``<workdir>/checkpoints``.

  All processes must call :meth:`save` and :meth:`restore` together.
  """

  def __init__(self, workdir: str, max_to_keep: int = MAX_TO_KEEP):
    _quiet_orbax()
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    # Synchronous saves: the arrays are tiny next to an epoch, and the train
    # step donates the state buffers right after a save returns.
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_epoch(self) -> int | None:
    """Completed epochs in the newest checkpoint, or ``None`` when there is none."""
    return self._manager.latest_step()

  def save(self, epoch: int, state: TrainState) -> None:
    """Saves ``state`` as the checkpoint after ``epoch`` completed epochs."""
    if self._manager.latest_step() == epoch:
      return  # already saved (e.g. the periodic and the final save coincide)
    self._manager.save(epoch, args=ocp.args.StandardSave(_arrays(state)))
    self._manager.wait_until_finished()
    if jax.process_index() == 0:
      self._write_digests(epoch)

  def _step_dir(self, epoch: int) -> str:
    return os.path.join(self.directory, str(epoch))

  def _digest_path(self, epoch: int) -> str:
    return os.path.join(self.directory, DIGEST_DIR, f"{epoch}.json")

  def _write_digests(self, epoch: int) -> None:
    os.makedirs(os.path.join(self.directory, DIGEST_DIR), exist_ok=True)
    path = self._digest_path(epoch)
    with open(path + ".tmp", "w") as f:
      json.dump(_file_digests(self._step_dir(epoch)), f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)  # atomic: a kill leaves the old digests or none
    kept = {str(s) for s in self._manager.all_steps()}
    for name in os.listdir(os.path.join(self.directory, DIGEST_DIR)):
      if name.endswith(".json") and name[:-5] not in kept:  # orbax removed that step
        os.remove(os.path.join(self.directory, DIGEST_DIR, name))

  def _problem(self, epoch: int) -> str | None:
    """Why the files of ``epoch`` cannot be trusted, or ``None`` (digests match or none kept)."""
    try:
      with open(self._digest_path(epoch)) as f:
        expected = json.load(f)
    except FileNotFoundError:
      return None  # a checkpoint from before digests: only the finite check applies
    except (OSError, json.JSONDecodeError) as e:
      return f"{self._digest_path(epoch)} is unreadable ({e})"
    return verify_step_dir(self._step_dir(epoch), expected)

  def restore_latest(self, state: TrainState, max_epoch: int | None = None
                     ) -> tuple[int, TrainState]:
    """``(epochs, state)`` from the newest usable checkpoint, ``(0, state)`` if none exists.

    A damaged checkpoint (digest mismatch, unreadable files, non-finite
    arrays) is logged as a warning, deleted (a later save of that epoch
    replaces it) and the previous one tried. Raises :class:`CheckpointError`
    when checkpoints exist but none is usable.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    if max_epoch is not None:
      steps = [s for s in steps if s <= max_epoch]
    problems = []
    for epoch in steps:
      problem = self._problem(epoch)
      if problem is None:
        try:
          restored = self.restore(state, epoch)
        except Exception as e:  # pylint: disable=broad-except
          # TensorStore/JSON errors of a truncated or emptied file: one line, not 170.
          first = str(e).strip().splitlines()[0] if str(e).strip() else ""
          problem = (f"{self._step_dir(epoch)} cannot be restored "
                     f"({type(e).__name__}: {first[:300]})")
        else:
          if _all_finite(_arrays(restored)):
            return epoch, restored
          problem = f"{self._step_dir(epoch)} holds non-finite arrays (damaged on storage)"
      problems.append(problem)
      absl_logging.warning("checkpoint after epoch %d is damaged: %s; %s", epoch, problem,
                           "trying the previous one" if epoch != steps[-1] else "none left")
    if problems:
      raise CheckpointError(
          f"no usable checkpoint in {self.directory}: {problems[0]}"
          + (f" (and {len(problems) - 1} older damaged)" if len(problems) > 1 else "")
          + "; move the checkpoints directory away to start the run afresh")
    return 0, state

  def discard_after(self, epoch: int) -> None:
    """Deletes checkpoints newer than ``epoch`` (damaged ones a fallback skipped)."""
    for step in self._manager.all_steps():
      if step > epoch:
        if jax.process_index() == 0:
          absl_logging.warning("deleting damaged checkpoint %s", self._step_dir(step))
          try:
            self._manager.delete(step)
          except Exception:  # pylint: disable=broad-except
            pass  # damaged beyond orbax's reading: removed by hand below
          digest = self._digest_path(step)
          if os.path.exists(digest):
            os.remove(digest)
          if os.path.exists(self._step_dir(step)):
            shutil.rmtree(self._step_dir(step), ignore_errors=True)
    self._manager.reload()

  def restore(self, state: TrainState, epoch: int | None = None) -> TrainState:
    """Returns ``state`` with arrays from the checkpoint of ``epoch`` (default latest).

    ``state`` supplies the structure, dtypes and shardings (a freshly
    created state of the same model and optimizer).
    """
    epoch = self._manager.latest_step() if epoch is None else epoch
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(state))
    restored = self._manager.restore(epoch, args=ocp.args.StandardRestore(target))
    return state.replace(**restored)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
