"""Every fenced ``python`` block of README.md runs as written.

Each block runs in its own fresh interpreter (blocks do not share names), from
an empty directory, on CPU. A block that needs more devices than one CPU
gives says so with a ``# needs: 8 devices`` comment; the others run with the
host's default device count, as a reader would run them.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _blocks() -> list[tuple[str, str]]:
  """``(id, code)`` for each ```python block; the id is its line number and heading."""
  text = README.read_text()
  blocks, heading = [], "top"
  for match in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```$", text, re.M | re.S):
    if match.group(1):
      heading = match.group(1).lstrip("# ").strip()
      continue
    line = text[:match.start()].count("\n") + 1
    slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
    blocks.append((f"L{line}-{slug}", match.group(2)))
  return blocks


BLOCKS = _blocks()


def test_the_readme_has_python_blocks():
  assert len(BLOCKS) >= 3, [b for b, _ in BLOCKS]


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[b for b, _ in BLOCKS])
def test_readme_python_block_runs(code, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  if "# needs: 8 devices" not in code:
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if "force_host_platform_device_count" not in f)
  result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
