"""mypy --strict catches an embedder's mistakes: misspelled public names, non-callable hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("statemachine", "persistence", "followups", "apply", "cli")

# Each snippet has exactly one mistake, on the line marked MISTAKE.
SNIPPETS = {
    "followups_typo": "from mergegate.followups import Wirng  # MISTAKE\n",
    "persistence_typo": "from mergegate.persistence import SQLiteStor  # MISTAKE\n",
    "cli_typo": "from mergegate.cli import load_confg  # MISTAKE\n",
    "hook_not_callable": (
        "from mergegate.persistence import SQLiteStore\n"
        "from mergegate.statemachine import Engine\n"
        "Engine(SQLiteStore(':memory:'), hooks=[42])  # MISTAKE\n"
    ),
    "wiring_hook_not_callable": (
        "from pathlib import Path\n"
        "from mergegate.followups import Wiring, build_engine\n"
        "from mergegate.persistence import SQLiteStore\n"
        "build_engine(SQLiteStore(':memory:'), Wiring(Path('todos')), hooks=['x'])  # MISTAKE\n"
    ),
    "scaffold_evidence_file_typo": (
        "from pathlib import Path\n"
        "from mergegate.followups import ScaffoldResult, Wiring\n"
        "from mergegate.statemachine import BlockedRecord, BlockedReport\n"
        "class Host:\n"
        "    evidence_fle = None\n"
        "    def write(self, t: Path, r: BlockedRecord, b: BlockedReport) -> ScaffoldResult:\n"
        "        return ScaffoldResult(t, created=True)\n"
        "    def deliver(self, t: Path, r: BlockedRecord) -> None:\n"
        "        pass\n"
        "Wiring(Path('todos'), scaffold=Host())  # MISTAKE\n"
    ),
}
# The same names spelled right type-check, so the failures above are the mistakes.
CORRECT = (
    "from mergegate.cli import load_config\n"
    "from mergegate.followups import Wiring, build_engine\n"
    "from mergegate.persistence import PostgresStore, SQLiteStore\n"
    "from mergegate.statemachine import Engine, Outcome, on_enter, State\n"
    "def keep(outcome: Outcome) -> Outcome:\n"
    "    return outcome\n"
    "Engine(SQLiteStore(':memory:'), hooks=[keep, on_enter(State.BLOCKED, keep)])\n"
    "print(load_config, Wiring, build_engine, PostgresStore)\n"
    # A scaffold naming its evidence file (or None), and mergegate's own, are Scaffolds.
    "from pathlib import Path\n"
    "from mergegate.followups import ScaffoldResult, TodoScaffold\n"
    "from mergegate.statemachine import BlockedRecord, BlockedReport\n"
    "class Host:\n"
    "    evidence_file = None\n"
    "    def write(self, t: Path, r: BlockedRecord, b: BlockedReport) -> ScaffoldResult:\n"
    "        return ScaffoldResult(t, created=True)\n"
    "    def deliver(self, t: Path, r: BlockedRecord) -> None:\n"
    "        pass\n"
    "Wiring(Path('todos'), scaffold=Host())\n"
    "Wiring(Path('todos'), scaffold=TodoScaffold())\n"
    # Error facts are typed: reading them needs no cast.
    "from mergegate.statemachine import IllegalTransition, LeaseHeld\n"
    "from mergegate.followups import FollowUpConflict\n"
    "def facts(e: IllegalTransition, h: LeaseHeld, c: FollowUpConflict) -> str:\n"
    "    until = '' if h.expires_at is None else h.expires_at.isoformat()\n"
    "    found = '' if c.found is None else c.found.slug\n"
    "    return e.candidate.slug + e.state.value + e.event.value + until + c.expected.sha + found\n"
)


def _mypy(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """Run mypy --strict on ``files`` against the sources; the error lines."""
    # mypy does not follow the editable install's import hook: point it at the sources.
    (tmp_path / "path" / "mergegate").mkdir(parents=True)
    for component in COMPONENTS:
        (tmp_path / "path" / "mergegate" / component).symlink_to(ROOT / component)
    paths = []
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
        paths.append(f"{name}.py")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={"MYPYPATH": str(tmp_path / "path"), "PATH": "/usr/bin:/bin"},
    )
    # mypy must have run: a missing mypy would print nothing and pass every check.
    assert "Success:" in done.stdout or "Found " in done.stdout, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if ": error: " in line]


def test_mypy_rejects_misspelled_public_names_and_non_callable_hooks(tmp_path: Path) -> None:
    """Each mistake is an error on its marked line; correct code (error facts too) is clean."""
    errors = _mypy(tmp_path, {**SNIPPETS, "correct": CORRECT})
    for name, text in SNIPPETS.items():
        line = next(n for n, s in enumerate(text.splitlines(), 1) if "MISTAKE" in s)
        assert any(e.startswith(f"{name}.py:{line}: error:") for e in errors), (name, errors)
    assert [e for e in errors if e.startswith("correct.py")] == [], errors
