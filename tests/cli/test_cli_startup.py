"""Start-up: a command imports only what it uses (docs/performance.md, "Command start-up")."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

from .conftest import Scratch, _env

# What `--version` and `show` must never load: YAML, the file lock, the
# PostgreSQL driver, the test strategies, the git applier, the progress line and
# the follow-up writer (todo scaffold, roadmap, outbox, resolvers) are for other
# commands; a read fires no move, so it needs no notifier either.
DENIED = (
    "ruamel",
    "filelock",
    "psycopg",
    "hypothesis",
    "rich",
    "mergegate.apply",
    "mergegate.followups.materialize",
    "mergegate.followups.roadmap",
    "mergegate.followups.scaffold",
    "mergegate.followups.outbox",
    "mergegate.followups.resolver",
    "mergegate.followups.done",
    "mergegate.cli.notify",
)
# What `--version`, and `show` and `list` answered by the read fast path
# (cli/fastread.py), need no more than the engine: click, the session (attrs,
# logging), and importlib.metadata, whose email parser costs about 20 ms.
VERSION_DENIED = (
    *DENIED,
    "click",
    "mergegate.cli.boundary",
    "mergegate.statemachine",
    "mergegate.persistence",
    "mergegate.cli.session",
    "attr",
    "attrs",
    "logging",
    "importlib.metadata",
)


def _imported(*args: str, repo: Scratch | None = None) -> tuple[int, set[str]]:
    """Run ``python -X importtime -m mergegate.cli ARGS``: its exit code and the modules loaded."""
    extra = [] if repo is None else ["--repo", str(repo.bare)]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mergegate.cli", *extra, *args],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "cumulative" not in line
    }
    assert "mergegate.cli.main" in modules, done.stderr[-2000:]
    return done.returncode, modules


def _denied(modules: set[str], denied: tuple[str, ...] = DENIED) -> list[str]:
    return sorted(m for m in modules if any(m == d or m.startswith(d + ".") for d in denied))


def test_version_imports_no_engine() -> None:
    """`mergegate --version` is answered without click, the engine or a store."""
    code, modules = _imported("--version")
    assert code == 0
    assert "mergegate.cli.fastread" in modules  # the check would pass vacuously otherwise
    assert _denied(modules, VERSION_DENIED) == []


def test_version_prints_what_the_installed_metadata_says() -> None:
    """`--version` (cli/names.py, without importlib.metadata) agrees with the installed package."""
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--version"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout == f"mergegate {importlib.metadata.version('mergegate')}\n"


@pytest.mark.parametrize("args", [("show", "other"), ("--json", "show", "other"), ("list",)])
def test_a_plain_read_loads_neither_click_nor_the_engine(
    scratch: Scratch, args: tuple[str, ...]
) -> None:
    """`show` of a pending candidate and `list` are answered by the read fast path."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    code, modules = _imported(*args, repo=scratch)
    assert code == 0
    assert "sqlite3" in modules  # it did read the store
    assert _denied(modules, (*VERSION_DENIED, "cattrs", "tomllib")) == []


def test_show_through_click_loads_no_codec(scratch: Scratch) -> None:
    """`show` of a candidate with no evidence, through click (another form), loads no codec."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    code, modules = _imported("show", "--json", "--", "other", repo=scratch)
    assert code == 0
    assert "mergegate.statemachine.engine" in modules  # it did read the store
    assert _denied(modules, (*DENIED, "cattrs", "tomllib")) == []


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_show_of_a_blocked_candidate_imports_nothing_denied(
    blocked: Scratch, json_flag: tuple[str, ...]
) -> None:
    """`show` of a blocked candidate (guidance and evidence included) loads no denied module."""
    code, modules = _imported(*json_flag, "show", "new-greeting", repo=blocked)
    assert code == 0
    assert "mergegate.statemachine" in modules  # the check would pass vacuously otherwise
    assert _denied(modules) == []


def test_every_command_is_registered_by_the_module_the_group_names() -> None:
    """The group's map of lazy commands agrees with what the command modules register."""
    from mergegate.cli.app import COMMANDS, cli

    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(module)
    assert sorted(cli.commands) == sorted(COMMANDS)
    for name, command in cli.commands.items():
        assert command.callback is not None
        assert command.callback.__module__ == COMMANDS[name], name
