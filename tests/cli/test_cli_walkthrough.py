"""docs/walkthrough-blocked.md names real code: every dotted ``mergegate.`` name imports and
every source file it names exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "walkthrough-blocked.md"


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(dotted)


def test_every_named_function_imports() -> None:
    """Each `mergegate.x.y` in the page is a module, or an attribute reached from one."""
    names = sorted(set(re.findall(r"`(mergegate(?:\.\w+)+)", PAGE.read_text(encoding="utf-8"))))
    assert len(names) >= 30, names
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name}: {err}")
    assert missing == []


#: Where the page's short ``Class.method`` names live.
_CLASSES = {
    "Engine": "mergegate.statemachine.engine.Engine",
    "GitApplier": "mergegate.apply.applier.GitApplier",
    "Outcome": "mergegate.statemachine.Outcome",
    "SQLStore": "mergegate.persistence.sqlstore.SQLStore",
    "SQLTransaction": "mergegate.persistence.sqltransaction.SQLTransaction",
    "Transaction": "mergegate.statemachine.store.Transaction",
}


def test_every_short_method_name_exists() -> None:
    """Each `Class.method` in the page (without the module) is an attribute of that class."""
    names = set(re.findall(r"`([A-Z]\w*)\.(\w+)`", PAGE.read_text(encoding="utf-8")))
    assert names
    unknown = sorted(cls for cls, _ in names if cls not in _CLASSES)
    assert unknown == [], f"add these classes to _CLASSES: {unknown}"
    missing = sorted(
        f"{cls}.{attr}" for cls, attr in names if not hasattr(_resolve(_CLASSES[cls]), attr)
    )
    assert missing == []


def test_every_named_file_exists() -> None:
    """Each `folder/file.py` in the page is a file of the repository."""
    paths = set(re.findall(r"`([a-z_]+/[a-z_/]+\.py)`", PAGE.read_text(encoding="utf-8")))
    assert paths
    assert sorted(p for p in paths if not (ROOT / p).is_file()) == []


def test_index_maps_every_page() -> None:
    """docs/index.md links every page of docs/, and each link it gives exists."""
    docs = ROOT / "docs"
    links = set(re.findall(r"\]\(([^)#]+\.md)\)", (docs / "index.md").read_text(encoding="utf-8")))
    assert sorted(link for link in links if not (docs / link).is_file()) == []
    pages = {p.name for p in docs.glob("*.md")} - {"index.md"}
    assert sorted(pages - links) == []


def test_readme_layout_names_real_files() -> None:
    """Each file the README's layout table tells a newcomer to start with exists in its folder."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout") :]
    rows = re.findall(r"^\| `([a-z/]+/)` \|[^\n]*\| ([^|\n]*) \|$", layout, re.MULTILINE)
    assert len(rows) >= 6
    missing = [
        f"{folder}{name}"
        for folder, names in rows
        for name in re.findall(r"`([a-z_]+\.py)`", names)
        if not (ROOT / folder / name).is_file()
    ]
    assert missing == []
