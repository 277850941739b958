"""Orbax checkpoints of the train state, one per saved epoch.

The checkpoint "step" orbax sees is the number of completed epochs, so
``latest_epoch()`` is where a resumed run starts. Only arrays are stored
(params, batch_stats, optimizer state, step); the model and optimizer are
rebuilt from the config and the arrays restored into them with the current
shardings, so a run may resume on a different number of devices.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from normzoo.train.state import TrainState

MAX_TO_KEEP = 2


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
