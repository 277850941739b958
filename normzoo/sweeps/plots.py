"""Matplotlib figures for reports (headless: the Agg backend).

Conventions, for every figure:

* curves are drawn against optimizer steps (step 0, the untrained model,
  included when the run logged it with ``eval_every_steps``);
* a categorical x (norms, placements) is drawn as bars or points, never as a
  connected line; a numeric x (learning rate, batch size) as points with
  error bars joined by a line per series;
* core norms and research variants go in separate panels;
* colours never repeat (tab10, then tab20, then evenly spaced hues);
* per-seed values are drawn as dots over the median/mean, n is in the labels;
* outcome counts (done, diverged, collapsed, failed) have their own figure;
* legends sit outside the axes.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from normzoo.sweeps import stats  # noqa: E402

CORE_NORMS = ("batch", "group", "layer", "instance", "none")
OUTCOME_COLOURS = {"done": "tab:green", "diverged": "tab:red", "collapsed": "tab:orange",
                   "failed": "tab:gray", "not run": "lightgray"}


def colours(n: int) -> list[Any]:
  """``n`` distinct colours: tab10 up to 10, tab20 up to 20, then evenly spaced hues."""
  if n <= 10:
    return [plt.get_cmap("tab10")(i) for i in range(n)]
  if n <= 20:
    return [plt.get_cmap("tab20")(i) for i in range(n)]
  return [plt.get_cmap("hsv")(i / n) for i in range(n)]


def _text(value: Any) -> str:
  if isinstance(value, tuple):  # a dict made hashable by report._hashable
    return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value) + "}"
  return f"{value:g}" if isinstance(value, float) else str(value)


def _label(key: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
  parts = [f"{k}={_text(v)}" for k, v in key.items() if k not in skip]
  return ", ".join(parts) or "all runs"


def panels(summaries: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
  """``[(title, summaries)]``: core norms and variants apart when both occur."""
  core = [s for s in summaries if s["key"].get("norm", "batch") in CORE_NORMS]
  variants = [s for s in summaries if s not in core]
  if core and variants:
    return [("core norms", core), ("variants", variants)]
  return [("", summaries)]


def _figure(num_panels: int, width: float = 6.0):
  fig, axes = plt.subplots(1, num_panels, figsize=(width * num_panels + 2.5, 4.5),
                           squeeze=False)
  return fig, list(axes[0])


def _save(fig, path: str) -> None:
  fig.savefig(path, dpi=110, bbox_inches="tight")  # keeps the outside legends in the file
  plt.close(fig)


def _legend(ax) -> None:
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _n_label(s: dict[str, Any], field: str = "test_accuracy") -> str:
  n = len(stats.finite(s[f"{field}_values"].values()))
  return f"n={n}/{s['runs']}"


def curve_metric(summaries: list[dict[str, Any]]) -> str:
  """``validation_accuracy`` when the runs logged it, else ``test_accuracy``."""
  for s in summaries:
    for m in s["members"]:
      if any(r.get("validation_accuracy") is not None for r in m["rows"]):
        return "validation_accuracy"
  return "test_accuracy"


def curves_plot(path: str, summaries: list[dict[str, Any]], metric: str = "test_accuracy"
                ) -> bool:
  """Mean over seeds (band: min-max) of ``metric`` against steps, one line per cell.

  Accuracies in percent; losses on a log scale.
  """
  percent = "accuracy" in metric
  factor = 100.0 if percent else 1.0
  groups = panels(summaries)
  fig, axes = _figure(len(groups))
  drawn = False
  for ax, (title, members) in zip(axes, groups):
    palette = colours(len(members))
    for colour, s in zip(palette, members):
      by_step: dict[int, list[float]] = defaultdict(list)
      for m in s["members"]:
        for row in m["rows"]:
          value = row.get(metric)
          if value is not None and math.isfinite(value) and row.get("step") is not None:
            by_step[int(row["step"])].append(value * factor)
      if not by_step:
        continue
      steps = sorted(by_step)
      means = [float(np.mean(by_step[t])) for t in steps]
      ax.plot(steps, means, marker=".", color=colour,
              label=f"{_label(s['key'])} ({len(s['members'])} runs)")
      ax.fill_between(steps, [min(by_step[t]) for t in steps],
                      [max(by_step[t]) for t in steps], color=colour, alpha=0.15)
      drawn = True
    ax.set_xlabel("step")
    ax.set_ylabel(metric.replace("_", " ") + (" (%)" if percent else ""))
    if not percent:
      ax.set_yscale("log")
    ax.set_title((f"{title}: " if title else "") + metric.replace("_", " "))
    ax.grid(True, alpha=0.3)
    _legend(ax)
  fig.suptitle(f"{metric.replace('_', ' ')} during training (mean over seeds, band min-max)")
  if not drawn:
    plt.close(fig)
    return False
  _save(fig, path)
  return True


def final_bars_plot(path: str, summaries: list[dict[str, Any]],
                    field: str = "test_accuracy") -> bool:
  """Categorical cells: a bar at the median of the done runs, a dot per seed, n in the tick.

  Diverged / collapsed counts are written above each bar.
  """
  if not any(stats.finite(s[f"{field}_values"].values()) for s in summaries):
    return False
  groups = panels(summaries)
  fig, axes = _figure(len(groups))
  for ax, (title, members) in zip(axes, groups):
    palette = colours(len(members))
    for i, (colour, s) in enumerate(zip(palette, members)):
      values = [v * 100 for v in stats.finite(s[f"{field}_values"].values())]
      med = s[f"{field}_median"]
      ax.bar(i, med * 100 if med is not None else 0.0, color=colour, alpha=0.6, width=0.7,
             label=f"{_label(s['key'])} ({_n_label(s, field)})")
      if values:
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
        ax.scatter(i + np.asarray(jitter), values, color="black", s=12, zorder=3)
      failed = {k: s[k.replace(" ", "_")] for k in ("diverged", "collapsed", "failed")
                if s[k.replace(" ", "_")]}
      if failed:
        ax.annotate("\n".join(f"{v} {k}" for k, v in failed.items()),
                    (i, med * 100 if med is not None else 0.0), ha="center", va="bottom",
                    fontsize=7, color="tab:red", xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(members)))
    ax.set_xticklabels([f"{_label(s['key'])}\n{_n_label(s, field)}" for s in members],
                       rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(f"final {field.replace('_', ' ')} (%)")
    ax.set_title(title or f"final {field.replace('_', ' ')}: median bar, dot per seed")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax)
  _save(fig, path)
  return True


def final_accuracy_plot(path: str, summaries: list[dict[str, Any]], spec: dict[str, Any]) -> bool:
  """Final test accuracy vs a numeric ``spec['x']``, a line per ``spec['series']``:
  median of the done runs with a dot per seed, n in the legend."""
  x_field = spec.get("x")
  if not x_field or not all(x_field in s["key"] for s in summaries):
    return False
  if not all(isinstance(s["key"][x_field], (int, float)) for s in summaries):
    return final_bars_plot(path, summaries)  # categorical x: bars, not a line
  series_field = spec.get("series")
  lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
  for s in summaries:
    label = (f"{series_field}={s['key'].get(series_field)}" if series_field
             else _label(s["key"], skip=(x_field,)))
    lines[label].append(s)
  fig, ax = plt.subplots(figsize=(8.5, 4.5))
  metrics = spec.get("y", ["test_accuracy"])
  styles = ["-", "--", ":"]
  palette = colours(len(lines))
  for colour, (label, members) in zip(palette, lines.items()):
    members.sort(key=lambda s: s["key"][x_field])
    for metric, style in zip(metrics, styles):
      xs, ys = [], []
      n = 0
      for s in members:
        values = stats.finite(s.get(f"{metric}_values", {}).values())
        if values:
          xs.append(s["key"][x_field])
          ys.append(s[f"{metric}_median"] * 100)
          ax.scatter([s["key"][x_field]] * len(values), [v * 100 for v in values],
                     color=colour, s=10, alpha=0.6)
          n = max(n, len(values))
      if xs:
        name = label if len(metrics) == 1 else f"{label} ({metric.replace('_', ' ')})"
        ax.plot(xs, ys, marker="o", linestyle=style, color=colour,
                label=f"{name} (median, up to n={n})")
  if spec.get("logx"):
    ax.set_xscale("log", base=2 if spec.get("logx") == 2 else 10)
  elif spec.get("xscale"):
    ax.set_xscale(spec["xscale"])  # e.g. 'logit' spaces momenta 0.5 ... 0.999 evenly
  ax.set_xlabel(x_field)
  ax.set_ylabel("final test accuracy (%)" if metrics == ["test_accuracy"] else "final accuracy (%)")
  ax.set_title(spec.get("title") or f"Final test accuracy vs {x_field}"
               + (f" by {series_field}" if series_field else ""))
  ax.grid(True, alpha=0.3)
  _legend(ax)
  _save(fig, path)
  return True


def outcomes_plot(path: str, summaries: list[dict[str, Any]]) -> bool:
  """Stacked bars per cell: how many runs finished, diverged, collapsed, failed."""
  if not summaries:
    return False
  fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(summaries) + 3), 4))
  bottoms = np.zeros(len(summaries))
  for outcome in stats.OUTCOMES:
    counts = np.array([s[outcome.replace(" ", "_")] for s in summaries], float)
    if counts.any():
      ax.bar(range(len(summaries)), counts, bottom=bottoms, color=OUTCOME_COLOURS[outcome],
             label=outcome)
      bottoms += counts
  ax.set_xticks(range(len(summaries)))
  ax.set_xticklabels([_label(s["key"]) for s in summaries], rotation=45, ha="right",
                     fontsize=7)
  ax.set_ylabel("runs")
  ax.set_title("outcome of every run per cell")
  _legend(ax)
  _save(fig, path)
  return True


def write_plots(workdir: str, summaries: list[dict[str, Any]], spec: dict[str, Any]) -> list[str]:
  """Writes every applicable figure into ``workdir``; returns their file names."""
  written = []
  final = os.path.join(workdir, "final_accuracy.png")
  # Cells without the x field (controls such as group norm beside a swept
  # ghost-batch size) make the x-axis plot impossible: bars instead.
  if final_accuracy_plot(final, summaries, spec) or final_bars_plot(final, summaries):
    written.append("final_accuracy.png")
  metric = curve_metric(summaries)
  if curves_plot(os.path.join(workdir, "curves.png"), summaries, metric=metric):
    written.append("curves.png")
  if curves_plot(os.path.join(workdir, "train_loss.png"), summaries, metric="train_loss"):
    written.append("train_loss.png")
  if outcomes_plot(os.path.join(workdir, "outcomes.png"), summaries):
    written.append("outcomes.png")
  return written
