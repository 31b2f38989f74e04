"""``show SLUG``, ``list`` and ``--version`` answered without click, attrs or the engine.

Every call is a new process, and the general path imports click, attrs, the
lifecycle table and the store before it reads a row: ``show`` cost 11x
``python -c pass`` that way (docs/performance.md, "Command start-up"). The
commands an operator runs most only read, so their plainest form is answered
here, straight from the default SQLite file, with the store's own queries and
the same output (tests/cli/test_cli_fastread.py compares the two paths byte
for byte, and pins the copies of the table's state sets and the schema
version below to their sources).

It answers only when it is sure, and otherwise returns ``None`` so that the
command runs through click as before: any other option or form of the command
line (``--json`` and ``--repo`` are understood), a ``MERGEGATE_*`` variable
other than the actor, a configuration file, a store that is not the default
SQLite file at the schema version this module knows, a candidate that is or
was blocked, a recorded check build, and every error. A read writes nothing, so stepping
aside halfway is safe: the general path starts over and reports whatever is
wrong in its own words.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .columns import short_span, table
from .names import DB_FILE, VERSION

__all__ = ["Answer", "answer"]

#: The schema version these queries are written for (persistence/migrations.py).
#: Any other version steps aside: an older file is migrated by the store on open
#: (a write), a newer one refused.
SCHEMA_VERSION = 14

# Copies of the lifecycle table's state sets (statemachine/table.py), in the
# order of the State enum where order matters; the tests compare them.
STATES = ("pending", "applying", "blocked", "remediating", "retry", "integrated", "withdrawn")
EVENTS = frozenset(
    {
        "submit",
        "start_apply",
        "integrate",
        "block",
        "interrupt",
        "start_remediation",
        "resume",
        "supersede",
        "withdraw",
        "requeue",
    }
)
ACTIVE = ("pending", "applying", "blocked", "remediating", "retry")
QUEUED = frozenset({"pending", "retry"})
LEASED = frozenset({"applying"})
CARRYING_BLOCKED = frozenset({"blocked", "remediating"})

# The checks a slug passes (statemachine/_validation.py), and the width of a sha in text.
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SLUG_MAX = 64
_SHA_SHOWN = 12
# What `list` takes the typical apply time from (cli/status.py, persistence/sqlstore.py).
_RECENT_APPLIES = 20
_RECENT_ENTRIES = 5000
_GIT_TIMEOUT = 60.0
_MAX_CONFIG_BYTES = 1 << 20

_CANDIDATE = "id, slug, branch, sha, state, seq, submitted_at, updated_at"
# A pause or a drain in force (persistence/controls.py): the newest row of each pair.
_IN_FORCE = (
    "SELECT 1 FROM queue_controls WHERE id IN ("
    "(SELECT id FROM queue_controls WHERE action IN ('pause', 'unpause') "
    "ORDER BY id DESC LIMIT 1), "
    "(SELECT id FROM queue_controls WHERE action IN ('drain', 'undrain') "
    "ORDER BY id DESC LIMIT 1)) "
    "AND action IN ('pause', 'drain')"
)
_TRANSITION = (
    "candidate_id, seq, event, source, dest, sha, actor, at, reason, idempotency_key, "
    "lease_owner, main_sha, interrupted"
)


class _StepAside(Exception):
    """This call is not one the fast path is sure of: click's path answers it."""


class Answer:
    """What a command prints on stdout, whole, and its exit code."""

    __slots__ = ("code", "command", "json", "text")

    def __init__(self, text: str, *, command: str = "mergegate", json: bool = False) -> None:
        self.text, self.command, self.json, self.code = text, command, json, 0


def answer(args: Sequence[str]) -> Answer | None:
    """The answer to ``mergegate ARGS`` if it is a plain read this module is sure of."""
    if list(args) == ["--version"]:
        return Answer(f"mergegate {VERSION}\n")
    parsed = _parse(args)
    if parsed is None:
        return None
    # MERGEGATE_ACTOR is checked below; MERGEGATE_DB names another store, and
    # _MERGEGATE_COMPLETE asks click for shell completion.
    named = {k for k in os.environ if k.startswith(("MERGEGATE_", "_MERGEGATE"))}
    if named - {"MERGEGATE_ACTOR"}:
        return None
    command, slug, json_mode, repo = parsed
    try:
        root, common = _locate(Path(repo).absolute())
        _check_defaults(root)
        _check_actor()
        with _Reader(common / "mergegate" / DB_FILE) as db:
            if command == "show":
                assert slug is not None
                result, text = _show(db, slug)
            else:
                result, text = _list(db, datetime.now(UTC))
    except Exception:  # any doubt: the general path answers, errors included
        return None
    return _finish(command, json_mode, result, text)


def _parse(args: Sequence[str]) -> tuple[str, str | None, bool, str] | None:
    """``[--json] [--repo PATH] show SLUG [--json]`` or the same with ``list`` (no SLUG);
    the command, the slug, JSON mode and the repository path; anything else ``None``."""
    words = list(args)
    json_mode, repo = False, "."
    while words and words[0].startswith("-"):
        if words[0] == "--json":
            json_mode, words = True, words[1:]
        elif words[0] == "--repo" and len(words) > 1:
            repo, words = words[1], words[2:]
        elif words[0].startswith("--repo="):
            repo, words = words[0].removeprefix("--repo="), words[1:]
        else:
            return None
    if not words or words[0] not in ("show", "list") or not repo:
        return None
    positional = []
    for word in words[1:]:
        if word == "--json":
            json_mode = True
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
    if words[0] == "list":
        return None if positional else ("list", None, json_mode, repo)
    if len(positional) != 1 or not _SLUG.fullmatch(positional[0]):
        return None
    if len(positional[0]) > _SLUG_MAX:
        return None
    return "show", positional[0], json_mode, repo


def _finish(command: str, json_mode: bool, result: dict[str, Any], text: str) -> Answer | None:
    from .colour import enabled, paint  # noqa: PLC0415
    from .output import document  # noqa: PLC0415

    stdout = sys.stdout
    if stdout is None:
        return None
    if json_mode:
        out = document(command, 0, result=result)
    else:
        out = paint(text) if enabled(stdout) else text
    # click re-encodes a stream that claims ASCII as UTF-8; a plain write would not.
    if not out.isascii() and (stdout.encoding or "").lower().replace("-", "") != "utf8":
        return None
    return Answer(out, command=command, json=json_mode)


# -- what the session checks before a read (cli/session.py, cli/repo.py, cli/config.py) --


def _locate(path: Path) -> tuple[Path, Path]:
    """The repository's root and git common dir, asked of git as ``repo.locate`` asks."""
    if not path.is_dir():
        raise _StepAside
    common = ("rev-parse", "--path-format=absolute", "--is-bare-repository", "--git-common-dir")
    done = _git(path, *common, "--show-toplevel")
    lines = done.stdout.splitlines()
    if done.returncode == 0 and len(lines) >= 3 and lines[0] == "false":
        return Path(lines[2]), Path(lines[1])
    # --show-toplevel fails in a bare repository: ask again without it, as locate does.
    done = _git(path, *common)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2 or lines[0] != "true":
        raise _StepAside  # no repository, or a work tree git answered oddly: the general path
    return Path(lines[1]), Path(lines[1])


def _git(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # An inherited GIT_DIR or GIT_WORK_TREE would point git at another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", LANG="C", GIT_TERMINAL_PROMPT="0")
    return subprocess.run(
        ["git", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _check_defaults(root: Path) -> None:
    """Step aside unless the repository has no configuration and its defaults pass."""
    if (root / "mergegate.toml").is_file():
        raise _StepAside
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        import tomllib  # noqa: PLC0415  (only with a pyproject.toml, as load_config)

        data = pyproject.read_bytes()
        if len(data) > _MAX_CONFIG_BYTES:
            raise _StepAside
        section = tomllib.loads(data.decode("utf-8")).get("tool", {})
        if not isinstance(section, dict) or section.get("mergegate") is not None:
            raise _StepAside
    # The defaults' one check that depends on the disk: todos and the roadmap
    # resolve inside the repository (followups/contain.py, check_inside).
    top = root.resolve()
    for default in (root / "todos", root / "todos" / "roadmap.yaml"):
        resolved = default.resolve()
        if resolved != top and top not in resolved.parents:
            raise _StepAside


def _check_actor() -> None:
    """The actor (``MERGEGATE_ACTOR``, else ``cli:<user>``) must pass the session's check."""
    # click reads an empty variable as unset (session.default_actor then names one).
    actor = os.environ.get("MERGEGATE_ACTOR") or f"cli:{_user()}"
    if not actor.isascii() or not actor.strip() or "\n" in actor:
        raise _StepAside


def _user() -> str:
    """``getpass.getuser()``, without importing getpass (termios)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    import pwd  # noqa: PLC0415

    return pwd.getpwuid(os.getuid())[0]


# -- the store ---------------------------------------------------------------


class _Reader:
    """The default SQLite store, opened for reading only, at the known schema version."""

    def __init__(self, path: Path) -> None:
        if path.is_dir() or not path.exists():
            raise _StepAside
        # mode=rw: never create the file (the general path says "run init").
        self.conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5.0)
        try:
            if self.one("PRAGMA journal_mode") != ("wal",):
                raise _StepAside
            if self.one("SELECT MAX(version) FROM schema_migrations") != (SCHEMA_VERSION,):
                raise _StepAside
        except BaseException:
            self.conn.close()
            raise
        # One snapshot for every read of this call.
        self.conn.execute("BEGIN")

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return found


class _Word(str):
    """A state or event name that answers ``.value``, as the enums the JSON functions read."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


class _Key:
    __slots__ = ("branch", "sha", "slug")

    def __init__(self, slug: str, branch: str, sha: str) -> None:
        self.slug, self.branch, self.sha = slug, branch, sha


class _Candidate:
    """The fields of ``Candidate`` that ``payload.candidate_json`` and the text read."""

    __slots__ = ("id", "key", "seq", "state", "submitted_at", "updated_at")

    def __init__(self, row: tuple[Any, ...]) -> None:
        cid, slug, branch, sha, state, seq, submitted, updated = row
        if state not in STATES:
            raise _StepAside
        self.id, self.key, self.state, self.seq = cid, _Key(slug, branch, sha), _Word(state), seq
        self.submitted_at, self.updated_at = _time(submitted), _time(updated)


class _Transition:
    """The fields of ``Transition`` that ``payload.transition_json`` and the text read."""

    __slots__ = (
        "actor",
        "at",
        "candidate_id",
        "dest",
        "event",
        "idempotency_key",
        "interrupted",
        "lease_owner",
        "main_sha",
        "reason",
        "seq",
        "sha",
        "source",
    )

    def __init__(self, row: tuple[Any, ...]) -> None:
        cid, seq, event, source, dest, sha, actor, at, reason, key, owner, main, cause = row
        if event not in EVENTS or dest not in STATES or (source and source not in STATES):
            raise _StepAside
        self.candidate_id, self.seq, self.event = cid, seq, _Word(event)
        # The store's mapper reads an empty source as none (persistence/rows.py).
        self.source = _Word(source) if source else None
        self.dest, self.sha, self.actor, self.at = _Word(dest), sha, actor, _time(at)
        self.reason, self.idempotency_key = reason, key
        self.lease_owner, self.main_sha, self.interrupted = owner, main, cause


def _time(value: str) -> datetime:
    """A stored time as ``codec.load_time`` reads it."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- show ----------------------------------------------------------------------


def _show(db: _Reader, slug: str) -> tuple[dict[str, Any], str]:
    """``show SLUG`` of a candidate with no block, past or present, and no check builds."""
    from mergegate.followups.text import one_line  # noqa: PLC0415

    from .payload import candidate_json, transition_json  # noqa: PLC0415

    found = db.one(
        f"SELECT {_CANDIDATE} FROM candidates WHERE slug = ? ORDER BY active DESC, id DESC LIMIT 1",
        (slug,),
    )
    if found is None:
        raise _StepAside  # not found: the general path says so
    c = _Candidate(found)
    if c.state in CARRYING_BLOCKED:
        raise _StepAside  # guidance and evidence to render
    if db.one("SELECT 1 FROM integration_blocked_outcomes WHERE slug = ? LIMIT 1", (slug,)):
        raise _StepAside  # earlier follow-ups to list
    if db.one("SELECT 1 FROM check_builds WHERE slug = ? LIMIT 1", (slug,)):
        raise _StepAside  # flaky checks to look for
    if db.rows(_IN_FORCE) or db.one("SELECT 1 FROM queue_controls WHERE slug = ?", (slug,)):
        raise _StepAside  # a pause, a drain or a promote to say (cli/controlview.py)
    last = db.one(
        f"SELECT {_TRANSITION} FROM transitions WHERE candidate_id = ? ORDER BY seq DESC LIMIT 1",
        (c.id,),
    )
    t = None if last is None else _Transition(last)
    result: dict[str, Any] = {
        "candidate": candidate_json(c),  # type: ignore[arg-type]
        "transition": None if t is None else transition_json(t),  # type: ignore[arg-type]
        "blocked": None,
        "guidance": None,
        "latest_evidence": None,
        "occurrences": [],
        "blocked_history": [],
        "flaky": [],
        "controls": {"paused": None, "draining": None},
        "promoted": None,
    }
    # human.show_text of a candidate without a block.
    lines = [
        f"slug:       {c.key.slug}",
        f"branch:     {one_line(c.key.branch)}",
        f"sha:        {c.key.sha[:_SHA_SHOWN]}",
        f"state:      {c.state}",
        f"seq:        {c.seq}",
        f"submitted:  {_short_time(c.submitted_at)} UTC",
    ]
    if t is not None:
        note = f" ({one_line(t.reason)})" if t.reason is not None else ""
        lines.append(
            f"last move:  {t.event} at {_short_time(t.at)} UTC by {one_line(t.actor)}{note}"
        )
    return result, "\n".join(lines) + "\n"


def _short_time(value: datetime | None) -> str:
    from .payload import stamp  # noqa: PLC0415

    text = stamp(value)
    return "-" if text is None else text[:19].replace("T", " ")


# -- list ----------------------------------------------------------------------


class _Row:
    """The fields of ``listing.QueueRow`` that ``payload.row_json`` and the table read."""

    __slots__ = ("candidate", "elapsed", "eta", "position", "slot", "waiting_for")

    def __init__(
        self,
        candidate: _Candidate,
        position: int | None,
        slot: int | None,
        elapsed: timedelta | None,
        waiting_for: str | None,
        eta: datetime | None,
    ) -> None:
        self.candidate, self.position, self.slot = candidate, position, slot
        self.elapsed, self.waiting_for, self.eta = elapsed, waiting_for, eta


class _Integrator:
    __slots__ = ("expires_at", "owner", "since", "state")

    def __init__(
        self,
        state: str,
        since: datetime | None,
        owner: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self.state, self.since, self.owner, self.expires_at = state, since, owner, expires_at


def _list(db: _Reader, now: datetime) -> tuple[dict[str, Any], str]:
    """``list``: the active queue (status.read_status), when no candidate carries a block."""
    from .payload import integrator_json, row_json, stamp  # noqa: PLC0415

    if db.rows(_IN_FORCE):
        raise _StepAside  # a pause or a drain to say (cli/controlview.py)
    active = [
        _Candidate(r)
        for r in db.rows(f"SELECT {_CANDIDATE} FROM candidates WHERE active ORDER BY id")
    ]
    if any(c.state in CARRYING_BLOCKED or c.state not in ACTIVE for c in active):
        raise _StepAside  # follow-ups and approvals to wait for
    queue = [r[0] for r in db.rows("SELECT id FROM candidates WHERE queued ORDER BY queue_pos, id")]
    seconds = [
        (_time(end) - _time(start)).total_seconds()
        for end, start in db.rows(
            "SELECT t.at, p.at FROM transitions t JOIN transitions p "
            "ON p.candidate_id = t.candidate_id AND p.seq = t.seq - 1 "
            "WHERE t.id > (SELECT COALESCE(MAX(id), 0) FROM transitions) - ? "
            "AND t.event = ? AND p.event = ? ORDER BY t.id DESC LIMIT ?",
            (_RECENT_ENTRIES, "integrate", "start_apply", _RECENT_APPLIES),
        )
    ]
    typical = None if not seconds else timedelta(seconds=_median(seconds))
    rows = _rows(_rank(active, queue), now, typical)
    leases = db.rows("SELECT owner, acquired_at, expires_at FROM leases ORDER BY name")
    last = db.one("SELECT at FROM transitions ORDER BY id DESC LIMIT 1")
    integrator = _integrator(leases, now, None if last is None else _time(last[0]))
    result = {
        "all": False,
        "states": list(ACTIVE),
        "now": stamp(now),
        "typical_apply_seconds": None if typical is None else int(typical.total_seconds()),
        "integrator": integrator_json(integrator),  # type: ignore[arg-type]
        "candidates": [row_json(r, now) for r in rows],  # type: ignore[arg-type]
        "controls": {"paused": None, "draining": None},
    }
    text = _queue_table(rows, now)
    if integrator.state == "down":
        text += (
            f"integrator DOWN: {integrator.owner} stopped renewing its lease; gone since "
            f"{stamp(integrator.since)}; run `mergegate recover` (or `mergegate run`)\n"
        )
    return result, text


def _median(values: list[float]) -> float:
    """``statistics.median``, without importing statistics (decimal, fractions, random)."""
    data = sorted(values)
    half = len(data) // 2
    if len(data) % 2 == 1:
        return data[half]
    return (data[half - 1] + data[half]) / 2


def _rank(candidates: list[_Candidate], queue: list[int]) -> list[tuple[_Candidate, int | None]]:
    """queueview.rank: leased first, then queued in stored order, then the others, by id."""
    place = {cid: n for n, cid in enumerate(queue)}

    def key(c: _Candidate) -> tuple[object, ...]:
        group = 0 if c.state in LEASED else 1 if c.state in QUEUED else 2
        return (group, place.get(c.id, len(place)), c.id) if group == 1 else (group, c.id)

    ranked = sorted(candidates, key=key)
    numbers = {c.id: n for n, c in enumerate((c for c in ranked if c.state in QUEUED), 1)}
    return [(c, numbers.get(c.id)) for c in ranked]


def _rows(
    listed: list[tuple[_Candidate, int | None]], now: datetime, typical: timedelta | None
) -> list[_Row]:
    """listing.queue_rows for candidates that carry no block (every one is active)."""
    flying = sorted((c for c, _ in listed if c.state in LEASED), key=lambda c: (c.updated_at, c.id))
    slots = {c.id: n for n, c in enumerate(flying, start=1)}
    chain_end = now
    if typical is not None and flying:
        chain_end = max(now, *(c.updated_at + typical for c in flying))
    by_position = {pos: c for c, pos in listed if pos is not None}
    rows = []
    for c, pos in listed:
        slot = slots.get(c.id)
        eta: datetime | None = None
        if typical is not None and slot is not None:
            eta = max(now, c.updated_at + typical)
        elif typical is not None and pos is not None:
            eta = chain_end + typical * pos
        waiting: str | None = None
        if slot is not None:
            waiting = None if slot == 1 else f"slot {slot - 1}: {flying[slot - 2].key.slug}"
        elif pos is not None:
            if pos > 1:
                waiting = f"position {pos - 1}: {by_position[pos - 1].key.slug}"
            elif flying:
                waiting = f"slot {len(flying)}: {flying[-1].key.slug}"
            else:
                waiting = "an integrator: `mergegate run` takes the queue"
        elapsed = max(now - c.updated_at, timedelta(0))
        rows.append(_Row(c, pos, slot, elapsed, waiting, eta))
    return rows


def _integrator(
    leases: list[tuple[Any, ...]], now: datetime, last_move: datetime | None
) -> _Integrator:
    """status._integrator: alive, down or idle, from the leases."""
    if not leases:
        return _Integrator("idle", last_move)
    owner, acquired, expires = max(
        ((o, _time(a), _time(e)) for o, a, e in leases), key=lambda le: le[2]
    )
    if expires > now:
        return _Integrator("alive", acquired, owner, expires)
    return _Integrator("down", expires, owner, expires)


def _queue_table(rows: list[_Row], now: datetime) -> str:
    """human.queue_table."""
    if not rows:
        return "no candidates\n"
    body = [
        (
            "-" if r.position is None else str(r.position),
            "-" if r.slot is None else str(r.slot),
            r.candidate.key.slug,
            r.candidate.key.branch,
            r.candidate.key.sha[:_SHA_SHOWN],
            str(r.candidate.state),
            str(r.candidate.seq),
            _short_time(r.candidate.updated_at),
            "-" if r.elapsed is None else short_span(r.elapsed),
            "-" if r.eta is None else f"~{short_span(r.eta - now)}",
            r.waiting_for or "-",
        )
        for r in rows
    ]
    headers = ("POS", "SLOT", "SLUG", "BRANCH", "SHA", "STATE", "SEQ", "UPDATED (UTC)")
    return table((*headers, "ELAPSED", "ETA", "WAITING FOR"), body)
