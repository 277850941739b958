"""The run-directory lock: a second live process is refused by name, a dead one's lock is taken."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from normzoo.train import runlock, train_and_evaluate
from normzoo.train.metrics import METRICS_FILE
from tests.train.helpers import tiny_config

HOLDER = """
import sys, time
from normzoo.train import runlock
lock = runlock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_second_acquire_names_the_holder(tmp_path):
  lock = runlock.acquire(str(tmp_path))
  with pytest.raises(runlock.RunDirLocked, match=rf"in use by pid {os.getpid()} on host "):
    runlock.acquire(str(tmp_path))
  lock.release()
  runlock.acquire(str(tmp_path)).release()  # free again


def test_lock_file_of_a_dead_process_is_taken_over(tmp_path):
  # What a SIGKILLed holder leaves: the file with its pid, but no flock.
  with open(tmp_path / runlock.LOCK_FILE, "w") as f:
    json.dump({"pid": 2 ** 22 + 1, "host": "gone", "since": "then"}, f)
  lock = runlock.acquire(str(tmp_path))
  with open(tmp_path / runlock.LOCK_FILE) as f:
    assert json.load(f)["pid"] == os.getpid()
  lock.release()


def test_concurrent_start_is_refused_and_a_killed_holder_frees_the_run(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  holder = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(runlock.RunDirLocked, match=rf"{workdir} is in use by pid {holder.pid}"):
      train_and_evaluate(tiny_config(), workdir)
    # Refused before writing anything: no interleaved metrics rows.
    assert not os.path.exists(os.path.join(workdir, METRICS_FILE))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  result = train_and_evaluate(tiny_config(), workdir)
  assert result["status"] == "done"
  # The lock was released when the run returned: the same process can start again.
  runlock.acquire(workdir).release()
