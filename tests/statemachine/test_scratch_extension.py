"""What a new state and a new effect touch: scratch ones, added to a copy of the source and run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A scratch state: two lines of the enums and two rules, nothing else.
_STATE_PATCH = {
    "statemachine/states.py": [
        ('    WITHDRAWN = "withdrawn"\n', '    WITHDRAWN = "withdrawn"\n    PARKED = "parked"\n'),
        (
            '    REQUEUE = "requeue"\n',
            '    REQUEUE = "requeue"\n    PARK = "park"\n    UNPARK = "unpark"\n',
        ),
    ],
    "statemachine/table.py": [
        (
            "TABLE = Table(\n    (\n",
            "TABLE = Table(\n    (\n"
            '        Rule(Event.PARK, (State.PENDING,), State.PARKED, "set aside"),\n'
            '        Rule(Event.UNPARK, (State.PARKED,), State.PENDING, "back in the queue"),\n',
        ),
    ],
}

_RUN_PARKED = """
import sys
from datetime import timedelta
from mergegate.persistence import open_store
from mergegate.statemachine import CandidateKey, Engine, Event, Request, State
store = open_store(sys.argv[1])
engine = Engine(store, lease_ttl=timedelta(minutes=1))
key = CandidateKey("feat", "feat", "a" * 40)
engine.submit(key)
parked = engine.fire(Request(Event.PARK, "feat"))
assert parked.state is State.PARKED, parked
assert store.queue() == [], store.queue()
assert [c.key.slug for c in store.active_candidates()] == ["feat"]
engine.fire(Request(Event.UNPARK, "feat"))
assert [c.key.slug for c in store.queue()] == ["feat"]
engine.start_apply("feat", owner="w1")
done = engine.integrate("feat", main_sha="b" * 40)
assert done.state is State.INTEGRATED and store.leases() == []
assert engine.verify() == [], engine.verify()
print(" ".join(t.event.value for t in store.history(done.candidate.id)))
"""


def _scratch_copy(tmp_path: Path, patch: dict[str, list[tuple[str, str]]]) -> Path:
    """The components copied under ``tmp_path/mergegate``, with ``patch`` applied."""
    for component in ("statemachine", "persistence"):
        shutil.copytree(
            ROOT / component,
            tmp_path / "mergegate" / component,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for name, edits in patch.items():
        path = tmp_path / "mergegate" / name
        text = path.read_text()
        for old, new in edits:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        path.write_text(text)
    return tmp_path


def _python(copy: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so its components shadow the installed ones.
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=copy,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_scratch_state_needs_its_enum_member_and_its_rules_only(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A new state and its events, added in two files, run on a real store unchanged."""
    copy = _scratch_copy(tmp_path / "src", _STATE_PATCH)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    done = _python(copy, _RUN_PARKED, url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["submit", "park", "unpark", "start_apply", "integrate"]


def test_a_scratch_effect_is_refused_until_every_place_names_it(tmp_path: Path) -> None:
    """A new Effect fails at import until the Step and the PostgreSQL fast path each name it."""
    member = (
        '    RELEASE_IDENTITY = "release_identity"\n',
        '    RELEASE_IDENTITY = "release_identity"\n    NOTIFY = "notify"\n',
    )
    only_effect = _scratch_copy(tmp_path / "a", {"statemachine/table.py": [member]})
    refused = _python(only_effect, "import mergegate.statemachine")
    assert refused.returncode != 0
    assert "TableError" in refused.stderr, refused.stderr
    assert "missing notify" in refused.stderr, refused.stderr

    flagged = [
        member,
        ("    reenters: bool = False\n", "    reenters: bool = False\n    notify: bool = False\n"),
        (
            '    Effect.RELEASE_IDENTITY: "releases_identity",\n',
            '    Effect.RELEASE_IDENTITY: "releases_identity",\n    Effect.NOTIFY: "notify",\n',
        ),
    ]
    with_flag = _scratch_copy(tmp_path / "b", {"statemachine/table.py": flagged})
    core = _python(with_flag, "import mergegate.statemachine")
    assert core.returncode == 0, core.stderr
    fast = _python(with_flag, "import mergegate.persistence.postgres")
    assert fast.returncode != 0
    assert "must name every Step flag" in fast.stderr, fast.stderr
    assert "notify" in fast.stderr.rsplit("must name", 1)[-1], fast.stderr
