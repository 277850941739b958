"""Progress of long loops (a run's steps, a comparison's or a sweep's runs).

tqdm keeps the counts, the smoothed rate and the time estimate. On a
terminal it draws its bar (nested bars stack: a comparison's runs above the
current run's steps); anywhere else (CI logs, ``nohup``, a sweep worker's
log file) the same numbers come as one INFO log line at most every
``interval_s`` seconds, never a carriage-return stream.
"""

import io
import sys
from typing import Any, TextIO

from absl import logging
from tqdm import tqdm

DEFAULT_INTERVAL_S = 30.0
# A log line: the numbers without the bar's glyphs.
LINE_FORMAT = ("{desc}{n_fmt}/{total_fmt} {unit}s ({percentage:.0f}%) "
               "[{elapsed} elapsed, {remaining} left, {rate_fmt}{postfix}]")


class _LogLines(tqdm):
  """tqdm that reports through absl logging: one line per display, none for a clear."""

  monitor_interval = 0  # no monitor thread: lines come from update() calls only

  def display(self, msg: str | None = None, pos: int | None = None) -> bool:
    del pos
    if msg == "":  # tqdm clearing a bar it drew: nothing was drawn
      return True
    if msg is None and self.n == self.initial and not self.disable:
      return True  # the constructor's "0/N, ? left": nothing to say yet (close still reports)
    logging.info("%s", msg or self.__str__())
    return True


def progress_bar(total: int, *, desc: str, unit: str, initial: int = 0,
                 interval_s: float = DEFAULT_INTERVAL_S, stream: TextIO | None = None,
                 enabled: bool = True) -> tqdm:
  """A tqdm counter of ``total`` ``unit``s, ``initial`` of them already done.

  Args:
    total: units in all (steps of a run, runs of a sweep).
    desc: the label in front of the counts.
    unit: what is counted, e.g. ``"step"`` or ``"run"``.
    initial: units finished before this process started (a resumed run).
    interval_s: without a terminal, the least time between two log lines
      (and a closing line); ``0`` or less: no lines at all (the caller logs
      its own, e.g. one per finished run with :func:`summary`).
    stream: where a terminal bar is drawn (default ``sys.stderr``); a
      stream that is not a TTY gets log lines instead.
    enabled: ``False`` gives a counter that reports nothing (processes
      other than 0 of a multi-host run).
  """
  stream = sys.stderr if stream is None else stream
  # set_description() appends ": " to a label; the constructor does not.
  common = dict(total=total, initial=initial, desc=f"{desc}: ", unit=unit)
  if not enabled:
    return tqdm(disable=True, **common)
  if stream.isatty():
    return tqdm(file=stream, dynamic_ncols=True, leave=None, **common)
  periodic = interval_s > 0
  return _LogLines(file=io.StringIO(), mininterval=interval_s if periodic else float("inf"),
                   miniters=1, leave=True, bar_format=LINE_FORMAT,
                   delay=0 if periodic else float("inf"),  # inf: not even a closing line
                   **common)


def summary(bar: tqdm) -> str:
  """The bar's counts, elapsed time, rate and estimate as one line of text."""
  return tqdm.format_meter(**{**bar.format_dict, "bar_format": LINE_FORMAT})


def postfix(bar: tqdm, **values: Any) -> None:
  """Shows ``values`` after the counts from the next display on (no redraw now)."""
  bar.set_postfix(values, refresh=False)


def write(line: str) -> None:
  """Prints ``line`` on stdout above any bar drawn on the terminal (bars redraw below)."""
  tqdm.write(line)
