"""Matplotlib figures for sweep reports (headless: the Agg backend)."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from normzoo.sweeps.report import mean_std  # noqa: E402


def _label(key: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
  parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in key.items()
           if k not in skip]
  return ", ".join(parts) or "all runs"


def _style(index: int) -> dict[str, Any]:
  """Colour and line style of line ``index``: past matplotlib's 10 colours, a new dash."""
  return {"color": f"C{index % 10}", "linestyle": ("-", "--", "-.")[(index // 10) % 3]}


def final_accuracy_plot(path: str, summaries: list[dict[str, Any]], spec: dict[str, Any]) -> bool:
  """Final test accuracy vs ``spec['x']``, a line per ``spec['series']`` (other fields fixed)."""
  x_field = spec.get("x")
  if not x_field or not all(x_field in s["key"] for s in summaries):
    return False
  series_field = spec.get("series")
  lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
  for s in summaries:
    # With a series field, one line per value of it: fields derived from x
    # (a learning rate scaled with the batch size) must not split the line.
    label = (f"{series_field}={s['key'].get(series_field)}" if series_field
             else _label(s["key"], skip=(x_field,)))
    lines[label].append(s)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  diverged_label_done = False
  metrics = spec.get("y", ["test_accuracy"])
  styles = ["-", "--", ":"]
  for label, members in lines.items():
    members.sort(key=lambda s: s["key"][x_field])
    color = None
    for metric, style in zip(metrics, styles):
      xs, ys, errs = [], [], []
      for s in members:
        mean, std = s[metric]
        if mean is not None:
          xs.append(s["key"][x_field])
          ys.append(mean * 100)
          errs.append((std or 0.0) * 100)
      if xs:
        name = label if len(metrics) == 1 else f"{label} ({metric.replace('_', ' ')})"
        bars = ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, linestyle=style,
                           color=color, label=name)
        color = bars.lines[0].get_color()
    for s in members:
      if s["diverged"] or s["failed"]:
        ax.plot([s["key"][x_field]], [0], "x", color="red", markersize=9,
                label=None if diverged_label_done else "diverged / failed run(s)")
        diverged_label_done = True
  if spec.get("logx"):
    ax.set_xscale("log", base=2 if spec.get("logx") == 2 else 10)
  elif spec.get("xscale"):
    ax.set_xscale(spec["xscale"])  # e.g. 'logit' spaces momenta 0.5 ... 0.999 evenly
  ax.set_xlabel(x_field)
  ax.set_ylabel("final test accuracy (%)" if metrics == ["test_accuracy"] else "final accuracy (%)")
  ax.set_title(spec.get("title") or f"Final test accuracy vs {x_field}"
               + (f" by {series_field}" if series_field else ""))
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def curves_plot(path: str, summaries: list[dict[str, Any]], metric: str = "test_accuracy",
                max_lines: int = 12) -> bool:
  """Mean (+- std band over seeds) of ``metric`` per epoch, one line per group.

  Accuracies are drawn in percent, losses as they are (log scale).
  """
  percent = "accuracy" in metric
  factor = 100.0 if percent else 1.0
  if not summaries or len(summaries) > max_lines:
    return False
  fig, ax = plt.subplots(figsize=(7, 4.5))
  drawn = False
  for index, s in enumerate(summaries):
    by_epoch: dict[float, list[float]] = defaultdict(list)
    for m in s["members"]:
      for row in m["rows"]:
        value = row.get(metric)
        if value is not None and math.isfinite(value):
          by_epoch[row["epoch"]].append(value)
    if not by_epoch:
      continue
    epochs = sorted(by_epoch)
    stats = [mean_std(by_epoch[e]) for e in epochs]
    means = [m * factor for m, _ in stats]
    stds = [(sd or 0.0) * factor for _, sd in stats]
    line, = ax.plot(epochs, means, marker=".", label=_label(s["key"]), **_style(index))
    ax.fill_between(epochs, [m - d for m, d in zip(means, stds)],
                    [m + d for m, d in zip(means, stds)], color=line.get_color(), alpha=0.15)
    drawn = True
  if not drawn:
    plt.close(fig)
    return False
  ax.set_xlabel("epoch")
  ax.set_ylabel(metric.replace("_", " ") + (" (%)" if percent else ""))
  if not percent:
    ax.set_yscale("log")
  ax.set_title(f"{metric.replace('_', ' ')} during training (mean ± std over seeds)")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def write_plots(workdir: str, summaries: list[dict[str, Any]], spec: dict[str, Any]) -> list[str]:
  """Writes every applicable figure into ``workdir``; returns their file names."""
  written = []
  if final_accuracy_plot(os.path.join(workdir, "final_accuracy.png"), summaries, spec):
    written.append("final_accuracy.png")
  if curves_plot(os.path.join(workdir, "curves.png"), summaries):
    written.append("curves.png")
  if curves_plot(os.path.join(workdir, "train_loss.png"), summaries, metric="train_loss"):
    written.append("train_loss.png")
  return written
