"""The [buildbot] table and check retries: read key by key; a local flaky check, recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mergegate.cli import Config, ConfigError, load_config
from mergegate.cli.ciconfig import read_auth

from .conftest import MakeScratch, states


def _load(tmp_path: Path, text: str) -> Config:
    (tmp_path / "mergegate.toml").write_text(text)
    return load_config(tmp_path)


def test_the_buildbot_table_is_read_with_per_builder_overrides(tmp_path: Path) -> None:
    """Defaults at the top, a builder given as a table overrides them."""
    config = _load(
        tmp_path,
        """
remote = "origin"
[buildbot]
url = "https://ci.example.org"
builders = ["linux", { name = "docs", retries = 2, start_timeout = 30 }]
start_timeout = 300
finish_timeout = 900
""",
    )
    bb = config.buildbot
    assert bb is not None
    assert bb.url == "https://ci.example.org"
    assert [(b.name, b.start_timeout, b.finish_timeout, b.retries) for b in bb.builders] == [
        ("linux", 300.0, 900.0, 0),
        ("docs", 30.0, 900.0, 2),
    ]
    assert (bb.scheduler, bb.poll, bb.auth_env, bb.auth_file) == (
        "mergegate",
        0.5,
        "MERGEGATE_BUILDBOT_AUTH",
        None,
    )


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ('url = "ftp://ci"\nbuilders = ["a"]', "buildbot.url", "http:// or https://"),
        ('url = "http://u:pw@ci/"\nbuilders = ["a"]', "buildbot.url", "no credentials"),
        ('url = "http://ci/"\nbuilders = []', "buildbot.builders", "required"),
        ('url = "http://ci/"\nbuilders = ["a", "a"]', "buildbot.builders", "named twice"),
        ('url = "http://ci/"\nbuilders = ["a"]\nretries = 11', "buildbot.retries", "0 to 10"),
        (
            'url = "http://ci/"\nbuilders = ["a"]\nstart_timout = 3',
            "buildbot.start_timout",
            "unknown",
        ),
        (
            'url = "http://ci/"\nbuilders = ["a"]\nauth_file = "secrets/token"',
            "buildbot.auth_file",
            "absolute",
        ),
    ],
)
def test_a_bad_buildbot_key_is_named(tmp_path: Path, table: str, key: str, words: str) -> None:
    """Each mistake is a ConfigError naming the key and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"[buildbot]\n{table}\n")
    assert f": {key}: " in str(caught.value)
    assert words in str(caught.value)


def test_credentials_inside_the_repository_are_refused(tmp_path: Path) -> None:
    """auth_file inside the repository is refused: credentials never live in the repository."""
    inside = tmp_path / "ci-token"
    with pytest.raises(ConfigError, match="inside the repository"):
        _load(
            tmp_path, f'[buildbot]\nurl = "http://ci/"\nbuilders = ["a"]\nauth_file = "{inside}"\n'
        )


def test_credentials_come_from_the_environment_then_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auth_env wins; without it the file outside the repository is read."""
    repo, secret = tmp_path / "repo", tmp_path / "token"
    repo.mkdir()
    secret.write_text("bot:s3cret\n")
    config = _load(
        repo, f'[buildbot]\nurl = "http://ci/"\nbuilders = ["a"]\nauth_file = "{secret}"\n'
    )
    assert config.buildbot is not None
    monkeypatch.delenv("MERGEGATE_BUILDBOT_AUTH", raising=False)
    assert read_auth(config.buildbot) == "bot:s3cret"
    monkeypatch.setenv("MERGEGATE_BUILDBOT_AUTH", "token-abc")
    assert read_auth(config.buildbot) == "token-abc"


def test_buildbot_and_local_checks_are_exclusive(tmp_path: Path) -> None:
    """One runner decides: [buildbot] and [[checks]] together are refused."""
    with pytest.raises(ConfigError, match="not both"):
        _load(
            tmp_path,
            '[[checks]]\nname = "unit"\nargv = ["true"]\n'
            '[buildbot]\nurl = "http://ci/"\nbuilders = ["a"]\n',
        )


def test_a_flaky_local_check_passes_on_retry_and_is_counted(make_scratch: MakeScratch) -> None:
    """retries = 1: a check failing once, then passing, integrates; show and flaky name it."""
    s = make_scratch("ready")
    marker = s.root / "ran-once"
    (s.bare / "mergegate.toml").write_text(
        f"""
[[checks]]
name = "wobbly"
argv = 'if [ -e {marker} ]; then echo second; else touch {marker}; echo first; exit 7; fi'
shell = true
retries = 1
"""
    )
    assert s("submit", "other").code == 0
    done = s("apply", "other")
    assert done.code == 0, done.stdout + done.stderr
    assert states(s) == {"other": "integrated"}
    shown = s("--json", "show", "other").doc["result"]["flaky"]
    assert shown == [
        {
            "check": "wobbly",
            "merge_sha": s.main(),
            "attempts": [
                {"attempt": 1, "state": "failed", "exit_code": 7, "url": None},
                {"attempt": 2, "state": "passed", "exit_code": 0, "url": None},
            ],
        }
    ]
    assert "flaky: wobbly failed then passed" in s("history", "other").stdout
    assert s("flaky").stdout == "wobbly: 1\n"
    assert "retry 1 of 1" in s.log.read_text()
    assert os.path.exists(marker)
