"""Sweep reports: a markdown table of mean +- std over seeds, and plots.

Runs are grouped by their overrides without ``seed``; each group's row gives
the number of runs, how many diverged or failed, and the mean +- sample std
(over seeds) of the final and best test accuracy, the test accuracy with
batch statistics (train mode), and throughput. Plots (matplotlib, PNG):

* ``final_accuracy.png``: final test accuracy against the ``x`` field of the
  sweep's ``get_report()`` (one line per ``series`` value, error bars = std
  over seeds, diverged runs marked with a red x at the bottom);
* ``curves.png`` / ``train_loss.png``: test accuracy / training loss per
  epoch, one line per group (mean, with a band of +- std over seeds).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

from normzoo.sweeps.runner import read_manifest
from normzoo.train import metrics as metrics_lib
from normzoo.train import rundir

REPORT_FILE = "report.md"


def collect(workdir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """The manifest and one record per run: name, overrides, result, metrics rows."""
  manifest = read_manifest(workdir)
  records = []
  for run in manifest["runs"]:
    run_dir = os.path.join(workdir, run["name"])
    records.append({"name": run["name"], "overrides": run["overrides"],
                    "result": rundir.read_result(run_dir) or {"status": "not run"},
                    "rows": metrics_lib.read_rows(run_dir)})
  return manifest, records


def _key(overrides: dict[str, Any]) -> tuple:
  return tuple((k, _hashable(v)) for k, v in overrides.items() if k != "seed")


def _hashable(value: Any) -> Any:
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  if isinstance(value, list):
    return tuple(_hashable(v) for v in value)
  return value


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
  values = [v for v in values if v is not None and math.isfinite(v)]
  if not values:
    return None, None
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, None
  var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
  return mean, math.sqrt(var)


def group(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One summary per override set (seeds pooled), in sweep order."""
  groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
  for record in records:
    groups[_key(record["overrides"])].append(record)
  summaries = []
  for key, members in groups.items():
    results = [m["result"] for m in members]
    done = [r for r in results if r.get("status") == "done"]
    summary = {"key": dict(key), "runs": len(members),
               "done": len(done),
               "diverged": sum(r.get("status") == "diverged" for r in results),
               "failed": sum(r.get("status") == "failed" for r in results),
               "not_run": sum(r.get("status") == "not run" for r in results),
               "members": members}
    for field in ("test_accuracy", "best_test_accuracy", "test_accuracy_batch_stats",
                  "images_per_sec", "wall_time_s"):
      summary[field] = mean_std([r.get(field) for r in done])
    summaries.append(summary)
  return summaries


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


def markdown_table(summaries: list[dict[str, Any]]) -> str:
  keys = list(dict.fromkeys(k for s in summaries for k in s["key"]))
  header = keys + ["runs", "diverged", "failed", "final test acc (%)", "best test acc (%)",
                   "test acc, batch stats (%)", "images/s"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for s in summaries:
    cells = [_value(s["key"].get(k, "")) for k in keys]
    cells += [str(s["runs"]), str(s["diverged"]), str(s["failed"] + s["not_run"]),
              _cell(s["test_accuracy"]), _cell(s["best_test_accuracy"]),
              _cell(s["test_accuracy_batch_stats"]), _cell(s["images_per_sec"], 1.0, 0)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_report(workdir: str, title: str = "", command: str = "") -> str:
  """Writes ``report.md`` and the PNG plots into the sweep directory; returns the path."""
  from normzoo.sweeps import plots  # matplotlib is imported only when plotting

  manifest, records = collect(workdir)
  summaries = group(records)
  spec = manifest.get("report", {})
  images = plots.write_plots(workdir, summaries, spec)
  title = title or spec.get("title") or f"Sweep {manifest['sweep_file']}"
  lines = [f"# {title}", ""]
  if spec.get("claim"):
    lines += [f"**Claim tested:** {spec['claim']}", ""]
  lines += [f"Sweep file: `{manifest['sweep_file']}`; {len(records)} runs in "
            f"{len(summaries)} groups (mean ± std over seeds; std needs 2+ finished seeds).", ""]
  if command:
    lines += ["Regenerate with:", "", "```bash", command, "```", ""]
  lines += [markdown_table(summaries), ""]
  for image in images:
    lines += [f"![{image}]({image})", ""]
  failures = [r for r in records if r["result"].get("status") == "failed"]
  if failures:
    lines += ["## Failed runs", ""]
    lines += [f"- `{r['name']}`: {r['result'].get('error', '')}" for r in failures]
    lines.append("")
  path = os.path.join(workdir, REPORT_FILE)
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
