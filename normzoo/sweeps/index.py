"""``reports/README.md``: the table of all reports, written from the reports themselves.

Each report directory holds ``report.md`` (from :func:`normzoo.sweeps.report.write_report`)
whose ``**Claim tested:**`` line comes from its sweep file, and a hand-written
part (``analysis.md``, appended to ``report.md``) with one ``Verdict:`` line
and, for a report another one replaces, a ``Superseded by: NAME[, NAME] (why)``
line. The
index copies those lines, so the summary cannot drift from the reports.
"""

import os
import re
from typing import Any

from normzoo.sweeps.report import REPORT_FILE

INDEX_FILE = "README.md"

_HEADER = """# Reports: what normalization does, measured

Each report tests one claim from the literature with a shipped sweep
(`configs/sweeps/NAME.py`) on real Fashion-MNIST. A report holds the
table (every run counted: done, diverged, collapsed, failed; n per cell),
the plots, the command that regenerates it, the commit, hardware and wall
time, and what the data says against the published claim, negative
results included. This table is generated from the reports
(`normzoo-report --index=reports`); do not edit it by hand.
"""

_FOOTER = """
Regenerate a report (a sweep resumes where it stopped and skips finished
runs), then this index:

```bash
.venv/bin/python -m experiments.sweep --sweep=configs/sweeps/NAME.py --workdir=sweeps/NAME --parallel=2
.venv/bin/python -m experiments.report --workdir=sweeps/NAME --out=reports/NAME
.venv/bin/python -m experiments.report --index=reports
```
"""


def _line_value(text: str, label: str) -> str | None:
  m = re.search(rf"^\*{{0,2}}{re.escape(label)}:?\*{{0,2}}:?\s*(.+)$", text, re.M)
  return m.group(1).strip() if m else None


def read_entry(report_dir: str) -> dict[str, Any]:
  """``name``, ``title``, ``claim``, ``verdict`` and ``superseded_by`` of one report."""
  path = os.path.join(report_dir, REPORT_FILE)
  with open(path) as f:
    text = f.read()
  name = os.path.basename(os.path.normpath(report_dir))
  title = re.search(r"^# (.+)$", text, re.M)
  verdict = _line_value(text, "Verdict")
  if verdict is None:
    raise ValueError(f"{path} has no 'Verdict:' line; add one to its {name}/analysis.md")
  return {"name": name, "title": title.group(1).strip() if title else name,
          "claim": _line_value(text, "Claim tested") or "", "verdict": verdict,
          "superseded_by": _line_value(text, "Superseded by")}


def index_markdown(reports_dir: str) -> str:
  """The index: current reports first, then the superseded ones with their replacement."""
  entries = [read_entry(os.path.join(reports_dir, d)) for d in sorted(os.listdir(reports_dir))
             if os.path.isfile(os.path.join(reports_dir, d, REPORT_FILE))]
  if not entries:
    raise ValueError(f"no report directories (*/{REPORT_FILE}) in {reports_dir}")
  names = {e["name"] for e in entries}
  current = [e for e in entries if not e["superseded_by"]]
  old = [e for e in entries if e["superseded_by"]]
  lines = [_HEADER, "| report | claim tested | verdict |", "|---|---|---|"]
  lines += [f"| [{e['name']}]({e['name']}/{REPORT_FILE}) | {e['claim']} | {e['verdict']} |"
            for e in current]
  if old:
    lines += ["", "Superseded (budget-confounded designs kept for the record; each names "
              "the report that replaces it):", "",
              "| report | claim tested | verdict then | superseded by |", "|---|---|---|---|"]
    for e in old:
      by = e["superseded_by"]
      link = ", ".join(f"[{n}]({n}/{REPORT_FILE})" if n in names else f"{n} (not run yet)"
                       for n in re.split(r"[,\s]+", by.split("(")[0]) if n)
      lines.append(f"| [{e['name']}]({e['name']}/{REPORT_FILE}) | {e['claim']} | "
                   f"{e['verdict']} | {link} |")
  return "\n".join(lines) + "\n" + _FOOTER


def write_index(reports_dir: str) -> str:
  """Writes ``reports_dir/README.md``; returns its path."""
  path = os.path.join(reports_dir, INDEX_FILE)
  text = index_markdown(reports_dir)
  with open(path, "w") as f:
    f.write(text)
  return path
