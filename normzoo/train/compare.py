"""One run per normalizer with an otherwise identical config, and the table of results."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

from absl import logging

from normzoo.norms.registry import get_norm, module_fields
from normzoo.train import build, progress
from normzoo.train.loop import train_and_evaluate

TABLE_FILE = "comparison.md"
COLUMNS = ("norm", "final test acc", "best test acc", "train-mode test acc", "images/s",
           "wall time (s)", "status")
# With a validation split there is no "best" test accuracy (the test set is
# seen once, at the end): that column shows the final validation accuracy.
VALIDATION_COLUMN = "validation acc"


def config_for_norm(config: Any, norm: str) -> Any:
  """A copy of ``config`` with ``norm`` set.

  ``config.norm_kwargs`` keys the norm does not accept are dropped (logged):
  the overrides were written for one norm, but the comparison runs them all.
  ``per_norm_kwargs`` already holds the recipe's per-norm defaults.
  """
  get_norm(norm)  # unknown name -> ValueError listing the valid ones
  config = config.copy_and_resolve_references()
  fields = module_fields(get_norm(norm))
  with config.unlocked():
    config.norm = norm
    user = dict(config.get("norm_kwargs", None) or {})
    dropped = sorted(k for k in user if k not in fields)
    if dropped:
      logging.warning("norm %r does not take norm_kwargs %s; dropped for this run", norm,
                      dropped)
    config.norm_kwargs = {k: v for k, v in user.items() if k in fields}
  build.make_norm(config)  # bad per-norm kwargs fail before any training
  return config


def run_comparison(config: Any, workdir: str, norms: Sequence[str],
                   train_fn: Callable[[Any, str], dict[str, Any]] = train_and_evaluate
                   ) -> list[dict[str, Any]]:
  """Trains (or resumes, or reuses) ``<workdir>/<norm>`` for each norm.

  All configs are built and checked before the first run starts, so a typo
  in ``norms`` fails at once. Returns the result dicts, in ``norms`` order,
  each with its ``norm`` and the run's ``workdir``.
  """
  if not norms:
    raise ValueError("no norms to compare; pass e.g. --norms=batch,group,layer,instance,none")
  if len(set(norms)) != len(norms):
    raise ValueError(f"norms listed twice: {list(norms)}")
  configs = {norm: config_for_norm(config, norm) for norm in norms}
  results = []
  start = time.time()
  # interval 0: one line per finished run (below), not a periodic one.
  with progress.progress_bar(len(norms), desc="compare", unit="run", interval_s=0) as bar:
    for norm in norms:
      run_dir = os.path.join(workdir, norm)
      result = dict(train_fn(configs[norm], run_dir))
      result.update(norm=norm, workdir=run_dir)
      results.append(result)
      bar.update()
      logging.info("%s | %s: %s, test accuracy %s", progress.summary(bar), norm,
                   result.get("status"), result.get("test_accuracy"))
  logging.info("comparison of %d norms finished in %.0f s", len(norms), time.time() - start)
  return results


def _cell(value: Any, spec: str) -> str:
  return "n/a" if value is None else format(value, spec)


def comparison_table(results: Sequence[dict[str, Any]]) -> str:
  """Markdown table, one row per run, in the given order."""
  validated = any(r.get("validation_accuracy") is not None for r in results)
  columns = [VALIDATION_COLUMN if c == "best test acc" and validated else c for c in COLUMNS]
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for r in results:
    cells = [r["norm"], _cell(r.get("test_accuracy"), ".4f"),
             _cell(r.get("validation_accuracy" if validated else "best_test_accuracy"), ".4f"),
             _cell(r.get("test_accuracy_batch_stats"), ".4f"),
             _cell(r.get("images_per_sec"), ".0f"), _cell(r.get("wall_time_s"), ".0f"),
             str(r.get("status", "n/a"))]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_table(workdir: str, results: Sequence[dict[str, Any]], header: str = "") -> str:
  """Writes ``<workdir>/comparison.md`` (header, then the table); returns its text."""
  text = (header + "\n\n" if header else "") + comparison_table(results)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, TABLE_FILE), "w") as f:
    f.write(text)
  return text
