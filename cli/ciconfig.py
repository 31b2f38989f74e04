"""The ``[buildbot]`` table of mergegate.toml: checks run on an existing Buildbot.

Read by :mod:`.config` with the same reader (every key checked, a typo named);
see docs/buildbot.md. The master's credentials are never in this file: they
come from an environment variable (``auth_env``, by default
``MERGEGATE_BUILDBOT_AUTH``) or a file outside the repository (``auth_file``).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError
from .tomlreader import TableReader as _Reader

__all__ = ["BuilderConfig", "BuildbotConfig", "read_auth", "read_buildbot"]

#: Seconds: a deadline below 1 s cannot see a build start; above a week nobody waits.
DEADLINE_RANGE = (1.0, 7 * 86_400.0)
POLL_RANGE = (0.05, 60.0)
RETRIES_RANGE = (0, 10)
DEFAULT_AUTH_ENV = "MERGEGATE_BUILDBOT_AUTH"


@attrs.frozen
class BuilderConfig:
    """One required builder: its name on the master, its deadlines and retries."""

    name: str
    start_timeout: float
    finish_timeout: float
    retries: int


@attrs.frozen
class BuildbotConfig:
    """Where the master is and which builders must pass before ``main`` moves."""

    url: str
    builders: tuple[BuilderConfig, ...]
    scheduler: str = "mergegate"
    repository: str | None = None
    poll: float = 0.5
    auth_env: str = DEFAULT_AUTH_ENV
    auth_file: Path | None = None


def _retries(reader: _Reader, key: str) -> int | None:
    value: int | None = reader.get(key, int, "an integer")
    low, high = RETRIES_RANGE
    if value is not None and not low <= value <= high:
        raise reader.error(key, f"expected {low} to {high}, got {value}")
    return value


#: The keys of one builder's table, and of ``[buildbot]``.
_BUILDER_KEYS = ("name", "start_timeout", "finish_timeout", "retries")
_BUILDBOT_KEYS = (
    "url",
    "scheduler",
    "repository",
    "poll",
    "start_timeout",
    "finish_timeout",
    "retries",
    "builders",
    "auth_env",
    "auth_file",
)


def _builder(reader: _Reader, index: int, item: Any, defaults: BuilderConfig) -> BuilderConfig:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise reader.error(f"builders[{index}]", "expected a builder name or a table")
    sub = _Reader(reader.where, item, f"{reader.prefix}builders[{index}].", _BUILDER_KEYS)
    name = sub.text("name")
    if name is None or len(name) > 100:
        raise sub.required("name", "required: one line of 1 to 100 characters")
    start = sub.seconds("start_timeout", DEADLINE_RANGE)
    finish = sub.seconds("finish_timeout", DEADLINE_RANGE)
    retries = _retries(sub, "retries")
    sub.done()
    return BuilderConfig(
        name,
        start or defaults.start_timeout,
        finish or defaults.finish_timeout,
        defaults.retries if retries is None else retries,
    )


def read_buildbot(reader: _Reader, repo: Path) -> BuildbotConfig | None:
    """The ``[buildbot]`` table, checked; ``None`` when there is none."""
    raw = reader.get("buildbot", dict, "a table ([buildbot])")
    if raw is None:
        return None
    sub = _Reader(reader.where, raw, f"{reader.prefix}buildbot.", _BUILDBOT_KEYS)
    url = sub.text("url")
    parts = urllib.parse.urlsplit(url or "")
    if url is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise sub.required("url", "required: the master's http:// or https:// URL")
    if parts.username or parts.password:
        raise sub.error("url", "put no credentials in the URL; see auth_env and auth_file")
    scheduler = sub.text("scheduler") or "mergegate"
    repository = sub.text("repository")
    poll = sub.seconds("poll", POLL_RANGE)
    defaults = BuilderConfig(
        "",
        sub.seconds("start_timeout", DEADLINE_RANGE) or 600.0,
        sub.seconds("finish_timeout", DEADLINE_RANGE) or 3600.0,
        _retries(sub, "retries") or 0,
    )
    names = sub.get("builders", list, "an array of builder names or tables")
    if not names:
        raise sub.required("builders", "required: the builders whose results must pass")
    builders = tuple(_builder(sub, i, item, defaults) for i, item in enumerate(names))
    seen = [b.name for b in builders]
    if len(set(seen)) != len(seen):
        raise sub.error("builders", "a builder is named twice")
    auth_env = sub.text("auth_env") or DEFAULT_AUTH_ENV
    auth_file_text = sub.text("auth_file")
    auth_file = None
    if auth_file_text is not None:
        auth_file = Path(auth_file_text).expanduser()
        if not auth_file.is_absolute():
            raise sub.error("auth_file", "give an absolute path outside the repository")
        resolved, root = auth_file.resolve(), repo.resolve()
        if resolved == root or root in resolved.parents:
            raise sub.error("auth_file", "is inside the repository; keep credentials out of it")
    sub.done()
    return BuildbotConfig(
        url,
        builders,
        scheduler,
        repository,
        poll or 0.5,
        auth_env,
        auth_file,
    )


def read_auth(config: BuildbotConfig) -> str | None:
    """The master's credentials: ``auth_env`` first, then ``auth_file``; ``None`` without."""
    found = os.environ.get(config.auth_env)
    if found:
        return found.strip()
    if config.auth_file is None:
        return None
    try:
        text = config.auth_file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(
            str(config.auth_file), "buildbot.auth_file", f"cannot be read: {err.strerror}"
        ) from None
    return text or None
