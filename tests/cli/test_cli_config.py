"""Configuration: mergegate.toml or [tool.mergegate], checked key by key."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mergegate.cli import Config, ConfigError, load_config
from mergegate.statemachine import InvalidInput

from ..procio import LiveOutput
from .conftest import MakeScratch, Scratch, _env


def _load(tmp_path: Path, text: str, name: str = "mergegate.toml") -> Config:
    (tmp_path / name).write_text(text)
    return load_config(tmp_path)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    """No file gives main, todos/, todos/roadmap.yaml, no checks."""
    config = load_config(tmp_path)
    assert (config.main_branch, config.todos, config.roadmap, config.checks) == (
        "main",
        tmp_path / "todos",
        tmp_path / "todos" / "roadmap.yaml",
        (),
    )
    assert config.source is None


def test_every_key_is_read(tmp_path: Path) -> None:
    """Every documented key lands in the record."""
    config = _load(
        tmp_path,
        """
main_branch = "trunk"
remote = "origin"
todos = "work/todos"
roadmap = "work/roadmap.yaml"
follow_up_group = "blocked"
max_main_retries = 5
lease_ttl = 90

[[checks]]
name = "unit"
argv = ["pytest", "-q"]
timeout = 120

[[checks]]
name = "lint"
argv = "ruff check ."
shell = true

[guidance]
resume = "orchestrate resume {slug}"
""",
    )
    assert config.main_branch == "trunk"
    assert config.remote == "origin"
    assert config.todos == tmp_path / "work/todos"
    assert config.roadmap == tmp_path / "work/roadmap.yaml"
    assert config.follow_up_group == "blocked"
    assert (config.max_main_retries, config.lease_ttl) == (5, 90.0)
    assert [(c.name, c.argv, c.timeout, c.shell) for c in config.checks] == [
        ("unit", ("pytest", "-q"), 120.0, False),
        ("lint", ("ruff check .",), 600.0, True),
    ]
    assert config.guidance == (("resume", "orchestrate resume {slug}"),)


def test_roadmap_follows_todos(tmp_path: Path) -> None:
    """Without roadmap, it is roadmap.yaml inside the configured todos folder."""
    assert _load(tmp_path, 'todos = "t"\n').roadmap == tmp_path / "t" / "roadmap.yaml"


def test_pyproject_tool_table(tmp_path: Path) -> None:
    """[tool.mergegate] in pyproject.toml is read when there is no mergegate.toml."""
    config = _load(tmp_path, '[tool.mergegate]\nmain_branch = "dev"\n', "pyproject.toml")
    assert config.main_branch == "dev"
    assert config.source == str(tmp_path / "pyproject.toml")


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("mainbranch = 'x'\n", "mainbranch", "unknown key"),
        ("main_branch = 3\n", "main_branch", "expected a string, got an integer"),
        ("main_branch = 'a..b'\n", "main_branch", "not a valid git branch"),
        ("todos = '../elsewhere'\n", "todos", "inside the repository"),
        ("roadmap = '/etc/roadmap.yaml'\n", "roadmap", "inside the repository"),
        ("max_main_retries = true\n", "max_main_retries", "expected an integer"),
        ("max_main_retries = -1\n", "max_main_retries", "0 to 100"),
        ("lease_ttl = 0\n", "lease_ttl", "expected 1 to 86400 seconds, got 0"),
        ("lease_ttl = 0.5\n", "lease_ttl", "expected 1 to 86400 seconds, got 0.5"),
        ("lease_ttl = 1e12\n", "lease_ttl", "expected 1 to 86400 seconds, got 1e+12"),
        ("lease_ttl = inf\n", "lease_ttl", "expected 1 to 86400 seconds, got inf"),
        ("lease_ttl = nan\n", "lease_ttl", "expected 1 to 86400 seconds, got nan"),
        ("max_main_retries = 101\n", "max_main_retries", "expected 0 to 100, got 101"),
        (
            "[[checks]]\nname = 'a'\nargv = ['x']\ntimeout = 0.01\n",
            "checks[0].timeout",
            "expected 1 to 86400 seconds, got 0.01",
        ),
        (
            "[[checks]]\nname = 'a'\nargv = ['x']\ntimeout = 1e300\n",
            "checks[0].timeout",
            "expected 1 to 86400 seconds, got 1e+300",
        ),
        ("follow_up_group = 'Not A Slug'\n", "follow_up_group", "lowercase"),
        ("[[checks]]\nargv = ['x']\n", "checks[0].name", "required"),
        ("[[checks]]\nname = 'a'\n", "checks[0].argv", "required"),
        ("[[checks]]\nname = 'a'\nargv = 'x y'\n", "checks[0].argv", "shell = true"),
        ("[[checks]]\nname = 'a'\nargv = []\n", "checks[0].argv", "non-empty"),
        ("[[checks]]\nname = 'a'\nargv = ['x']\ntimout = 3\n", "checks[0].timout", "unknown"),
        # A required key misspelt is named as the unknown key it is, not as a missing one.
        ("[[checks]]\nnmae = 'a'\nargv = ['x']\n", "checks[0].nmae", "unknown key"),
        ("[[checks]]\nname = 'a'\nargs = ['x']\n", "checks[0].args", "unknown key"),
        ("[buildbot]\nulr = 'http://ci'\nbuilders = ['b']\n", "buildbot.ulr", "unknown key"),
        ("[buildbot]\nurl = 'http://ci'\nbuilder = ['b']\n", "buildbot.builder", "unknown key"),
        (
            "[buildbot]\nurl = 'http://ci'\nbuilders = [{nme = 'b'}]\n",
            "buildbot.builders[0].nme",
            "unknown key",
        ),
        ("[guidance]\nrestart = 'x'\n", "guidance.restart", "unknown key"),
        ("checks = 'pytest'\n", "checks", "array of tables"),
        ("main_branch = \n", "(file)", "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    """Each bad value is a ConfigError whose message names the key and the problem."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_symlinked_todos_outside_is_refused(tmp_path: Path) -> None:
    """A todos path that resolves outside the repository through a symlink is refused."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside the repository"):
        _load(repo, 'todos = "link/todos"\n')


def test_both_files_is_an_error(tmp_path: Path) -> None:
    """mergegate.toml and [tool.mergegate] together are refused: one source of truth."""
    (tmp_path / "pyproject.toml").write_text("[tool.mergegate]\n")
    with pytest.raises(ConfigError, match="keep only one"):
        _load(tmp_path, "")


def test_bad_config_exits_2_with_one_line(scratch: Scratch) -> None:
    """Through the command line, a bad key exits 2 with one stderr line naming file and key."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 'long'\n")
    r = scratch("list")
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    assert "mergegate.toml: lease_ttl: expected a number, got a string" in r.stderr


def test_bad_guidance_template_exits_2(scratch: Scratch) -> None:
    """A guidance template with an unknown placeholder exits 2 naming guidance.<name>."""
    (scratch.bare / "mergegate.toml").write_text('[guidance]\nresume = "go {nope}"\n')
    r = scratch("show", "x")
    assert r.code == 2
    assert "guidance.resume" in r.stderr


@pytest.mark.parametrize("command", [("list",), ("blocked",)])
def test_bad_guidance_template_fails_commands_that_print_no_guidance(
    scratch: Scratch, command: tuple[str, ...]
) -> None:
    """A broken guidance template stops list and blocked too, as every other command."""
    (scratch.bare / "mergegate.toml").write_text("[guidance]\nresume = '{slug!r}'\n")
    r = scratch(*command)
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    assert "mergegate.toml: guidance.resume: " in r.stderr
    assert load_config_error(scratch.bare) == r.stderr.strip().removeprefix("mergegate: error: ")


def load_config_error(repo: Path) -> str:
    """The message load_config raises for ``repo``'s file (the library path of the same check)."""
    with pytest.raises(ConfigError) as err:
        load_config(repo)
    return str(err.value)


def test_configured_guidance_reaches_the_text(blocked: Scratch) -> None:
    """Configured templates replace the NEXT: commands of the guidance."""
    (blocked.bare / "mergegate.toml").write_text('[guidance]\nresume = "orch resume {slug}"\n')
    assert "NEXT: orch resume new-greeting\n" in blocked("show", "new-greeting").stdout


def test_default_paths_get_the_explicit_checks(tmp_path: Path) -> None:
    """With no file, a todos symlink out of the repository is refused like an explicit one."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "todos").symlink_to(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(repo)
    assert caught.value.key == "todos"
    assert "'todos' (the default) resolves to" in str(caught.value)
    assert caught.value.path == f"{repo} (defaults)"


@pytest.mark.parametrize("value", ["0.5", "1e12"])
def test_lease_ttl_out_of_range_exits_2_and_writes_nothing(
    make_scratch: MakeScratch, value: str
) -> None:
    """lease_ttl 0.5 or 1e12: exit 2 at configuration time, one line, no store created."""
    s = make_scratch("fresh")
    (s.bare / "mergegate.toml").write_text(f"lease_ttl = {value}\n")
    r = s("init")
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    shown = f"{float(value):g}"
    assert f"mergegate.toml: lease_ttl: expected 1 to 86400 seconds, got {shown}" in r.stderr
    assert not s.db.parent.exists()


_SLOW_CHECK = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(2.0)"


def test_smallest_lease_ttl_keeps_a_healthy_apply_alive(scratch: Scratch) -> None:
    """lease_ttl = 1, a 2 s check: the heartbeat renews, recover finds nothing, it integrates."""
    started = scratch.root / "check-started"
    argv = [sys.executable, "-c", _SLOW_CHECK, str(started)]
    (scratch.bare / "mergegate.toml").write_text(
        f'lease_ttl = 1\n[[checks]]\nname = "slow"\nargv = {json.dumps(argv)}\n'
    )
    assert scratch("submit", "other", "--sha", scratch.shas["other"]).code == 0
    apply = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "apply", "other"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    live = LiveOutput(apply)
    live.until(lambda: started.exists() or live.closed("stderr"), "the check to start", 60)
    assert started.exists(), f"apply ended before its check started.\n{live.report()}"
    # For longer than the TTL, the lease must always be well ahead of the clock.
    margins = []
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        with sqlite3.connect(scratch.db) as conn:
            rows = conn.execute("SELECT expires_at FROM leases").fetchall()
        conn.close()
        now = datetime.now(UTC)
        margins += [(datetime.fromisoformat(r[0]) - now).total_seconds() for r in rows]
        time.sleep(0.02)
    assert len(margins) > 10
    # ttl/3 keeps about 0.66 s of margin; the old 1 s heartbeat floor let it reach 0.
    assert min(margins) > 0.15, min(margins)
    recovered = scratch("--json", "recover")
    assert recovered.code == 0, recovered.stderr
    assert recovered.doc["result"]["recovered"] == []
    code, _out, err = live.finish(timeout=60)
    assert code == 0, err
    show = scratch("--json", "show", "other").doc["result"]["candidate"]
    assert show["state"] == "integrated"


@pytest.mark.parametrize(
    ("field", "value"),
    [("lease_ttl", 0.5), ("lease_ttl", 1e12), ("max_main_retries", 101), ("lease_ttl", True)],
)
def test_config_record_refuses_out_of_range_numbers(
    tmp_path: Path, field: str, value: object
) -> None:
    """A Config built in Python refuses the numbers the file reader refuses, naming the field."""
    with pytest.raises(InvalidInput, match=field):
        Config(tmp_path, tmp_path / "todos", tmp_path / "todos" / "roadmap.yaml", **{field: value})
