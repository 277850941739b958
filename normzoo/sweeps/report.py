"""Reports for a sweep, a comparison or a single run: a markdown table and plots.

Runs are grouped by their overrides without ``seed`` (a cell). Every run of
a cell is counted once, by outcome (:func:`normzoo.sweeps.stats.outcome`):
done, diverged, collapsed to chance, failed, not run. Accuracy statistics
are over the ``done`` runs only and state their n: median with min-max, and
mean +- sample std. "Best" accuracy is the best VALIDATION accuracy (runs
with ``validation_examples``); the test set is never used to select.

``get_report()`` of a sweep may also name

* ``baseline``: overrides of the reference cell, e.g. ``{"norm": "batch"}``;
  each cell is then compared seed by seed with the cell that equals it
  except for these fields (paired difference with a 95 % t interval);
* ``targets``: validation accuracies (e.g. ``[0.8, 0.85]``); the table gives
  the median first step reaching each and how many runs reached it.

A directory without a sweep manifest (``experiments.compare`` output, or
one run) is read from the ``config.json`` of each run directory in it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from normzoo.sweeps import stats
from normzoo.sweeps.runner import MANIFEST, read_manifest
from normzoo.train import metrics as metrics_lib
from normzoo.train import rundir

REPORT_FILE = "report.md"
ANALYSIS_FILE = "analysis.md"  # hand-written, kept when the report is regenerated
# Kept for callers of the old name; the function lives in stats (no import cycle).
mean_std = stats.mean_std


def collect(workdir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """The manifest and one record per run: name, overrides, result, metrics rows.

  Without a sweep manifest, ``workdir`` itself (one run) or its direct
  subdirectories holding a ``config.json`` are the runs, keyed by norm and
  model (plus seed); the synthetic manifest names the directory.
  """
  if os.path.exists(os.path.join(workdir, MANIFEST)):
    manifest = read_manifest(workdir)
    runs = [(run["name"], run["overrides"]) for run in manifest["runs"]]
  else:
    runs = _discover_runs(workdir)
    manifest = {"sweep_file": os.path.basename(os.path.normpath(workdir)) or workdir,
                "runs": [{"name": n, "overrides": o} for n, o in runs], "report": {}}
  records = []
  for name, overrides in runs:
    run_dir = os.path.join(workdir, name)
    records.append({"name": name, "overrides": overrides,
                    "result": rundir.read_result(run_dir) or {"status": "not run"},
                    "rows": metrics_lib.read_rows(run_dir)})
  return manifest, records


def _discover_runs(workdir: str) -> list[tuple[str, dict[str, Any]]]:
  candidates = ["."] if rundir.read_config(workdir) else sorted(
      d for d in (os.listdir(workdir) if os.path.isdir(workdir) else [])
      if rundir.read_config(os.path.join(workdir, d)))
  if not candidates:
    raise ValueError(f"{workdir} is not a sweep directory (no {MANIFEST}) and holds no run "
                     "(no config.json in it or in its subdirectories)")
  configs = {d: rundir.read_config(os.path.join(workdir, d)) for d in candidates}
  # Only fields that differ between runs (norm always) label the cells.
  fields = ["norm"] + [f for f in ("model", "model_kwargs", "norm_position", "learning_rate",
                                  "batch_size", "dropout_rate")
                       if len({str(c.get(f)) for c in configs.values()}) > 1]
  runs = []
  for d, config in configs.items():
    overrides = {f: config.get(f) for f in fields}
    overrides["seed"] = config.get("seed", 0)
    runs.append((d, overrides))
  return runs


def _key(overrides: dict[str, Any]) -> tuple:
  return tuple((k, _hashable(v)) for k, v in overrides.items() if k != "seed")


def _hashable(value: Any) -> Any:
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  if isinstance(value, list):
    return tuple(_hashable(v) for v in value)
  return value


ACCURACY_FIELDS = ("test_accuracy", "validation_accuracy", "best_validation_accuracy",
                   "test_accuracy_batch_stats")


def group(records: list[dict[str, Any]], spec: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
  """One summary per override set (seeds pooled), in sweep order.

  Each summary has ``key``, ``runs``, a count per outcome (``done``,
  ``diverged``, ``collapsed``, ``failed``, ``not_run``), ``members``, and for
  each accuracy field ``(mean, std)`` plus ``<field>_values`` (per-seed values
  of the done runs, ``{seed: value}``) and ``<field>_median``.
  """
  spec = spec or {}
  groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
  for record in records:
    record["outcome"] = stats.outcome(record["result"])
    groups[_key(record["overrides"])].append(record)
  summaries = []
  for key, members in groups.items():
    done = [m for m in members if m["outcome"] == "done"]
    summary = {"key": dict(key), "runs": len(members), "members": members}
    for name in stats.OUTCOMES:
      summary[name.replace(" ", "_")] = sum(m["outcome"] == name for m in members)
    for field in ACCURACY_FIELDS + ("best_test_accuracy", "images_per_sec", "wall_time_s"):
      values = {m["overrides"].get("seed", i): m["result"].get(field)
                for i, m in enumerate(done)}
      summary[field] = stats.mean_std(list(values.values()))
      summary[f"{field}_values"] = values
      summary[f"{field}_median"] = stats.median(list(values.values()))
    for target in spec.get("targets", ()):
      steps = [stats.steps_to_target(m["rows"], target) for m in members]
      summary[f"steps_to_{target:g}"] = steps
    summaries.append(summary)
  if spec.get("baseline"):
    _add_paired(summaries, dict(spec["baseline"]))
  return summaries


def _add_paired(summaries: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
  """Sets ``summary['paired']``: test accuracy minus the baseline cell's, per seed."""
  by_key = {_hashable(s["key"]): s for s in summaries}
  for s in summaries:
    ref_key = {**s["key"], **{k: _hashable(v) for k, v in baseline.items()}}
    ref = by_key.get(_hashable(ref_key))
    if ref is None or ref is s:
      s["paired"] = None
      continue
    metric = "test_accuracy" if any(
        v is not None for v in s["test_accuracy_values"].values()) else "validation_accuracy"
    s["paired"] = stats.paired_difference(s[f"{metric}_values"], ref[f"{metric}_values"])


def _cell(stat: tuple[float | None, float | None], scale: float = 100.0, digits: int = 2) -> str:
  mean, std = stat
  if mean is None:
    return "-"
  if std is None:
    return f"{mean * scale:.{digits}f}"
  return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _value(v: Any) -> str:
  if isinstance(v, tuple):
    return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v) + "}"
  return f"{v:g}" if isinstance(v, float) else str(v)


def _median_cell(summary: dict[str, Any], field: str) -> str:
  values = stats.finite(summary[f"{field}_values"].values())
  if not values:
    return "-"
  med = summary[f"{field}_median"] * 100
  if len(values) == 1:
    return f"{med:.2f} (n=1)"
  return f"{med:.2f} [{min(values) * 100:.2f}, {max(values) * 100:.2f}] (n={len(values)})"


def _paired_cell(paired: dict[str, Any] | None) -> str:
  if not paired or not paired["n"]:
    return "-"
  if paired["low"] is None:
    return f"{paired['mean'] * 100:+.2f} (n=1)"
  return (f"{paired['mean'] * 100:+.2f} [{paired['low'] * 100:+.2f}, "
          f"{paired['high'] * 100:+.2f}] (n={paired['n']})")


def _steps_cell(steps: list[int | None]) -> str:
  reached = [s for s in steps if s is not None]
  med = stats.median(reached)
  return f"{med:.0f} ({len(reached)}/{len(steps)} reached)" if reached else \
      f"- (0/{len(steps)} reached)"


def markdown_table(summaries: list[dict[str, Any]], spec: dict[str, Any] | None = None) -> str:
  """The report table: outcome counts, then medians [min, max] (n) and mean ± std.

  Accuracy columns count done runs only (their n is in each cell); diverged,
  collapsed and failed runs are listed in their own columns, never averaged.
  """
  spec = spec or {}
  keys = list(dict.fromkeys(k for s in summaries for k in s["key"]))
  has_val = any(stats.finite(s["validation_accuracy_values"].values()) for s in summaries)
  header = keys + ["runs", "done", "diverged", "collapsed", "failed", "not run",
                   "final test acc (%), median [min, max]", "final test acc (%), mean ± std",
                   "test acc, batch stats (%)"]
  if has_val:
    header.append("best validation acc (%)")
  targets = list(spec.get("targets", ()))
  header += [f"steps to {t * 100:g} % val acc" for t in targets]
  paired = any(s.get("paired") for s in summaries)
  if paired:
    header.append(f"paired diff vs {_value(_hashable(dict(spec['baseline'])))} "
                  "(points, 95 % t interval)")
  header.append("images/s")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for s in summaries:
    cells = [_value(s["key"].get(k, "")) for k in keys]
    cells += [str(s["runs"]), str(s["done"]), str(s["diverged"]), str(s["collapsed"]),
              str(s["failed"]), str(s["not_run"]), _median_cell(s, "test_accuracy"),
              _cell(s["test_accuracy"]), _cell(s["test_accuracy_batch_stats"])]
    if has_val:
      cells.append(_median_cell(s, "best_validation_accuracy"))
    cells += [_steps_cell(s[f"steps_to_{t:g}"]) for t in targets]
    if paired:
      cells.append(_paired_cell(s.get("paired")))
    cells.append(_cell(s["images_per_sec"], 1.0, 0))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_report(workdir: str, title: str = "", command: str = "",
                 out_dir: str | None = None) -> str:
  """Writes ``report.md`` and the PNG plots of ``workdir``; returns the report's path.

  They go to ``out_dir`` (default: ``workdir`` itself), e.g. ``reports/NAME``.
  A hand-written ``analysis.md`` there (the setting, the measurement's
  commit, hardware and wall time, what the data says, a ``Verdict:`` line)
  is appended, so regenerating the tables keeps it.
  """
  from normzoo.sweeps import plots  # matplotlib is imported only when plotting

  manifest, records = collect(workdir)
  out_dir = out_dir or workdir
  os.makedirs(out_dir, exist_ok=True)
  spec = manifest.get("report", {})
  summaries = group(records, spec)
  images = plots.write_plots(out_dir, summaries, spec)
  title = title or spec.get("title") or f"Sweep {manifest['sweep_file']}"
  lines = [f"# {title}", ""]
  if spec.get("claim"):
    lines += [f"**Claim tested:** {spec['claim']}", ""]
  lines += [f"Sweep file: `{manifest['sweep_file']}`; {len(records)} runs in "
            f"{len(summaries)} cells. Accuracies are over each cell's done runs (n in every "
            "cell); diverged, collapsed (final accuracy below 1.5x chance) and failed runs "
            "are counted separately, never averaged.", ""]
  if command:
    lines += ["Regenerate with:", "", "```bash", command, "```", ""]
  lines += [markdown_table(summaries, spec), ""]
  for image in images:
    lines += [f"![{image}]({image})", ""]
  failures = [r for r in records if r["result"].get("status") == "failed"]
  if failures:
    lines += ["## Failed runs", ""]
    lines += [f"- `{r['name']}`: {r['result'].get('error', '')}" for r in failures]
    lines.append("")
  analysis = os.path.join(out_dir, ANALYSIS_FILE)
  if os.path.isfile(analysis):
    with open(analysis) as f:
      lines += [f.read().rstrip(), ""]
  path = os.path.join(out_dir, REPORT_FILE)
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
