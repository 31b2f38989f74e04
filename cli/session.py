"""The composition root: what the global options chose, and the parts built from it.

A :class:`Session` opens the repository, the configuration, the store, the
Engine (with the follow-up hook, guide and resolver) and the git applier,
each once and only when a command asks for it, so a command that fails
validation has opened nothing and written nothing.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from .names import DB_ENV, DB_FILE, LOG_FILE

if TYPE_CHECKING:
    # Each part is imported by the method that builds it, so a command pays only
    # for what it opens (`show` never loads the git applier): see cli/lazy.py.
    from mergegate.apply import CheckSpec, GitApplier
    from mergegate.followups import (
        FollowUpGuide,
        FollowUps,
        GuidanceTemplates,
        ResolvedRule,
        ResolvedRules,
        Wiring,
    )
    from mergegate.statemachine import (
        BlockedRecord,
        BlockedReport,
        Engine,
        Resolver,
        Store,
    )
    from mergegate.statemachine.ledger import StoreIdentity

    from .config import CheckConfig, Config
    from .repo import Repository

__all__ = [
    "DB_ENV",
    "DB_FILE",
    "LOG_FILE",
    "Session",
    "default_actor",
    "refuse_a_new_second_store",
]

_TRANSITIONS = logging.getLogger("mergegate.transitions")


def default_actor() -> str:
    """``cli:<user>``: who the log says made a move, unless ``--actor`` says otherwise."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


class _Logfmt(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # ts= first keeps every line logfmt, so grep and logfmt parsers both work.
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return f"ts={ts.replace('+00:00', 'Z')} {record.getMessage()}"


@attrs.define
class Session:
    """Everything a command needs, built lazily from the global options."""

    repo_path: Path = attrs.Factory(Path.cwd)
    db_url: str | None = None
    json: bool = False
    log_stderr: bool = False
    actor: str = attrs.Factory(default_actor)
    #: True when neither --actor nor MERGEGATE_ACTOR named one: ``run`` then names itself.
    actor_defaulted: bool = False
    #: Called while a notification runs; ``run`` renews its lease there (cli/notify.py).
    keepalive: Callable[[], None] | None = None
    command: str = "mergegate"
    _repository: Repository | None = attrs.field(default=None, init=False)
    _config: Config | None = attrs.field(default=None, init=False)
    #: The bytes of the configuration files ``_config`` was read from (reload_config).
    _config_read: tuple[bytes | None, ...] = attrs.field(default=(), init=False)
    _store: Store | None = attrs.field(default=None, init=False)
    _engine: Engine | None = attrs.field(default=None, init=False)
    _handlers: list[logging.Handler] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        # Transition lines go to the log file (and stderr with --log-stderr), never
        # through a root logger some library configured. Set here, not in main(),
        # so that `--version` and `--help`, which build no session, skip logging.
        logging.getLogger("mergegate").propagate = False

    def repository(self) -> Repository:
        """The git repository ``--repo`` names (or contains)."""
        if self._repository is None:
            from .repo import locate  # noqa: PLC0415

            self._repository = locate(self.repo_path.absolute())
        return self._repository

    def config(self) -> Config:
        """The repository's configuration (docs/configuration.md)."""
        if self._config is None:
            from .configfile import load_config  # noqa: PLC0415

            self._config_read = self._config_files()
            self._config = load_config(self.repository().root)
        return self._config

    def reload_config(self) -> bool:
        """Read the configuration again if its files changed; whether they did.

        ``run`` asks between candidates: an approved change to the gate
        (``mergegate approve``) reaches the work tree when it integrates, and
        the candidates after it are checked by it, not by what ``run`` read at
        start. Raises ConfigError, and keeps the configuration it had, if the
        new one is broken.
        """
        files = self._config_files()
        if self._config is None or files == self._config_read:
            return False
        from .configfile import load_config  # noqa: PLC0415

        # Read before anything is forgotten: a broken file changes nothing here.
        config = load_config(self.repository().root)
        self._config, self._config_read, self._engine = config, files, None
        return True

    def _config_files(self) -> tuple[bytes | None, ...]:
        from .config import CONFIG_FILE  # noqa: PLC0415

        root = self.repository().root
        return tuple(
            (root / name).read_bytes() if (root / name).is_file() else None
            for name in (CONFIG_FILE, "pyproject.toml")
        )

    def db_target(self) -> str:
        """The store URL or SQLite path in force: ``--db``, ``MERGEGATE_DB``, else the default."""
        if self.db_url:
            return self.db_url
        return str(self.repository().state_dir / DB_FILE)

    def db_shown(self) -> str:
        """The store target as it may be printed: a URL's password is masked."""
        target = self.db_target()
        parts = urlsplit(target)
        if "://" not in target or parts.password is None:
            return target
        return urlunsplit(
            parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
        )

    def store(self, *, create: bool = False, moving: bool = False) -> Store:
        """The store; only ``create`` (``init``, ``import``) may create a missing SQLite file.

        ``moving`` (``import``) opens a store other than the one the repository
        names, on purpose.
        """
        if self._store is None:
            # The configuration is checked first: a broken file fails every command alike.
            self.config()
            if not moving:
                # A missing SQLite file where the repository names another store:
                # say so, rather than "run init" (which would be refused too).
                refuse_a_new_second_store(self)
            self._store = _open(self.db_target(), create=create)
        return self._store

    def wiring(self) -> Wiring:
        """The follow-up wiring the configuration describes (todos, roadmap, group, templates)."""
        from mergegate.followups import Wiring  # noqa: PLC0415

        config = self.config()
        return Wiring(
            config.todos,
            roadmap=config.roadmap,
            group=config.follow_up_group,
            templates=self.templates(),
            todos_label=config.todos_label,
            boundary=config.repo,
        )

    def followups(self) -> FollowUps:
        return self.wiring().followups()

    def templates(self) -> GuidanceTemplates:
        from mergegate.followups import GuidanceTemplates, InvalidTemplate  # noqa: PLC0415

        from .errors import ConfigError  # noqa: PLC0415

        config = self.config()
        try:
            return GuidanceTemplates(**dict(config.guidance))
        except InvalidTemplate as err:
            raise ConfigError(
                config.source or "configuration", f"guidance.{err.name}", str(err)
            ) from None

    def engine(self) -> Engine:
        """The Engine, wired with the follow-up hook, guide and resolver; logging on."""
        if self._engine is None:
            from mergegate.followups import build_engine  # noqa: PLC0415

            config, store = self.config(), self.store()
            self._check_actor()
            self.bind()
            from .notice import NoticeSources  # noqa: PLC0415
            from .notify import notify_hooks  # noqa: PLC0415

            guide = self._guide()
            wiring = attrs.evolve(self.wiring(), resolver=self.resolver(), custom_guide=guide)
            self._start_logging()
            self._engine = build_engine(
                store,
                wiring,
                # After the follow-up hook: a notification of a block sees it materialized.
                hooks=notify_hooks(
                    config.notify,
                    config.repo,
                    self._keep_alive,
                    # What a blocked notice carries besides the outcome: guidance, evidence.
                    NoticeSources(store, guide, config.todos),
                ),
                actor=self.actor,
                lease_ttl=timedelta(seconds=config.lease_ttl),
            )
        return self._engine

    def bind(self) -> StoreIdentity | None:
        """Check that the repository and the store belong together (see ``binding.py``)."""
        from .binding import bind  # noqa: PLC0415

        return bind(
            self.repository(),
            self.config().main_branch,
            self.store(),
            self.db_shown(),
            self.actor,
            # A path inside the repository moves with it: the default is recorded as such.
            recorded_as=None
            if self.db_url
            else f"the default store, <git-common-dir>/mergegate/{DB_FILE}",
        )

    def _keep_alive(self) -> None:
        if self.keepalive is not None:
            self.keepalive()

    def reader(self) -> Engine:
        """An Engine for a command that only reads: the store and guide ``engine()`` wires.

        It has no follow-up hook, resolver, notifications or log handler: a read
        fires no move, so none of them would run, and building them imports the
        todo writer, the roadmap and the notifier (docs/performance.md,
        "Command start-up"). The same checks fail the same way as in ``engine()``.
        """
        if self._engine is not None:
            return self._engine
        from mergegate.statemachine import Engine  # noqa: PLC0415

        store = self.store()
        self._check_actor()
        return Engine(store, guide=self._guide(), actor=self.actor)

    def _guide(self) -> FollowUpGuide:
        """The guide every Engine of this session renders with (templates, label, evidence)."""
        from mergegate.followups import FollowUpGuide  # noqa: PLC0415

        store = self.store()
        config = self.config()
        return FollowUpGuide(
            self.templates(),
            todos_label=config.todos_label,
            evidence=lambda record: _latest_report(store, record),
            # With a remote, the fix names <remote>/<main>: a developer's main is stale.
            upstream=None if config.remote is None else f"{config.remote}/{config.main_branch}",
        )

    def _check_actor(self) -> None:
        from mergegate.statemachine import InvalidInput  # noqa: PLC0415
        from mergegate.statemachine._validation import check_text  # noqa: PLC0415

        check_text(self.actor, field="actor")
        if not self.actor.strip() or "\n" in self.actor:
            raise InvalidInput("--actor", self.actor, "give one non-empty line")

    def resolved_rule(self) -> ResolvedRule | ResolvedRules:
        """The configured resolved rule, or rules combined (``.value`` names them in one line)."""
        from mergegate.followups import ResolvedRule, ResolvedRules  # noqa: PLC0415

        config = self.config()
        if len(config.resolved) == 1:
            return ResolvedRule(config.resolved[0])
        return ResolvedRules(config.resolved, config.resolved_combine)

    def resolver(self) -> Resolver:
        """The resolver of the configured rule (``resolved`` in mergegate.toml)."""
        from mergegate.followups import resolver_for  # noqa: PLC0415

        config, rule = self.config(), self.resolved_rule()
        return resolver_for(
            [rule] if isinstance(rule, str) else rule,
            todos_root=config.todos,
            roadmap=config.roadmap,
            boundary=config.repo,
        )

    def applier(self, *, checkout_waits: bool = False) -> GitApplier:
        """The git applier on the repository, with the configured checks.

        ``checkout_waits``: a checked-out ``main`` a person is editing is waited
        for (``run``), not refused at once (a one-shot command).
        """
        from mergegate.apply import GitApplier  # noqa: PLC0415

        config = self.config()
        # GitApplier.checks converts with the bare ``tuple``, which mypy's attrs plugin
        # types as Iterable[_T_co]; a mapping keeps the call checked at runtime only.
        # (CheckSpec.argv had the same problem; apply/checks.py now converts with a typed function.)
        checks: dict[str, Any] = {"checks": [_check_spec(c) for c in config.checks]}
        applier = GitApplier(
            self.repository().root,
            main_branch=config.main_branch,
            **checks,
            max_main_retries=config.max_main_retries,
            remote=config.remote,
            push_timeout=config.push_timeout,
            # A third of the TTL (lease_ttl >= 1 s, see config.py): two heartbeats can
            # be missed before the lease expires. No floor: a floor above ttl/3 lost the lease.
            heartbeat_every=min(30.0, config.lease_ttl / 3),
            # Read from the store at each apply (through the session, which may
            # have reopened it): `mergegate approve` beside a running integrator counts.
            approved=lambda key: self.store().approval(key.slug, key.sha) is not None,
            checkout_waits=checkout_waits,
        )
        if config.buildbot is not None or config.checks:
            from .cirunner import check_runner  # noqa: PLC0415  (only an apply needs it)

            applier.runner = check_runner(config, applier, self.store())
        return applier

    def lease_owner(self) -> str:
        """Who holds the lease during ``apply``: the actor, the host, the pid and its start.

        The start time lets ``recover`` and ``run`` on this host tell that the
        holder is gone, even once its pid was reused (``mergegate.apply.liveness``).
        """
        from mergegate.apply import lease_owner  # noqa: PLC0415  (only apply needs it)

        return lease_owner(self.actor)

    def log_path(self) -> Path:
        return self.repository().state_dir / LOG_FILE

    def _start_logging(self) -> None:
        path = self.log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
        if self.log_stderr:
            handlers.append(logging.StreamHandler())
        for handler in handlers:
            handler.setFormatter(_Logfmt())
            _TRANSITIONS.addHandler(handler)
        _TRANSITIONS.setLevel(logging.INFO)
        self._handlers.extend(handlers)

    def close(self) -> None:
        """Release the store and the log handlers; safe to call twice."""
        for handler in self._handlers:
            _TRANSITIONS.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        if self._store is not None:
            self._store.close()
            self._store = None
        self._engine = None


def refuse_a_new_second_store(session: Session) -> None:
    """``init`` of a SQLite file that does not exist, for a repository bound to another store.

    Refused before the file is made: a refused init leaves nothing behind.
    """
    from .binding import other_store, recorded_store  # noqa: PLC0415

    path = _sqlite_path(session.db_target())
    if path is None or path.exists():
        return
    recorded, recorded_where = recorded_store(session.repository())
    if recorded is not None:
        # The full path: a relative one names nothing to someone who reads the line elsewhere.
        raise other_store(recorded, recorded_where, str(path.absolute()), None, missing=True)


def _latest_report(store: Store, record: BlockedRecord) -> BlockedReport | None:
    """The report of ``record``'s latest occurrence: what the guidance names as failed."""
    found = store.occurrences(record.id)
    return found[-1].report if found else None


def _check_spec(check: CheckConfig) -> CheckSpec:
    from mergegate.apply import CheckSpec  # noqa: PLC0415

    return CheckSpec(
        check.name, check.argv, timeout=check.timeout, shell=check.shell, retries=check.retries
    )


def _sqlite_path(target: str) -> Path | None:
    """The file a SQLite target names, or ``None`` for a server URL (open_store checks it)."""
    if target.startswith("sqlite:"):
        return Path(target.removeprefix("sqlite:").removeprefix("//") or ".")
    return None if "://" in target else Path(target)


def _open(target: str, *, create: bool) -> Store:
    """Open the store ``target`` names; only ``create`` may create a missing SQLite file."""
    from mergegate.persistence import open_store  # noqa: PLC0415

    from .errors import UsageError  # noqa: PLC0415

    path = _sqlite_path(target)
    if path is not None:
        if path.is_dir():
            raise UsageError(f"--db {target}: {path} is a directory; give a file path")
        if not create and not path.exists():
            raise UsageError(f"no store at {path}; run `mergegate init` first (or pass --db)")
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(f"--db {target}: cannot create {path.parent}: {err}") from None
    return open_store(target)
