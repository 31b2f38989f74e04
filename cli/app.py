"""The ``mergegate`` click group and its global options; the commands register on it.

This module is imported by every call, ``--version`` included, so it imports
click and nothing of the engine: each command's module is imported by the
group when that command runs (see ``lazy.py``), and the session is built from
``session.py`` only once a command was chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .completion import SLUG
from .lazy import LazyGroup
from .names import DB_ENV, LOG_FILE, VERSION

if TYPE_CHECKING:
    from .session import Session

__all__ = ["COMMANDS", "Seat", "cli", "session_of"]

# Which module registers each command. A test imports them all and checks that
# this map and the registered commands agree.
COMMANDS = {
    "acknowledge": "mergegate.cli.commands_ledger",
    "apply": "mergegate.cli.commands_apply",
    "approve": "mergegate.cli.commands_approve",
    "block": "mergegate.cli.commands_external",
    "blocked": "mergegate.cli.commands_query",
    "demo": "mergegate.cli.demo",
    "drain": "mergegate.cli.commands_controls",
    "diagram": "mergegate.cli.commands_verify",
    "export": "mergegate.cli.commands_ledger",
    "flaky": "mergegate.cli.flaky",
    "followups": "mergegate.cli.commands_followups",
    "history": "mergegate.cli.commands_query",
    "import": "mergegate.cli.commands_ledger",
    "init": "mergegate.cli.commands_init",
    "pause": "mergegate.cli.commands_controls",
    "promote": "mergegate.cli.commands_controls",
    "integrate": "mergegate.cli.commands_external",
    "list": "mergegate.cli.commands_query",
    "recover": "mergegate.cli.commands_apply",
    "remediate": "mergegate.cli.commands_remediate",
    "report": "mergegate.cli.report",
    "resume": "mergegate.cli.commands_remediate",
    "run": "mergegate.cli.commands_run",
    "serve": "mergegate.cli.serve",
    "show": "mergegate.cli.commands_query",
    "start": "mergegate.cli.commands_external",
    "submit": "mergegate.cli.commands_submit",
    "undrain": "mergegate.cli.commands_controls",
    "unpause": "mergegate.cli.commands_controls",
    "verify": "mergegate.cli.commands_verify",
    "withdraw": "mergegate.cli.commands_submit",
}

# A new slug cannot be completed from the store; every other SLUG names a candidate.
_NEW_SLUG = frozenset({"submit"})


class Seat:
    """Where the group callback puts the session; empty until a command was chosen.

    The boundary hands click an empty seat, not a Session, because importing
    the session (attrs, logging) costs ``--version`` and ``--help`` about a
    quarter of their start-up, and neither needs one.
    """

    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session: Session | None = None


def _json_after(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # The group's callback has run by now (click invokes it before it parses the
    # subcommand), so this only ever turns JSON mode on.
    seat = ctx.find_object(Seat)
    if value and seat is not None and seat.session is not None:
        seat.session.json = True


class _Group(LazyGroup):
    def finish(self, command: click.Command) -> None:
        """Give ``command`` a ``--json`` flag and slug completion."""
        _finish(command)


def _finish(command: click.Command) -> None:
    names = {p.name for p in command.params}
    if "json_after" not in names and "json_mode" not in names:
        command.params.append(
            click.Option(
                ["--json", "json_after"],
                is_flag=True,
                expose_value=False,
                callback=_json_after,
                help="Write one JSON document to stdout (the same as `mergegate --json`).",
            )
        )
    if command.name not in _NEW_SLUG:
        for param in command.params:
            if isinstance(param, click.Argument) and param.name == "slug":
                param.type = SLUG


@click.group(
    cls=_Group,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--db",
    "db",
    metavar="URL",
    envvar=DB_ENV,
    default=None,
    help="Store: a SQLite path, sqlite:///PATH or postgresql://... "
    f"[env {DB_ENV}; default <git-common-dir>/mergegate/mergegate.sqlite3]",
)
@click.option(
    "--repo",
    "repo",
    metavar="PATH",
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
    help="The git repository (default: the current directory).",
)
@click.option("--json", "json_mode", is_flag=True, help="Write one JSON document to stdout.")
@click.option(
    "--log-stderr",
    is_flag=True,
    help=f"Also write the logfmt transition lines to stderr (always: {LOG_FILE}).",
)
@click.option(
    "--actor",
    metavar="NAME",
    envvar="MERGEGATE_ACTOR",
    default=None,
    help="Who the log records as making each move [env MERGEGATE_ACTOR; default cli:<user>].",
)
@click.version_option(
    VERSION,
    "--version",
    prog_name="mergegate",
    message="%(prog)s %(version)s",
)
@click.pass_context
def cli(
    ctx: click.Context,
    db: str | None,
    repo: Path,
    json_mode: bool,
    log_stderr: bool,
    actor: str | None,
) -> None:
    """mergegate: an explicit state machine for an integration queue.

    Candidates move pending -> applying -> integrated, or to blocked, where a
    follow-up todo and resume guidance are created; remediate, resume, apply.
    Exit codes: 0 ok, 1 unexpected, 2 usage or invalid input, 3 apply blocked,
    4 move not allowed now or another writer won.
    """
    from .session import Session, default_actor  # noqa: PLC0415  (lazy: see the module doc)

    session = Session(
        repo_path=repo,
        db_url=db or None,
        json=json_mode,
        log_stderr=log_stderr,
        actor=actor if actor is not None else default_actor(),
        command=ctx.invoked_subcommand or "mergegate",
        actor_defaulted=actor is None,
    )
    ctx.ensure_object(Seat).session = session
    ctx.call_on_close(session.close)


def session_of(ctx: click.Context) -> Session:
    """The session the global options built."""
    seat = ctx.find_object(Seat)
    session = None if seat is None else seat.session
    assert session is not None, "the group callback seats a session"
    return session
