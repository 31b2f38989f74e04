"""The ``mergegate`` click group and its global options; the commands register on it."""

from __future__ import annotations

from pathlib import Path

import click

from .session import DB_ENV, LOG_FILE, Session, default_actor

__all__ = ["cli", "session_of"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    None,
    "--version",
    package_name="mergegate",
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
    session: Session = ctx.ensure_object(Session)
    session.repo_path = repo
    session.db_url = db or None
    session.json = json_mode
    session.log_stderr = log_stderr
    session.actor = actor if actor is not None else default_actor()
    session.command = ctx.invoked_subcommand or "mergegate"
    ctx.call_on_close(session.close)


def session_of(ctx: click.Context) -> Session:
    """The session the global options built."""
    session = ctx.find_object(Session)
    assert session is not None, "the mergegate group always creates a session"
    return session
