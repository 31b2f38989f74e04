"""What every command that moves a candidate shares at its door: the
``--idempotency-key`` and ``--expected-seq`` options, the check of a text
argument, the shas it resolves (main's, a branch's after a fetch), and the
printed outcome. The commands themselves live in one module per family."""

from __future__ import annotations

import click

from mergegate.apply.git import Git
from mergegate.statemachine import Outcome
from mergegate.statemachine._validation import check_text

from .errors import EXIT_OK
from .human import outcome_text
from .output import emit
from .payload import outcome_json
from .session import Session

__all__ = [
    "EXPECTED_SEQ",
    "IDEMPOTENCY",
    "emit_outcome",
    "fetched",
    "git_of",
    "key_text",
    "main_now",
]


IDEMPOTENCY = click.option(
    "--idempotency-key",
    metavar="KEY",
    default=None,
    help="Make a retry of this exact call a no-op (the first call's entry is returned).",
)


EXPECTED_SEQ = click.option(
    "--expected-seq",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Move only if the candidate's seq is still N (read it with show --json); else exit 4.",
)


def emit_outcome(session: Session, outcome: Outcome, code: int = EXIT_OK) -> int:
    """Print ``outcome`` as JSON or text, as the session asks; return ``code``."""
    return emit(session.json, session.command, outcome_json(outcome), outcome_text(outcome), code)


def key_text(value: str | None, field: str) -> str | None:
    """``value`` unchanged, if it is valid UTF-8 text; else InvalidInput naming ``field``."""
    if value is not None:
        check_text(value, field=field)
    return value


def main_now(session: Session) -> str | None:
    """The sha main points at in the session's repository; ``None`` while it has no commit."""
    return session.repository().branch_sha(session.config().main_branch)


def git_of(session: Session) -> Git:
    """Git on the session's repository, for resolving shas at the door (reads only)."""
    return Git(session.repository().root)


def fetched(session: Session, git: Git, branch: str) -> str | None:
    """With a remote, fetch ``branch`` from it (what a developer pushed); the remote's name.

    The branch lands in ``refs/remotes/<remote>/<branch>``, never on a local
    branch; a branch the server no longer has loses its stale copy there.
    """
    from mergegate.apply.remote import Remote  # noqa: PLC0415

    config = session.config()
    if config.remote is not None:
        Remote(git, config.remote, config.push_timeout).fetch_branches([branch])
    return config.remote
