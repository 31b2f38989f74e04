"""The roadmap file: entries added only if missing, atomically, with a human's comments kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from ruamel.yaml import YAML

from mergegate.followups import (
    FollowUps,
    MalformedRoadmap,
    roadmap_slugs,
)
from mergegate.followups.roadmap import add_roadmap_entry
from mergegate.followups.text import one_line
from mergegate.statemachine import InvalidInput
from mergegate.statemachine.testing import strategies

from ..procio import all_ready

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def human(tmp_path: Path) -> Path:
    """A copy of the human-edited roadmap, with comments, blank lines and mixed quoting."""
    path = tmp_path / "todos" / "roadmap.yaml"
    path.parent.mkdir()
    path.write_bytes((GOLDEN / "roadmap-before.yaml").read_bytes())
    return path


def test_append_keeps_the_human_file_and_matches_the_golden_file(human: Path) -> None:
    """Appending to a commented roadmap keeps every human byte and adds the entry at the end."""
    added = add_roadmap_entry(
        human,
        "auth-login-integration-blocked-0123456",
        group="integration-blocked",
        after=["auth-login-integration-blocked-abcdef0"],
        description="Unblock the integration of auth-login (feature/auth-login@0123456): x",
    )
    assert added
    assert human.read_text() == (GOLDEN / "roadmap-after.yaml").read_text()


def test_existing_slug_is_a_no_op(human: Path) -> None:
    """Adding a slug already in the roadmap returns False and does not rewrite the file."""
    before = human.read_bytes()
    inode = human.stat().st_ino
    assert not add_roadmap_entry(human, "billing-dashboard", group="other")
    assert human.read_bytes() == before
    assert human.stat().st_ino == inode


def test_missing_file_and_folder_are_created(tmp_path: Path) -> None:
    """A roadmap that does not exist yet is created, with its folder, holding the entry."""
    path = tmp_path / "new" / "todos" / "roadmap.yaml"
    assert add_roadmap_entry(path, "first")
    assert add_roadmap_entry(path, "second", after=["first"])
    assert path.read_text() == "- slug: first\n- slug: second\n  after:\n  - first\n"


def test_comment_only_file_keeps_its_comments(tmp_path: Path) -> None:
    """A roadmap holding only comments keeps them above the first entry."""
    path = tmp_path / "roadmap.yaml"
    path.write_text("# Our roadmap.\n# Highest priority first.\n")
    add_roadmap_entry(path, "first", group="g")
    assert (
        path.read_text() == "# Our roadmap.\n# Highest priority first.\n- slug: first\n  group: g\n"
    )


def test_indented_list_style_is_kept(tmp_path: Path) -> None:
    """A roadmap written with indented dashes gets its new entry in the same style."""
    path = tmp_path / "roadmap.yaml"
    path.write_text("  - slug: a\n    group: g\n")
    add_roadmap_entry(path, "b", after=["a"])
    assert path.read_text() == "  - slug: a\n    group: g\n  - slug: b\n    after:\n      - a\n"


def test_flow_style_list_is_rewritten_in_order(tmp_path: Path) -> None:
    """A flow-style list, where appending text is impossible, is re-dumped with the order kept."""
    path = tmp_path / "roadmap.yaml"
    path.write_text("[{slug: a}, {slug: b}]\n")
    add_roadmap_entry(path, "c")
    assert roadmap_slugs(path) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- slug: [unclosed\n", "not valid YAML"),
        ("roadmap:\n  - slug: a\n", "not a list"),
        ("- slug: a\n- just-a-string\n", "entry 2"),
        ("- group: no-slug\n", "entry 1"),
        ("- slug: 42\n", "entry 1"),
    ],
)
def test_malformed_roadmap_raises_and_is_left_untouched(
    tmp_path: Path, text: str, problem: str
) -> None:
    """A roadmap that is not a list of {slug, ...} raises MalformedRoadmap; its bytes stay."""
    path = tmp_path / "roadmap.yaml"
    path.write_text(text)
    with pytest.raises(MalformedRoadmap, match=problem) as caught:
        add_roadmap_entry(path, "new")
    assert isinstance(caught.value, ValueError)
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roadmap.yaml", "roadmap.yaml.lock"]


def test_bad_slug_is_refused_before_writing(tmp_path: Path) -> None:
    """A slug that is not a slug, in the entry or its after list, raises and writes nothing."""
    path = tmp_path / "roadmap.yaml"
    with pytest.raises(ValueError, match="slug"):
        add_roadmap_entry(path, "../x")
    with pytest.raises(ValueError, match="after"):
        add_roadmap_entry(path, "ok", after=["Not A Slug"])
    assert not path.exists()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mergegate.followups.roadmap import add_roadmap_entry

    path, go, name, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        add_roadmap_entry(path, f"{name}-{i}", group="integration-blocked")
        add_roadmap_entry(path, "shared-entry")
    """
)


def test_concurrent_writer_processes_lose_and_duplicate_nothing(
    human: Path, tmp_path: Path
) -> None:
    """Eight processes appending at once leave every entry exactly once, comments intact."""
    go = tmp_path / "go"
    writers, per_writer = 8, 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(human), str(go), f"writer{w}", str(per_writer)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    # Released together once every writer says it is ready, however loaded the machine.
    lives = all_ready(procs, "ready")
    go.touch()
    assert [live.finish(timeout=120)[0] for live in lives] == [0] * writers, lives[0].report()
    slugs = roadmap_slugs(human)
    expected_new = {f"writer{w}-{i}" for w in range(writers) for i in range(per_writer)}
    assert slugs[:3] == ["billing-export", "billing-dashboard", "docs-refresh"]
    assert len(slugs) == len(set(slugs))
    assert set(slugs[3:]) == expected_new | {"shared-entry"}
    for w in range(writers):
        mine = [s for s in slugs if s.startswith(f"writer{w}-")]
        assert mine == [f"writer{w}-{i}" for i in range(per_writer)]
    golden = (GOLDEN / "roadmap-before.yaml").read_text()
    assert human.read_text().startswith(golden)
    assert [p.name for p in human.parent.iterdir() if p.name.endswith(".tmp")] == []


@given(description=strategies.texts(300), group=strategies.texts(30))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_description_and_group_round_trip_as_one_line(
    tmp_path_factory: pytest.TempPathFactory, description: str, group: str
) -> None:
    """Any description is stored as one escaped line; a group is stored as is or refused."""
    path = tmp_path_factory.mktemp("roadmap") / "roadmap.yaml"
    path.write_text("# head\n- slug: a\n")
    try:
        add_roadmap_entry(path, "b", group=group, description=description)
    except InvalidInput:
        assert not group or one_line(group, limit=100) != group
        assert path.read_text() == "# head\n- slug: a\n"
        return
    entry = YAML(typ="safe", pure=True).load(path.read_text())[1]
    assert entry["group"] == group
    assert entry.get("description") == (one_line(" ".join(description.split()), 500) or None)
    assert path.read_text().startswith("# head\n- slug: a\n")


@pytest.mark.parametrize("group", ["", "two\nlines", "tab\tin", "x" * 101])
def test_follow_ups_refuse_a_bad_group_at_construction(tmp_path: Path, group: str) -> None:
    """FollowUps checks its roadmap group when it is built, not at the first block."""
    with pytest.raises(InvalidInput, match="roadmap group"):
        FollowUps(tmp_path, group=group)


def test_an_edit_between_calls_is_seen_though_the_last_parse_is_remembered(tmp_path: Path) -> None:
    """A roadmap entry removed by hand after it was added is added again on the next call."""
    path = tmp_path / "todos" / "roadmap.yaml"
    assert add_roadmap_entry(path, "alpha")
    assert add_roadmap_entry(path, "beta")
    assert not add_roadmap_entry(path, "alpha")  # remembered: no parse, no write
    path.write_text("- slug: beta\n")  # a person deletes alpha's entry
    assert add_roadmap_entry(path, "alpha")
    assert roadmap_slugs(path) == ["beta", "alpha"]
    path.write_text("- slug: beta\n- slug: alpha\n- slug: gamma\n")
    assert not add_roadmap_entry(path, "gamma")
