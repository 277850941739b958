"""README.md's code blocks run as written, so they cannot drift from the code.

Python blocks: every fenced ```python block is executed, each in a fresh
namespace (a block must be complete on its own, as a reader copies it), with
the 8 host CPU devices of tests/conftest.py.

Bash blocks: every ``python -m experiments.<name>`` and ``normzoo-<name>``
command is checked cheaply in a subprocess (``normzoo:NAME`` references
resolved as the console scripts resolve them): the module imports and its flags parse, which loads
the ``--config`` file and applies each ``--config.field=value`` override,
so a renamed flag, config file or field fails here. Nothing is trained.
"""

import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def fenced_blocks(text: str, lang: str) -> list[str]:
  """The bodies of the fenced blocks opened by ```lang (indented fences too)."""
  pattern = re.compile(rf"^( *)```{lang}\n(.*?)^\1```", re.S | re.M)
  blocks = []
  for m in pattern.finditer(text):
    indent = len(m.group(1))
    blocks.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
  return blocks


# The console scripts of pyproject.toml, by the module that defines their flags.
SCRIPTS = {"normzoo-train": "normzoo.cli.train", "normzoo-compare": "normzoo.cli.compare",
           "normzoo-sweep": "normzoo.cli.sweep", "normzoo-report": "normzoo.cli.report"}


def experiment_commands(text: str) -> list[list[str]]:
  """``[module, arg, ...]`` of each ``python -m experiments.*`` or ``normzoo-*`` in bash blocks."""
  commands = []
  for block in fenced_blocks(text, "bash"):
    joined = re.sub(r"\\\n\s*", " ", block)
    for line in joined.splitlines():
      line = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
      m = re.search(r"python -m (experiments\.\w+)(.*)$", line) or \
          re.search(r"(?:^|[\s/])(normzoo-[a-z]+)(.*)$", line)
      if m:
        # Shell variables (the multi-host block's $RANK) stand for an integer.
        args = re.sub(r"\$\w+", "0", m.group(2))
        commands.append([SCRIPTS.get(m.group(1), m.group(1))] + shlex.split(args))
  return commands


PY_BLOCKS = fenced_blocks(README, "python")
COMMANDS = experiment_commands(README)


def test_readme_has_blocks_to_check():
  # Guards the extraction itself: an edit that breaks the fence pattern
  # would otherwise make every test below vanish silently.
  assert len(PY_BLOCKS) >= 1
  assert len(COMMANDS) >= 4


@pytest.mark.parametrize("index", range(len(PY_BLOCKS)))
def test_python_block_runs(index):
  code = compile(PY_BLOCKS[index], f"README.md python block {index}", "exec")
  exec(code, {"__name__": f"readme_block_{index}"})  # noqa: S102  (the point of the test)


def _parse_flags(command: list[str]) -> subprocess.CompletedProcess:
  module, args = command[0], command[1:]
  # Placeholders such as --config=... are not runnable as written: skip them.
  script = (f"import sys; import {module}; from absl import flags; "
            f"from normzoo.cli import references; "
            f"flags.FLAGS(['{module}'] + references.resolve_argv(sys.argv[1:]))")
  return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [c for c in COMMANDS if "--config=..." not in c],
                         ids=lambda c: " ".join(c)[:60])
def test_bash_experiment_command_flags_parse(command):
  proc = _parse_flags(command)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_flag_check_catches_a_misspelt_field():
  # The check above must be able to fail: a misspelt config field does.
  proc = _parse_flags(["experiments.main", "--config=configs/fashion_mnist.py",
                       "--workdir=runs/x", "--config.nrom=group"])
  assert proc.returncode != 0


def test_script_table_matches_pyproject():
  import tomllib
  with open(ROOT / "pyproject.toml", "rb") as f:
    scripts = tomllib.load(f)["project"]["scripts"]
  assert SCRIPTS == {name: target.split(":")[0] for name, target in scripts.items()}
