"""Reports and plots of any run directory (comparison or single run), on hand-made runs."""

import json
import os

import matplotlib
import matplotlib.pyplot as plt
import pytest

from normzoo.sweeps import plots, report


def _write_run(directory, norm, seed, final, status="done", steps=(0, 10, 20)):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump({"norm": norm, "seed": seed, "model": "mlp"}, f)
  with open(os.path.join(directory, "metrics.jsonl"), "w") as f:
    for i, step in enumerate(steps):
      frac = (i + 1) / len(steps)
      f.write(json.dumps({"epoch": step / 10, "step": step, "train_loss": 2.0 - frac,
                          "validation_accuracy": final * frac,
                          "test_accuracy": final if i == len(steps) - 1 else None}) + "\n")
  result = {"status": status, "test_accuracy": final if status == "done" else None,
            "norm": norm, "dataset": "fashion_mnist"}
  with open(os.path.join(directory, "result.json"), "w") as f:
    json.dump(result, f)


@pytest.fixture
def comparison(tmp_path):
  """``experiments.compare``-like: one subdirectory per norm (one seed each)."""
  finals = {"batch": 0.85, "group": 0.82, "layer": 0.83, "none": 0.10, "rms": 0.80}
  for norm, final in finals.items():
    _write_run(str(tmp_path / norm), norm, 0, final)
  _write_run(str(tmp_path / "frn"), "frn", 0, 0.3, status="diverged")
  return str(tmp_path)


def test_report_of_a_comparison_directory_without_a_manifest(comparison):
  path = report.write_report(comparison)
  text = open(path).read()
  assert "| norm | runs | done | diverged | collapsed | failed | not run |" in text
  for png in ("final_accuracy.png", "curves.png", "train_loss.png", "outcomes.png"):
    assert os.path.getsize(os.path.join(comparison, png)) > 1000, png
  summaries = report.group(report.collect(comparison)[1])
  by_norm = {s["key"]["norm"]: s for s in summaries}
  assert by_norm["none"]["collapsed"] == 1 and by_norm["none"]["done"] == 0
  assert by_norm["frn"]["diverged"] == 1
  assert "(n=1)" in text  # n is stated in the cells


def test_report_of_a_single_run(tmp_path):
  _write_run(str(tmp_path), "batch", 0, 0.8)
  report.write_report(str(tmp_path))
  assert os.path.exists(tmp_path / "curves.png")


def _capture(monkeypatch):
  figures = []
  monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
  return figures


def test_curves_start_at_step_0_split_core_and_variants_legend_outside(comparison, monkeypatch):
  figures = _capture(monkeypatch)
  summaries = report.group(report.collect(comparison)[1])
  assert plots.curves_plot("unused.png", summaries, metric="validation_accuracy")
  axes = figures[0].axes
  assert len(axes) == 2  # core norms | variants
  core_labels = [line.get_label() for line in axes[0].get_lines()]
  assert any(label.startswith("norm=batch") for label in core_labels)
  assert not any("rms" in label for label in core_labels)
  assert all(line.get_xdata()[0] == 0 for line in axes[0].get_lines())
  legend = axes[0].get_legend()
  assert legend is not None
  figures[0].canvas.draw()
  box = legend.get_window_extent()
  assert box.x0 >= axes[0].get_window_extent().x1  # outside, to the right
  plt.close("all")


def test_final_accuracy_is_bars_with_seed_dots_not_a_line(tmp_path, monkeypatch):
  for norm in ("batch", "layer"):
    for seed, final in enumerate((0.80, 0.82, 0.84)):
      _write_run(str(tmp_path / f"{norm}_{seed}"), norm, seed, final)
  figures = _capture(monkeypatch)
  summaries = report.group(report.collect(str(tmp_path))[1])
  assert [s["runs"] for s in summaries] == [3, 3]
  assert plots.final_bars_plot("unused.png", summaries)
  ax = figures[0].axes[0]
  bars = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
  assert len(bars) == 2
  assert bars[0].get_height() == pytest.approx(82.0)  # the median of the three seeds
  dots = ax.collections
  assert sum(len(c.get_offsets()) for c in dots) == 6  # every seed drawn
  assert not ax.get_lines()  # categorical x: nothing connected
  plt.close("all")


def test_colours_never_repeat():
  for n in (3, 10, 12, 20, 33):
    assert len({tuple(c) for c in plots.colours(n)}) == n


def test_many_series_get_distinct_colours(tmp_path, monkeypatch):
  for i in range(12):
    _write_run(str(tmp_path / f"run{i}"), "batch", 0, 0.8)
    with open(tmp_path / f"run{i}" / "config.json", "w") as f:
      json.dump({"norm": "batch", "seed": 0, "learning_rate": 0.01 * (i + 1)}, f)
  figures = _capture(monkeypatch)
  summaries = report.group(report.collect(str(tmp_path))[1])
  assert len(summaries) == 12
  plots.curves_plot("unused.png", summaries, metric="validation_accuracy")
  lines = figures[0].axes[0].get_lines()
  assert len(lines) == 12 and len({line.get_color() if isinstance(line.get_color(), str)
                                   else tuple(line.get_color()) for line in lines}) == 12
  plt.close("all")


def test_paired_difference_and_steps_to_target_in_the_table(tmp_path):
  for norm, offset in (("batch", 0.0), ("layer", 0.02)):
    for seed in range(3):
      _write_run(str(tmp_path / f"{norm}_{seed}"), norm, seed, 0.8 + 0.01 * seed + offset)
  spec = {"baseline": {"norm": "batch"}, "targets": [0.5]}
  summaries = report.group(report.collect(str(tmp_path))[1], spec)
  layer = next(s for s in summaries if s["key"]["norm"] == "layer")
  assert layer["paired"]["n"] == 3
  assert layer["paired"]["mean"] == pytest.approx(0.02)
  # Identical differences: a zero-width interval.
  assert layer["paired"]["low"] == pytest.approx(0.02)
  assert layer["steps_to_0.5"] == [10, 10, 10]
  table = report.markdown_table(summaries, spec)
  assert "paired diff vs {norm: batch}" in table and "+2.00 [+2.00, +2.00] (n=3)" in table
  assert "steps to 50 % val acc" in table and "10 (3/3 reached)" in table
