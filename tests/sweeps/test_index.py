"""Committed reports: ``--out`` with a kept analysis, and the index written from the reports."""

import os
import subprocess
import sys

import pytest

from normzoo.sweeps import index, report
from tests.sweeps.test_plots import _write_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_out_dir_gets_report_and_plots_and_keeps_the_analysis(tmp_path):
  runs, out = tmp_path / "runs", tmp_path / "reports" / "cmp"
  for norm, final in {"batch": 0.85, "layer": 0.8}.items():
    _write_run(str(runs / norm), norm, 0, final)
  os.makedirs(out)
  (out / "analysis.md").write_text("## What the data says\n\nBN wins here.\n\nVerdict: BN +5\n")
  for _ in range(2):  # regenerating keeps the hand-written part, once
    path = report.write_report(str(runs), out_dir=str(out))
  text = open(path).read()
  assert path == str(out / "report.md") and text.count("BN wins here.") == 1
  assert text.index("| norm |") < text.index("## What the data says")
  assert os.path.getsize(out / "final_accuracy.png") > 1000
  assert not os.path.exists(runs / "report.md")  # the run directory is left alone


def _report(root, name, claim, verdict=None, superseded=None):
  os.makedirs(root / name)
  lines = [f"# Title of {name}", "", f"**Claim tested:** {claim}", "", "| table |"]
  if verdict:
    lines += ["", f"Verdict: {verdict}"]
  if superseded:
    lines += ["", f"Superseded by: {superseded} (why)"]
  (root / name / "report.md").write_text("\n".join(lines) + "\n")


def test_index_lists_current_then_superseded_reports(tmp_path):
  _report(tmp_path, "new_a", "claim A", "reproduces")
  _report(tmp_path, "new_b", "claim B", "does **not** reproduce")
  _report(tmp_path, "old", "claim A, confounded", "looked like it", superseded="new_a, gone")
  text = open(index.write_index(str(tmp_path))).read()
  current = text.index("| [new_a](new_a/report.md) | claim A | reproduces |")
  assert current < text.index("| [new_b](new_b/report.md) | claim B | does **not** reproduce |")
  old_row = [line for line in text.splitlines() if line.startswith("| [old]")]
  assert old_row == ["| [old](old/report.md) | claim A, confounded | looked like it | "
                     "[new_a](new_a/report.md), gone (not run yet) |"]
  assert current < text.index("Superseded")


def test_index_refuses_a_report_without_a_verdict(tmp_path):
  _report(tmp_path, "undecided", "claim")
  with pytest.raises(ValueError, match="undecided.*Verdict"):
    index.write_index(str(tmp_path))


def test_committed_index_is_up_to_date(tmp_path):
  # reports/README.md is generated: regenerating it must change nothing.
  committed = open(os.path.join(REPO, "reports", "README.md")).read()
  assert index.index_markdown(os.path.join(REPO, "reports")) == committed


def test_cli_needs_exactly_one_of_workdir_and_index(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "experiments.report"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and proc.stderr.startswith("error: pass exactly one of")
