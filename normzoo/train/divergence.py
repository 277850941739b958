"""When a run counts as diverged, and why (the reason goes into ``result.json``).

Three signs, each cheap to read on the host from the metric sums:

* a non-finite training loss (the step's on-device ``finite`` flag);
* a finite but absurd mean training loss, above
  ``config.divergence_loss_bound`` (default 1e3: cross-entropy that high
  means the correct class gets probability ~e^-1000; ``--config.learning_rate=1e4``
  with batch norm reaches 3.9e15 while staying finite);
* a collapse to chance: test accuracy at most 1.1x chance after an earlier
  evaluation reached at least twice chance (a model that learned and then
  blew up; a slow start at chance is not flagged).

The sums are read every ``log_every_steps`` steps, or every
:data:`DEFAULT_CHECK_EVERY` steps when that is 0, and at each epoch end.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_LOSS_BOUND = 1e3
DEFAULT_CHECK_EVERY = 100


def loss_bound(config: Any) -> float:
  return float(config.get("divergence_loss_bound", DEFAULT_LOSS_BOUND))


def check_every(config: Any) -> int:
  """Steps between host reads of the metric sums (``log_every_steps`` if set)."""
  log_every = int(config.get("log_every_steps", 0))
  return log_every if log_every > 0 else DEFAULT_CHECK_EVERY


def train_reason(summary: dict[str, Any], bound: float) -> str | None:
  """Why the training sums (from ``evaluate.summarize``) mean divergence, or ``None``."""
  if not summary.get("finite", True):
    return "non-finite training loss"
  if summary["loss"] > bound:
    return (f"training loss {summary['loss']:.4g} above divergence_loss_bound={bound:g}")
  return None


def chance_reason(accuracy: float | None, best_before: float | None,
                  num_classes: int, what: str = "test accuracy") -> str | None:
  """``None`` unless the held-out accuracy ``what`` fell back to chance after being above it."""
  chance = 1.0 / num_classes
  if accuracy is None or best_before is None or math.isnan(accuracy):
    return None
  if best_before >= 2.0 * chance and accuracy <= 1.1 * chance:
    return (f"{what} {accuracy:.4f} collapsed to chance ({chance:.4f}) after reaching "
            f"{best_before:.4f}")
  return None
