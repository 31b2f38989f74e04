"""Exit codes for every error class, one stderr line each, and the JSON error document."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import MakeScratch, Scratch, _env


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("frobnicate",), 2),
        (("submit", "x"), 2),
        (("submit", "Bad Slug", "--sha", "abcdef1"), 2),
        (("submit", "x", "--sha", "not-hex"), 2),
        (("submit", "x", "--sha", "abcdef1", "--branch", "-evil"), 2),
        (("block", "x", "--reason", "bored"), 2),
        (("show", "nobody"), 2),
        (("resume", "nobody", "--sha", "XYZ"), 2),
        (("history", "x", "--since", "soon"), 2),
        (("--db", "mysql://db/x", "list"), 2),
        (("block", "x", "--reason", "external", "--evidence-file", "/nonexistent.json"), 2),
    ],
)
def test_invalid_input_exits_2_with_one_line(
    scratch: Scratch, args: tuple[str, ...], code: int
) -> None:
    """Usage errors and invalid values exit 2 with exactly one stderr line and no output."""
    r = scratch(*args)
    assert r.code == code
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("mergegate: error: ")
    assert r.stdout == ""


def test_not_a_repository_exits_2(make_scratch: MakeScratch) -> None:
    """--repo on a folder that is not a git repository exits 2 with one line naming --repo."""
    s = make_scratch()
    r = s("--repo", str(s.root), "list")
    assert r.code == 2
    assert "--repo PATH" in r.stderr
    assert "not a git repository" in r.stderr
    assert r.stderr.count("\n") == 1


def test_json_error_document(scratch: Scratch) -> None:
    """With --json an error is also a JSON document on stdout, with its type and exit code."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    r = scratch("--json", "remediate", "other")
    assert r.code == 4
    assert r.doc["exit_code"] == 4
    assert r.doc["command"] == "remediate"
    assert r.doc["error"]["type"] == "illegal_transition"
    assert "result" not in r.doc


def test_unexpected_error_is_one_line(scratch: Scratch) -> None:
    """An unexpected failure (the log path is a folder) exits 1 with one line, no traceback."""
    scratch.log.mkdir(parents=True)
    r = scratch("submit", "other", "--sha", scratch.shas["other"])
    assert r.code == 1
    assert r.stderr.count("\n") == 1
    assert "unexpected" in r.stderr


def test_db_that_is_a_directory_exits_2(scratch: Scratch) -> None:
    """--db naming a directory exits 2 and says to give a file."""
    r = scratch("--db", str(scratch.bare), "list")
    assert r.code == 2
    assert "is a directory" in r.stderr


def test_store_failure_exits_1(scratch: Scratch) -> None:
    """A store file that is not a database exits 1 with one line from the store."""
    scratch.db.write_bytes(b"this is not a database, just text " * 100)
    for suffix in ("-wal", "-shm"):
        scratch.db.with_name(scratch.db.name + suffix).unlink(missing_ok=True)
    r = scratch("list")
    assert r.code == 1
    assert r.stderr.startswith("mergegate: error: sqlite store")
    assert r.stderr.count("\n") == 1


def test_demo_refuses_a_non_empty_dir(scratch: Scratch) -> None:
    """demo --dir on a folder with files in it exits 2 and touches nothing."""
    r = scratch("demo", "--dir", str(scratch.root))
    assert r.code == 2
    assert "not empty" in r.stderr


def test_init_never_prints_a_database_password(scratch: Scratch) -> None:
    """A password in a postgresql:// URL is masked in every message init prints."""
    r = scratch("--db", "postgresql://u:s3cret@127.0.0.1:1/x?connect_timeout=1", "init")
    assert r.code == 1
    assert "s3cret" not in r.stdout + r.stderr


def test_closed_stdout_exits_141_quietly(scratch: Scratch) -> None:
    """When the reader closes stdout first, the command exits 141 with nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "diagram"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == b""


@pytest.mark.parametrize("args", [("submit", "main"), ("submit", "hotfix", "--branch", "main")])
def test_submitting_the_integration_branch_itself_is_refused(
    scratch: Scratch, args: tuple[str, ...]
) -> None:
    """main as a candidate's branch: one line naming it, exit 2, and nothing queued."""
    r = scratch(*args)
    assert (r.code, r.stdout) == (2, "")
    assert r.stderr == (
        "mergegate: error: invalid --branch 'main': that is the branch mergegate integrates "
        "into; submit a work branch\n"
    )
    assert json.loads(scratch("--json", "list", "--all").stdout)["result"]["candidates"] == []
