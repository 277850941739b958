"""Files that describe a run in its workdir: ``config.json`` and ``result.json``.

``result.json`` is written once, when the run ends (``status`` ``done`` or
``diverged``). Its presence with the same ``num_epochs`` marks the run as
finished: running the same command again reports it instead of redoing it.
"""

from __future__ import annotations

import json
import os
from typing import Any

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
FINAL_STATUSES = ("done", "diverged")


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
    f.write("\n")
  os.replace(tmp, path)  # atomic: a killed run never leaves half a file


def config_to_dict(config: Any) -> dict[str, Any]:
  """A JSON-able dict of an ``ml_collections.ConfigDict`` (or a plain dict)."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  return json.loads(json.dumps(config, default=str))


def write_config(workdir: str, config: Any) -> None:
  _write_json(os.path.join(workdir, CONFIG_FILE), config_to_dict(config))


def read_config(workdir: str) -> dict[str, Any] | None:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_result(workdir: str, result: dict[str, Any]) -> None:
  _write_json(os.path.join(workdir, RESULT_FILE), result)


def read_result(workdir: str) -> dict[str, Any] | None:
  """The parsed ``result.json``, or ``None`` when missing or unreadable."""
  path = os.path.join(workdir, RESULT_FILE)
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def finished_result(workdir: str, num_epochs: int) -> dict[str, Any] | None:
  """The result of a run already finished for ``num_epochs`` epochs, else ``None``."""
  result = read_result(workdir)
  if (result and result.get("status") in FINAL_STATUSES
      and result.get("num_epochs") == num_epochs):
    return result
  return None


def clear_result(workdir: str) -> None:
  """Removes an old ``result.json`` before training continues (e.g. more epochs)."""
  path = os.path.join(workdir, RESULT_FILE)
  if os.path.exists(path):
    os.remove(path)


def changed_fields(old: dict[str, Any] | None, new: dict[str, Any],
                   ignore: tuple[str, ...] = ("num_epochs",)) -> list[str]:
  """Top-level config keys whose values differ (for a warning on resume)."""
  if old is None:
    return []
  keys = (set(old) | set(new)) - set(ignore)
  return sorted(k for k in keys if old.get(k) != new.get(k))
