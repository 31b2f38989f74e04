"""The follow-up package's dependency direction and its curated public namespace."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import mergegate.followups

PACKAGE = Path(mergegate.followups.__file__).parent
THIRD_PARTY = {"attrs", "ruamel"}


def imported_roots(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (relative imports excluded)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_followups_imports_only_statemachine_of_mergegate() -> None:
    """Every module imports the stdlib, attrs, ruamel or mergegate.statemachine only."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        for name in imported_roots(module):
            root = name.split(".")[0]
            if root == "mergegate":
                # The statemachine package, or one of its modules (its internals by path).
                assert name.split(".")[:2] == ["mergegate", "statemachine"], (
                    f"{module.name} imports {name}"
                )
            else:
                allowed = root in sys.stdlib_module_names or root in THIRD_PARTY
                assert allowed, f"{module.name} imports {name}"


def test_public_namespace_is_curated() -> None:
    """__all__ names the public API, and the package answers no other name (issue 23)."""
    exported = set(mergegate.followups.__all__)
    assert len(exported) == len(mergegate.followups.__all__)
    # The package imports its names on first use, so dir() (not vars()) lists them.
    public = {n for n in dir(mergegate.followups) if not n.startswith("_")}
    for name in public:
        assert getattr(mergegate.followups, name) is not None, name
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert exported <= public
    assert public - modules - exported == set()
    # The internals the CLI shares are reached through their modules.
    assert not hasattr(mergegate.followups, "one_line")
    text = importlib.import_module("mergegate.followups.text")
    assert "\n" not in text.one_line("a\nb")
