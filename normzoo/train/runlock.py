"""An exclusive lock on a run directory, so two processes never train one run.

Two ``experiments.main`` (or a sweep worker left over from a killed sweep
and its re-run) on one ``--workdir`` would interleave ``metrics.jsonl`` rows
and race on checkpoints and ``result.json``. Process 0 of a run takes
``fcntl.flock`` on ``<workdir>/run.lock`` and writes its pid and host into it;
a second one fails at once with :class:`RunDirLocked` naming them. The
kernel drops a flock when its holder dies, however it dies (SIGKILL, OOM),
so a lock file left by a dead process is simply taken over: there are no
stale locks to clean up. flock is per open file, so it also excludes a
second call in the same process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

LOCK_FILE = "run.lock"


class RunDirLocked(ValueError):
  """Another live process holds the run directory."""


class RunLock:
  """Holds the lock from :func:`acquire` until :meth:`release` (or process exit)."""

  def __init__(self, path: str, fd: int):
    self.path, self._fd = path, fd

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None


def _holder(fd: int) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except (OSError, ValueError):
    info = {}
  if not info:
    return "another process"
  return f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('since')})"


def acquire(workdir: str) -> RunLock:
  """Takes the exclusive lock on ``workdir`` (which must exist) or raises :class:`RunDirLocked`."""
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _holder(fd)
    os.close(fd)
    raise RunDirLocked(
        f"{workdir} is in use by {holder}: one run directory takes one process at a time "
        f"(wait for it to finish, stop it, or use another --workdir; lock file {path})") from None
  info = {"pid": os.getpid(), "host": socket.gethostname(),
          "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(info).encode(), 0)
  return RunLock(path, fd)
