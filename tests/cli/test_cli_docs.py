"""The documentation is checked against the code: the generated diagram, the doctests of
the Python API page, and every command named in the command contract."""

from __future__ import annotations

import contextlib
import doctest
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import click

from mergegate.cli.app import cli
from mergegate.cli.diagram import BEGIN_MARK, END_MARK, lifecycle_section
from mergegate.cli.main import main as _registers_every_command

from .conftest import Scratch

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_lifecycle_diagram_is_current() -> None:
    """docs/lifecycle.md embeds exactly the diagram and table the transition table gives."""
    path = DOCS / "lifecycle.md"
    text = path.read_text()
    start, end = text.index(BEGIN_MARK), text.index(END_MARK) + len(END_MARK)
    if os.environ.get("MERGEGATE_UPDATE_DOCS") == "1":
        text = text[:start] + lifecycle_section() + text[end:]
        path.write_text(text)
    assert text[start:end] == lifecycle_section(), (
        "docs/lifecycle.md is stale; regenerate it with "
        "MERGEGATE_UPDATE_DOCS=1 pytest tests/cli/test_cli_docs.py"
    )


def test_python_api_doctests_pass() -> None:
    """Every example of docs/python-api.md runs and prints what the page says."""
    result = doctest.testfile(
        str(DOCS / "python-api.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        verbose=False,
    )
    assert result.attempted > 30
    assert result.failed == 0


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    # list_commands/get_command, not .commands: the group imports its commands lazily.
    ctx = click.Context(group)
    names = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_command_is_in_the_contract() -> None:
    """Each command the CLI registers has its own heading in docs/cli.md, and vice versa."""
    assert callable(_registers_every_command)
    text = (DOCS / "cli.md").read_text()
    headed = set(re.findall(r"^###? `mergegate ([a-z]+(?: [a-z]+)?)", text, re.MULTILINE))
    listed = set(re.findall(r"^- `mergegate ([a-z]+)", text, re.MULTILINE))
    assert set(_commands(cli)) == headed | listed


def test_storage_schema_queries_run(blocked: Scratch) -> None:
    """Every SQL example of docs/storage-schema.md runs on a real store; two find their rows."""
    queries = re.findall(r"```sql\n(.*?)```", (DOCS / "storage-schema.md").read_text(), re.S)
    assert len(queries) >= 8
    results = []
    with contextlib.closing(sqlite3.connect(f"file:{blocked.db}?mode=ro", uri=True)) as conn:
        for query in queries:
            results.append(conn.execute(query).fetchall())
    story, hotspots = results[0], results[4]
    assert [row[3] for row in story] == ["submit", "start_apply", "block"]
    assert hotspots == [("greeting.txt", 1)]


def test_operator_grep_recipes_find_the_blocked_lines(blocked: Scratch) -> None:
    """Each grep recipe of docs/operator-procedure.md runs on a real log and finds its lines."""
    text = (DOCS / "operator-procedure.md").read_text()
    block = re.search(r"```sh\nLOG=.*?\n(.*?)```", text, re.S)
    assert block is not None
    follow_up = f"new-greeting-integration-blocked-{blocked.shas['new-greeting'][:7]}"
    recipes = [
        line.replace("new-greeting-integration-blocked-5a61758", follow_up)
        for line in block.group(1).splitlines()
        if line and not line.startswith("#")
    ]
    assert len(recipes) >= 7
    for recipe in recipes:
        done = subprocess.run(
            ["bash", "-c", recipe],
            env={"LOG": str(blocked.log), "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=False,
        )
        if "unexpected_error" in recipe:
            assert done.returncode == 1, done.stderr
            continue
        assert done.returncode == 0, (recipe, done.stderr)
        assert done.stdout.strip(), recipe
    resume = subprocess.run(
        ["bash", "-c", recipes[4]],
        env={"LOG": str(blocked.log)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert resume.stdout == 'resume_cmd="mergegate resume new-greeting"\n'
