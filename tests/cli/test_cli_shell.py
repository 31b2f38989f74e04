"""The command line as a shell user meets it: help, --json anywhere, completion, colour."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..procio import LiveOutput
from .conftest import MakeScratch, Result, Scratch, _env

ESC = "\x1b["


def _mergegate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", *args],
        env=env if env is not None else _env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("args", "usage"),
    [((), "Usage: mergegate [OPTIONS] COMMAND"), (("followups",), "Usage: mergegate followups")],
    ids=["mergegate", "followups"],
)
def test_a_group_without_a_command_prints_its_help(args: tuple[str, ...], usage: str) -> None:
    """`mergegate` or `mergegate followups` alone print the help with real newlines, exit 2."""
    done = _mergegate(*args)
    assert done.code == 2
    assert done.stdout.startswith(usage)
    assert "\\n" not in done.stdout
    assert "Commands:" in done.stdout.splitlines()
    assert done.stderr == ""


def test_a_group_without_a_command_in_json_mode_is_one_usage_error() -> None:
    """With --json, a missing command is the JSON usage error, not the help text."""
    done = _mergegate("--json", "followups")
    assert done.code == 2
    assert done.doc["error"]["type"] == "usage_error"
    assert "mergegate followups --help" in done.doc["error"]["message"]
    assert len(done.stderr.splitlines()) == 1


# list reads the clock: how long each candidate has been in its state, and when it
# should be done. Those keys are masked; everything else must be the same.
_CLOCK = re.compile(
    r'("(?:now|elapsed_seconds|eta|eta_seconds|typical_apply_seconds)": )("[^"]*"|[0-9]+)'
)


def _timeless(document: str) -> str:
    return _CLOCK.sub(r"\1<clock>", document)


@pytest.mark.parametrize(
    "args",
    [
        ("show", "new-greeting"),
        ("history", "new-greeting"),
        ("list",),
        ("blocked",),
        ("diagram",),
        ("followups", "sync"),
    ],
    ids="-".join,
)
def test_json_after_the_command_is_the_same_as_before_it(
    blocked: Scratch, args: tuple[str, ...]
) -> None:
    """`mergegate CMD ... --json` prints the very document `mergegate --json CMD ...` prints."""
    before = blocked("--json", *args)
    after = blocked(*args, "--json")
    assert after.code == before.code == 0
    assert _timeless(after.stdout) == _timeless(before.stdout)
    named = args[:2] if args[0] == "followups" else args[:1]
    assert json.loads(after.stdout)["command"] == " ".join(named)


def test_json_after_a_move_and_after_a_usage_error(scratch: Scratch) -> None:
    """A move takes --json after its arguments; a usage error after it answers in JSON too."""
    done = scratch("submit", "other", "--sha", scratch.shas["other"], "--json")
    assert done.code == 0
    assert done.doc["result"]["candidate"]["state"] == "pending"
    missing = scratch("show", "--json")
    assert missing.code == 2
    assert missing.doc["error"]["type"] == "usage_error"
    assert "Missing argument 'SLUG'" in missing.doc["error"]["message"]


def _complete(scratch: Scratch, words: str, cwd: Path) -> Result:
    """Ask for completions the way bash does: COMP_WORDS, COMP_CWORD and _MERGEGATE_COMPLETE."""
    env = _env()
    env.update({"_MERGEGATE_COMPLETE": "bash_complete", "COMP_WORDS": words})
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    return _mergegate(env=env, cwd=cwd)


def test_completion_offers_the_stored_slugs(blocked: Scratch) -> None:
    """TAB after `show` lists the stored slugs, filtered by what was typed, through --repo."""
    bare = str(blocked.bare)
    everything = _complete(blocked, f"mergegate --repo {bare} show ", blocked.root)
    assert everything.code == 0
    assert everything.stdout.splitlines() == ["plain,add-docs", "plain,new-greeting"]
    some = _complete(blocked, f"mergegate --repo {bare} history new", blocked.root)
    assert some.stdout.splitlines() == ["plain,new-greeting"]


def test_completion_inside_a_clone_and_without_a_store(
    make_scratch: MakeScratch, tmp_path: Path
) -> None:
    """Completion reads the store of the repository it runs in; with no store it offers nothing."""
    blocked = make_scratch("fresh")  # its store is --db: one store per repository
    db = tmp_path / "queue.sqlite3"
    assert blocked("--db", str(db), "init").code == 0
    assert blocked("--db", str(db), "submit", "other", "--sha", blocked.shas["other"]).code == 0
    env_db = _complete(blocked, f"mergegate --db {db} resume ", blocked.work)
    assert env_db.stdout.splitlines() == ["plain,other"]
    # The work clone has no store of its own: nothing to offer, and nothing is created.
    none = _complete(blocked, "mergegate show ", blocked.work)
    assert none.code == 0
    assert none.stdout.strip() == ""
    assert not (blocked.work / ".git" / "mergegate").exists()


def test_completion_script_is_clicks_own() -> None:
    """`_MERGEGATE_COMPLETE=bash_source mergegate` prints a bash function for `complete`."""
    env = _env()
    env["_MERGEGATE_COMPLETE"] = "bash_source"
    done = _mergegate(env=env)
    assert done.code == 0
    assert "_mergegate_completion()" in done.stdout
    assert "complete -o nosort -F _mergegate_completion mergegate" in done.stdout


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``mergegate ARGS`` with stdout and stderr on a pseudo-terminal; its code and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    try:
        with LiveOutput(proc, fds={"terminal": leader}) as term:
            text = term.ended("terminal", timeout=60)
            code, _, _ = term.finish(timeout=60)
    finally:
        os.close(leader)
    return code, text


def test_colour_on_a_terminal_only_and_never_with_no_color(blocked: Scratch) -> None:
    """Guidance and error prefix are coloured on a terminal, not in a pipe or with NO_COLOR."""
    show = ["--repo", str(blocked.bare), "show", "new-greeting"]
    env = _env()
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm"
    code, text = _on_a_terminal(show, env)
    assert code == 0
    assert ESC in text
    assert "INTEGRATION_BLOCKED" in text
    code, text = _on_a_terminal(["--repo", str(blocked.bare), "show", "Bad"], env)
    assert code == 2
    assert f"{ESC}31m{ESC}1mmergegate: error:{ESC}0m" in text

    piped = blocked("show", "new-greeting")
    assert piped.code == 0
    assert "INTEGRATION_BLOCKED" in piped.stdout
    assert ESC not in piped.stdout + piped.stderr

    env["NO_COLOR"] = "1"
    code, text = _on_a_terminal(show, env)
    assert code == 0
    assert "INTEGRATION_BLOCKED" in text
    assert ESC not in text
