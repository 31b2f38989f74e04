"""Every test in ``tests/`` has a one-line docstring naming the behaviour it checks."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _tests(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The ``test_*`` functions at module level and in any class (a contract's cases too)."""
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found.extend(
                item
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("test")
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            found.append(node)
    return found


def missing_or_long(source: str, name: str) -> list[str]:
    """Where in ``source`` a test lacks a docstring or has one of more than one line."""
    problems = []
    for test in _tests(ast.parse(source, filename=name)):
        doc = ast.get_docstring(test)
        if not doc:
            problems.append(f"{name}:{test.lineno} {test.name} has no docstring")
        elif "\n" in doc.strip():
            problems.append(f"{name}:{test.lineno} {test.name} has a docstring of several lines")
    return problems


def test_every_test_has_a_one_line_docstring() -> None:
    """Each test_* function or method under tests/, and the contract's, has a one-line docstring."""
    problems = []
    # The store contract kit ships its cases outside tests/, one module per suite
    # (persistence/contract*.py); they run here all the same.
    kits = sorted((TESTS.parent / "persistence").glob("contract*.py"))
    for path in [*sorted(TESTS.rglob("test_*.py")), *kits]:
        problems += missing_or_long(
            path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent))
        )
    assert problems == []


def test_the_check_catches_a_missing_and_a_long_docstring() -> None:
    """The checker reports a test without a docstring and one with two lines, not a helper."""
    source = (
        "def helper():\n    pass\n"
        "def test_bare():\n    pass\n"
        "class TestThing:\n"
        '    def test_long(self):\n        """One.\n\n        Two."""\n'
        '    def test_good(self):\n        """One line."""\n'
    )
    assert missing_or_long(source, "x.py") == [
        "x.py:3 test_bare has no docstring",
        "x.py:6 test_long has a docstring of several lines",
    ]
