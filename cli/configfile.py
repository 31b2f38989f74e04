"""Reading ``mergegate.toml`` (or ``[tool.mergegate]`` of ``pyproject.toml``) into a
checked :class:`~mergegate.cli.config.Config`.

Every key is checked when the file is read. An unknown key, a wrong type, a
number out of its range or a path that leaves the repository is a
:class:`ConfigError` naming the key, so a typo fails at once and never halfway
through an apply. The defaults go through the very same checks: a ``todos``
symlink that points outside is refused whether or not the file names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mergegate.followups import GuidanceTemplates, InvalidTemplate, PathOutsideRepository
from mergegate.followups.contain import check_inside
from mergegate.statemachine import InvalidInput, MergegateError
from mergegate.statemachine._validation import check_branch, check_relpath, check_slug

from .ciconfig import read_buildbot
from .config import (
    CHECK_TIMEOUT_RANGE,
    CONFIG_FILE,
    GUIDANCE_NAMES,
    LEASE_TTL_RANGE,
    MAX_MAIN_RETRIES_RANGE,
    NOTIFY_DEFAULT_ON,
    NOTIFY_ON,
    NOTIFY_TIMEOUT_RANGE,
    PUSH_TIMEOUT_RANGE,
    CheckConfig,
    Config,
    NotifyConfig,
)
from .errors import ConfigError
from .tomlreader import TableReader as _Reader
from .tomlreader import type_name as _type_name

__all__ = ["load_config"]

_MAX_CONFIG_BYTES = 1 << 20


def _inside(reader: _Reader, repo: Path, key: str, value: str, *, default: bool) -> Path:
    """``repo / value``, refused unless it resolves inside ``repo``: the one check that
    explicit values and defaults share."""
    shown = f"{value!r} (the default)" if default else repr(value)
    try:
        check_relpath(value, field=key)
    except MergegateError:
        raise reader.error(key, f"{shown} must be a relative path inside the repository") from None
    path = repo / value
    try:
        check_inside(repo, path, key)
    except PathOutsideRepository as err:
        raise reader.error(
            key,
            f"{shown} resolves to {err.resolved}, outside the repository; "
            f"remove the symlink, or set {key} to a path inside it",
        ) from None
    return path


# What git keeps at the top of a git directory: a follow-up path there would
# write into git's own files (``roadmap = "config"`` in a bare repository).
_GIT_OWN = frozenset(
    {
        ".git",
        "HEAD",
        "FETCH_HEAD",
        "ORIG_HEAD",
        "branches",
        "config",
        "description",
        "hooks",
        "index",
        "info",
        "logs",
        "mergegate",
        "modules",
        "objects",
        "packed-refs",
        "refs",
        "shallow",
        "worktrees",
    }
)


def _outside_git(reader: _Reader, repo: Path, key: str, path: Path) -> None:
    """Refuse a follow-up path inside the git directory: git's files are not todos."""
    first = path.relative_to(repo).parts[:1]
    bare = not (repo / ".git").exists() and (repo / "HEAD").is_file()
    if first and (first[0] == ".git" or (bare and first[0] in _GIT_OWN)):
        raise reader.error(
            key,
            f"{path.relative_to(repo).as_posix()!r} is inside the git directory; "
            "choose a folder of its own, as the default todos is",
        )


def _notify_within_lease(reader: _Reader, notify: tuple[NotifyConfig, ...], ttl: float) -> None:
    """Refuse notifications that, one after another, could outlive half the lease.

    They run between two heartbeats of the integrator that made the move; a
    notification still running when the lease expires lets another integrator
    recover a chain that is alive. Half the TTL leaves the rest to git.
    """
    total = sum(n.timeout for n in notify)
    if notify and total >= ttl / 2:
        raise reader.error(
            "notify",
            f"the [[notify]] timeouts add up to {total:g} s, at least half the "
            f"lease_ttl of {ttl:g} s, so a slow notification could outlive the lease; "
            "lower their timeout or raise lease_ttl",
        )


#: The keys of one ``[[checks]]`` table.
_CHECK_KEYS = ("name", "argv", "shell", "timeout", "retries")


def _checks(reader: _Reader) -> tuple[CheckConfig, ...]:
    raw = reader.get("checks", list, "an array of tables ([[checks]])")
    if raw is None:
        return ()
    checks: list[CheckConfig] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        prefix = f"{reader.prefix}checks[{index}]."
        if not isinstance(item, dict):
            raise ConfigError(
                reader.where, prefix[:-1], f"expected a table, got {_type_name(item)}"
            )
        sub = _Reader(reader.where, item, prefix, _CHECK_KEYS)
        name = sub.text("name")
        if name is None or len(name) > 100:
            raise sub.required("name", "required: one line of 1 to 100 characters")
        if name in names:
            raise sub.error("name", f"duplicate check name {name!r}")
        names.add(name)
        shell = sub.get("shell", bool, "true or false") or False
        argv = _command(sub, shell)
        timeout = sub.seconds("timeout", CHECK_TIMEOUT_RANGE)
        retries = sub.get("retries", int, "an integer")
        if retries is not None and not 0 <= retries <= 10:
            raise sub.error("retries", f"expected 0 to 10, got {retries}")
        sub.done()
        checks.append(CheckConfig(name, tuple(argv), timeout or 600.0, shell, retries or 0))
    return tuple(checks)


def _command(sub: _Reader, shell: bool) -> list[str]:
    argv = sub.get("argv", (list, str), "an array of strings (or one string with shell = true)")
    if argv is None:
        raise sub.required("argv", "required: the command to run, as an array of strings")
    if isinstance(argv, str):
        if not shell:
            raise sub.error("argv", "a string needs shell = true; otherwise give an array")
        argv = [argv]
    if not argv or not all(isinstance(a, str) and a and "\x00" not in a for a in argv):
        raise sub.error("argv", "expected a non-empty array of non-empty strings")
    if shell and len(argv) != 1:
        raise sub.error("argv", "with shell = true give exactly one command string")
    return [str(a) for a in argv]


def _events(sub: _Reader, on: list[Any]) -> None:
    """Refuse an empty ``on`` or a name that is not an event, naming the first bad value."""
    if not on:
        raise sub.error("on", f"expected at least one of {', '.join(NOTIFY_ON)}")
    for value in on:
        if value not in NOTIFY_ON:
            raise sub.error("on", f"expected some of {', '.join(NOTIFY_ON)}, got {value!r}")


def _notify(reader: _Reader) -> tuple[NotifyConfig, ...]:
    raw = reader.get("notify", list, "an array of tables ([[notify]])")
    if raw is None:
        return ()
    found: list[NotifyConfig] = []
    for index, item in enumerate(raw):
        prefix = f"{reader.prefix}notify[{index}]."
        if not isinstance(item, dict):
            raise ConfigError(
                reader.where, prefix[:-1], f"expected a table, got {_type_name(item)}"
            )
        sub = _Reader(reader.where, item, prefix)
        shell = sub.get("shell", bool, "true or false") or False
        argv = _command(sub, shell)
        on = sub.get("on", list, f"an array of event names ({', '.join(NOTIFY_ON)})")
        if on is not None:
            _events(sub, on)
        timeout = sub.seconds("timeout", NOTIFY_TIMEOUT_RANGE)
        sub.done()
        events = NOTIFY_DEFAULT_ON if on is None else tuple(v for v in NOTIFY_ON if v in on)
        found.append(NotifyConfig(tuple(argv), events, timeout or 10.0, shell))
    return tuple(found)


def _guidance(reader: _Reader) -> tuple[tuple[str, str], ...]:
    raw = reader.get("guidance", dict, "a table ([guidance])")
    if raw is None:
        return ()
    sub = _Reader(reader.where, raw, f"{reader.prefix}guidance.")
    found = [(name, sub.text(name)) for name in GUIDANCE_NAMES]
    sub.done()
    templates = tuple((name, value) for name, value in found if value is not None)
    # Checked here, not when guidance is first printed: a command that never
    # prints guidance (list, blocked) must fail on a broken file like the rest.
    try:
        GuidanceTemplates(**dict(templates))
    except InvalidTemplate as err:
        raise sub.error(err.name, str(err)) from None
    return templates


_RULES = ("state-done", "folder-removed", "roadmap-gone")


def _resolved(reader: _Reader) -> tuple[tuple[str, ...], Literal["any", "all"]] | None:
    """``resolved``: one rule name, or a list combined by ``resolved_combine`` (any, all)."""
    names = ", ".join(_RULES)
    raw = reader.get("resolved", (str, list), f"a rule name ({names}) or a list of them")
    combine = reader.get("resolved_combine", str, '"any" or "all"')
    if combine is not None and not isinstance(raw, list):
        raise reader.error(
            "resolved_combine", "combines a list of rules: give resolved = [...] with it"
        )
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in _RULES:
            raise reader.error("resolved", f"expected one of {names}, got {raw!r}")
        return (raw,), "any"
    bad = [v for v in raw if v not in _RULES]
    if bad:
        raise reader.error("resolved", f"expected rule names ({names}), got {bad[0]!r}")
    if combine not in (None, "any", "all"):
        raise reader.error("resolved_combine", f'expected "any" or "all", got {combine!r}')
    mode: Literal["any", "all"] = "all" if combine == "all" else "any"
    # Only a list loads the rules' own checks (none named twice, a combination that can hold).
    from mergegate.followups import ResolvedRules  # noqa: PLC0415

    try:
        ResolvedRules(raw, mode)
    except InvalidInput as err:
        raise reader.error("resolved", str(err)) from None
    return tuple(raw), mode


def _parse(
    repo: Path, where: str, table: Mapping[str, Any], prefix: str, source: str | None
) -> Config:
    reader = _Reader(where, table, prefix)
    main_branch = reader.text("main_branch")
    if main_branch is not None:
        try:
            check_branch(main_branch, field="main_branch")
        except MergegateError as err:
            raise reader.error("main_branch", str(err)) from None
        if main_branch == "HEAD" or main_branch.startswith("refs/"):
            # "HEAD" is whatever is checked out, and "refs/heads/x" would be
            # refs/heads/refs/heads/x: both name something else than meant.
            raise reader.error(
                "main_branch",
                f"{main_branch!r} is not a plain branch name; give the name alone, "
                'as in main_branch = "main"',
            )
    remote = reader.text("remote")
    if remote is not None and remote.startswith("-"):
        raise reader.error("remote", "a remote name cannot start with '-'")
    group = reader.text("follow_up_group")
    if group is not None:
        try:
            check_slug(group, field="follow_up_group")
        except MergegateError as err:
            raise reader.error("follow_up_group", str(err)) from None
    retries = reader.get("max_main_retries", int, "an integer")
    low, high = MAX_MAIN_RETRIES_RANGE
    if retries is not None and not low <= retries <= high:
        raise reader.error("max_main_retries", f"expected {low} to {high}, got {retries}")
    todos_value, roadmap_value = reader.text("todos"), reader.text("roadmap")
    todos_rel = todos_value or "todos"
    todos = _inside(reader, repo, "todos", todos_rel, default=todos_value is None)
    roadmap = _inside(
        reader,
        repo,
        "roadmap",
        roadmap_value or (PurePosixPath(todos_rel) / "roadmap.yaml").as_posix(),
        default=roadmap_value is None,
    )
    for key, path in (("todos", todos), ("roadmap", roadmap)):
        _outside_git(reader, repo, key, path)
    ttl = reader.seconds("lease_ttl", LEASE_TTL_RANGE)
    push_timeout = reader.seconds("push_timeout", PUSH_TIMEOUT_RANGE)
    checks = _checks(reader)
    guidance = _guidance(reader)
    notify = _notify(reader)
    buildbot = read_buildbot(reader, repo)
    if buildbot is not None and checks:
        raise reader.error("buildbot", "give [[checks]] or [buildbot], not both")
    _notify_within_lease(reader, notify, ttl or Config.defaults(repo).lease_ttl)
    resolved = _resolved(reader)
    reader.done()
    defaults = Config.defaults(repo)
    return Config(
        repo=repo,
        source=source,
        main_branch=main_branch or defaults.main_branch,
        remote=remote,
        todos=todos,
        roadmap=roadmap,
        follow_up_group=group or defaults.follow_up_group,
        max_main_retries=defaults.max_main_retries if retries is None else retries,
        lease_ttl=ttl or defaults.lease_ttl,
        push_timeout=push_timeout or defaults.push_timeout,
        checks=checks,
        guidance=guidance,
        notify=notify,
        resolved=defaults.resolved if resolved is None else resolved[0],
        resolved_combine=defaults.resolved_combine if resolved is None else resolved[1],
        buildbot=buildbot,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    # Imported here: tomllib compiles its regular expressions on import, and a
    # repository without a configuration file (the defaults) never needs them.
    import tomllib  # noqa: PLC0415

    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), "(file)", f"cannot be read: {err.strerror}") from None
    if len(data) > _MAX_CONFIG_BYTES:
        raise ConfigError(str(path), "(file)", "larger than 1 MiB; is it the right file?")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "(file)", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), "(file)", f"not valid TOML: {err}") from None


def load_config(repo: Path) -> Config:
    """The configuration of the repository rooted at ``repo``; checked defaults if it has none.

    Reads ``<repo>/mergegate.toml``, else the ``[tool.mergegate]`` table of
    ``<repo>/pyproject.toml``. Having both is an error, so there is never a
    doubt about which one is in force. Raises ConfigError naming the key.
    """
    own, pyproject = repo / CONFIG_FILE, repo / "pyproject.toml"
    tool: dict[str, Any] | None = None
    if pyproject.is_file():
        section = _read_toml(pyproject).get("tool", {})
        found = section.get("mergegate") if isinstance(section, dict) else None
        if found is not None and not isinstance(found, dict):
            raise ConfigError(str(pyproject), "tool.mergegate", "expected a table")
        tool = found
    if own.is_file():
        if tool is not None:
            raise ConfigError(
                str(own),
                "(file)",
                f"{pyproject} also has [tool.mergegate]; keep only one of the two",
            )
        return _parse(repo, str(own), _read_toml(own), "", str(own))
    if tool is not None:
        return _parse(repo, str(pyproject), tool, "tool.mergegate.", str(pyproject))
    # No file: the defaults still go through every check a file's values get.
    return _parse(repo, f"{repo} (defaults)", {}, "", None)
