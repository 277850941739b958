"""The functional core imports no flax: linen and nnx are thin layers over it.

Checked on the source (the package's ``__init__`` imports the linen modules
too, so importing a core module always loads flax): no core file imports
flax, and every normzoo module a core file imports is a core file itself.
"""

import ast
import pathlib

import pytest

NORMS = pathlib.Path(__file__).resolve().parents[2] / "normzoo" / "norms"

CORE = ["_checks", "stats", "normalize", "policy", "functional", "folding", "pallas_rows",
        "weight_std", "reparam",
        "variants._common", "variants.renorm", "variants.ghost", "variants.frn",
        "variants.evonorm", "variants.rms", "variants.switchable"]


def _imports(module: str) -> set[str]:
  tree = ast.parse((NORMS / (module.replace(".", "/") + ".py")).read_text())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names |= {f"{node.module}.{a.name}" for a in node.names}
  return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_flax_and_only_core_normzoo_modules(module):
  imports = _imports(module)
  assert not {i for i in imports if i == "flax" or i.startswith("flax.")}, module
  prefix = "normzoo.norms."
  for name in imports:
    if not name.startswith(prefix):
      continue
    target = name[len(prefix):]
    # "from normzoo.norms import stats" names a module; "from ...stats import x" a member.
    is_module = (NORMS / (target.replace(".", "/") + ".py")).exists()
    owner = target if is_module else target.rsplit(".", 1)[0]
    if (NORMS / (owner.replace(".", "/") + ".py")).exists():
      assert owner in CORE, f"{module} imports {name}, outside the flax-free core"
