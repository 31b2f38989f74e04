"""The commands that move candidates: init, submit, start, block, integrate, remediate,
resume, apply and recover. Each validates its arguments before it opens the store."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs
import click

from mergegate.apply import resolve_candidate_sha, resolve_sha
from mergegate.apply.applier import NULL_SHA
from mergegate.apply.git import Git
from mergegate.followups import mark_withdrawn
from mergegate.followups.text import one_line
from mergegate.statemachine import (
    CandidateKey,
    Event,
    Evidence,
    FollowUpNotResolved,
    InvalidInput,
    MergegateError,
    Outcome,
    Reason,
    RepositoryError,
    State,
)
from mergegate.statemachine._validation import check_branch, check_slug, check_text, short_sha

from .app import cli, session_of
from .errors import EXIT_BLOCKED, EXIT_OK, HeldByBlocked, IntegrateRefused, UsageError
from .evidence import build_report, read_evidence
from .human import outcome_text
from .listing import queue_listing
from .output import emit
from .payload import outcome_json
from .presence import integrator_up
from .recovery import recover_now
from .session import Session

__all__ = [
    "apply",
    "block",
    "init",
    "integrate",
    "recover",
    "remediate",
    "resume",
    "start",
    "submit",
    "withdraw",
]


@runtime_checkable
class _Versioned(Protocol):
    """A store that reports its applied migrations (both shipped stores do)."""

    def schema_versions(self) -> list[int]: ...


_IDEMPOTENCY = click.option(
    "--idempotency-key",
    metavar="KEY",
    default=None,
    help="Make a retry of this exact call a no-op (the first call's entry is returned).",
)


_EXPECTED_SEQ = click.option(
    "--expected-seq",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Move only if the candidate's seq is still N (read it with show --json); else exit 4.",
)


def _emit_outcome(session: Session, outcome: Outcome, code: int = EXIT_OK) -> int:
    return emit(session.json, session.command, outcome_json(outcome), outcome_text(outcome), code)


def _key_text(value: str | None, field: str) -> str | None:
    if value is not None:
        check_text(value, field=field)
    return value


def _main_sha(session: Session) -> str | None:
    return session.repository().branch_sha(session.config().main_branch)


def _git(session: Session) -> Git:
    """Git on the session's repository, for resolving shas at the door (reads only)."""
    return Git(session.repository().root)


def _fetched(session: Session, git: Git, branch: str) -> str | None:
    """With a remote, fetch ``branch`` from it (what a developer pushed); the remote's name.

    The branch lands in ``refs/remotes/<remote>/<branch>``, never on a local
    branch; a branch the server no longer has loses its stale copy there.
    """
    from mergegate.apply.remote import Remote  # noqa: PLC0415

    config = session.config()
    if config.remote is not None:
        Remote(git, config.remote, config.push_timeout).fetch_branches([branch])
    return config.remote


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> int:
    """Create or upgrade the store. Idempotent."""
    s = session_of(ctx)
    config = s.config()
    store = s.store(create=True)
    versions = store.schema_versions() if isinstance(store, _Versioned) else None
    # The repository and the store are bound to each other here (or refused).
    identity = s.bind()
    result = {
        "db": s.db_shown(),
        "backend": store.backend,
        "schema_versions": versions,
        "config": config.source,
        "log_file": str(s.log_path()),
        "store_id": identity.store_id if identity else None,
        "repository_root": identity.repository if identity else None,
    }
    shown = "" if not versions else f", schema version {versions[-1]}"
    bound = (
        f"store {identity.store_id} serves this repository (root {identity.repository[:12]})"
        if identity
        else f"store not bound yet: {config.main_branch} has no commit; the first command "
        "that moves the queue binds it"
    )
    text = (
        f"store ready: {s.db_shown()} ({store.backend}{shown})\n"
        f"{bound}\n"
        f"config: {config.source or 'defaults (no mergegate.toml)'}\n"
        f"log: {s.log_path()}\n"
    )
    return emit(s.json, s.command, result, text)


@cli.command()
@click.argument("slug")
@click.option(
    "--sha",
    default=None,
    help="The commit to integrate: its id or an abbreviation of at least 4 hex digits, "
    "contained in the branch (default: the branch's tip).",
)
@click.option("--branch", default=None, help="The candidate's branch (default: the slug).")
@_IDEMPOTENCY
@click.option("--priority", is_flag=True, help="Put it first in the queue (needs --why).")
@click.option("--why", default=None, help="Why it goes first (logged; with --priority).")
@click.pass_context
def submit(
    ctx: click.Context,
    slug: str,
    sha: str | None,
    branch: str | None,
    idempotency_key: str | None,
    priority: bool,
    why: str | None,
) -> int:
    """Queue SLUG at SHA as pending. Submitting the same identity again is a no-op.

    The sha is resolved once, here, to the full commit id, through object ids
    only (never a ref name); that id is what is stored, shown and applied.
    Submitting SLUG on the same branch at a new sha while it is pending or retry
    supersedes the old sha (a logged move): the old one never integrates.
    With --priority --why TEXT it then goes first, as `mergegate promote` does.
    """
    s = session_of(ctx)
    check_slug(slug)
    branch = check_branch(branch if branch is not None else slug, field="--branch")
    _key_text(idempotency_key, "--idempotency-key")
    if priority or why is not None:
        _priority_why(priority, why)
    git = _git(s)
    remote = _fetched(s, git, branch)
    full = resolve_candidate_sha(
        git, branch, sha, field="--sha", branch_field="--branch", remote=remote
    )
    key = CandidateKey(slug, branch, full)
    engine = s.engine()
    held = engine.store.candidate(slug)
    if (
        held is not None
        and held.key.branch == branch
        and held.key.sha != full
        and engine.table.rule(held.state, Event.SUPERSEDE) is not None
    ):
        # expected_seq: if the candidate moved since it was read (an apply took
        # it), the supersede is refused (exit 4) instead of replacing a sha in flight.
        outcome = engine.supersede(
            slug, new_sha=full, expected_seq=held.seq, idempotency_key=idempotency_key
        )
        _cancel_builds(s, slug, f"superseded by {full[:12]}")
    elif (
        held is not None
        and held.key != key
        and held.state in (State.BLOCKED, State.REMEDIATING)
        and idempotency_key is None
    ):
        # Name the commands that help, not only the moves (resume or withdraw).
        raise HeldByBlocked(slug, held.key, held.state.value)
    else:
        outcome = engine.submit(key, idempotency_key=idempotency_key)
    if priority and why is not None:
        return _promoted(s, outcome, why)
    return _emit_outcome(s, outcome)


def _priority_why(priority: bool, why: str | None) -> None:
    """``--priority`` and ``--why`` go together, checked before anything is written."""
    if not priority:
        raise UsageError(
            "--why goes with --priority: say why the candidate goes first, or drop --why"
        )
    if why is None or not why.strip():
        raise InvalidInput("--why", why, "say why the candidate goes first (it is logged)")
    check_text(why, field="--why")


def _promoted(s: Session, outcome: Outcome, why: str) -> int:
    """Put the submitted candidate first, and print both the move and the promote."""
    from .controlview import control_json  # noqa: PLC0415  (only a priority submit)

    entry = s.engine().promote(outcome.candidate.key.slug, why=why, actor=s.actor)
    result = {**outcome_json(outcome), "promoted": control_json(entry)}
    text = outcome_text(outcome) + f"promoted {entry.slug}: first in the queue: {one_line(why)}\n"
    return emit(s.json, s.command, result, text)


@cli.command()
@click.argument("slug")
@click.option("--why", required=True, help="Why the candidate is withdrawn (logged).")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def withdraw(
    ctx: click.Context,
    slug: str,
    why: str,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Take SLUG out of the queue (any state but applying), to withdrawn, logged with WHY.

    A blocked or remediating candidate's follow-up is marked withdrawn
    (state.yaml status: withdrawn). The slug is free for a new submit.
    """
    s = session_of(ctx)
    check_slug(slug)
    if not why.strip():
        raise UsageError("--why needs a reason: say why the candidate is withdrawn")
    _key_text(why, "--why")
    _key_text(idempotency_key, "--idempotency-key")
    engine = s.engine()
    outcome = engine.withdraw(
        slug, why=why, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    note = _withdraw_follow_up(s, outcome)
    _cancel_builds(s, slug, "withdrawn")
    code = _emit_outcome(s, outcome)
    if note is not None:
        click.echo(f"mergegate: {note}", err=True)
    return code


def _cancel_builds(s: Session, slug: str, why: str) -> None:
    """Cancel the CI builds still open for ``slug``: their results no longer count."""
    from .cirunner import cancel_open_builds  # noqa: PLC0415  (only with builds to cancel)

    for problem in cancel_open_builds(s.config(), s.store(), slug, why):
        click.echo(f"mergegate: {problem}", err=True)


def _withdraw_follow_up(s: Session, outcome: Outcome) -> str | None:
    """Mark the withdrawn candidate's follow-up withdrawn; a failure is reported, not raised.

    The move is committed by now: like a hook, this cannot undo it.
    """
    record = s.store().blocked_record(outcome.candidate.key)
    if record is None or outcome.transition is None:
        return None
    try:
        marked = mark_withdrawn(s.config().todos, record.follow_up_slug, boundary=s.config().repo)
    except (MergegateError, OSError) as err:
        return f"follow-up {record.follow_up_slug} not marked withdrawn: {err}"
    if marked is None:
        return f"follow-up {record.follow_up_slug} has no todo folder yet; nothing to mark"
    return f"follow-up {record.follow_up_slug} marked withdrawn ({marked})"


@cli.command()
@click.argument("slug")
@click.option("--owner", default=None, help="Who holds the integration lease (default: --actor).")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def start(
    ctx: click.Context,
    slug: str,
    owner: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Take the integration lease and move SLUG to applying (for an external apply)."""
    s = session_of(ctx)
    check_slug(slug)
    _key_text(owner, "--owner")
    _key_text(idempotency_key, "--idempotency-key")
    outcome = s.engine().start_apply(
        slug, owner=owner or s.actor, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return _emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option(
    "--reason",
    required=True,
    type=click.Choice([r.value for r in Reason]),
    help="The reason code (docs/blocked-payload.md).",
)
@click.option("--detail", default=None, help="One or two sentences on what happened.")
@click.option(
    "--conflict-file",
    "conflict_files",
    multiple=True,
    metavar="PATH",
    help="A conflicted path, relative to the repository; repeatable.",
)
@click.option(
    "--evidence-file",
    default=None,
    metavar="FILE|-",
    help="The evidence as a JSON object (docs/blocked-payload.md); - reads stdin.",
)
@click.option("--main-sha", default=None, help="The main it was tried against (default: main now).")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def block(
    ctx: click.Context,
    slug: str,
    reason: str,
    detail: str | None,
    conflict_files: tuple[str, ...],
    evidence_file: str | None,
    main_sha: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Record a blocked outcome for SLUG (from applying), or replay one (blocked, remediating)."""
    s = session_of(ctx)
    check_slug(slug)
    _key_text(idempotency_key, "--idempotency-key")
    if main_sha is not None:
        main_sha = resolve_sha(_git(s), main_sha, field="--main-sha")
    _key_text(detail, "--detail")
    evidence = Evidence() if evidence_file is None else read_evidence(evidence_file)
    # The report is checked before the repository is asked for main, so bad
    # evidence is reported as such even where main cannot be read.
    report = build_report(
        reason,
        main_sha or NULL_SHA,
        detail=detail,
        conflict_files=conflict_files,
        evidence=evidence,
    )
    if main_sha is None:
        main_sha = _main_sha(s)
        if main_sha is None:
            raise UsageError(
                f"branch {s.config().main_branch!r} does not exist in {s.repository().root}; "
                "pass --main-sha SHA"
            )
        report = attrs.evolve(report, main_sha=main_sha)
    outcome = s.engine().block(
        slug, report, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return _emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option("--main-sha", required=True, help="The sha the external apply moved main to.")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def integrate(
    ctx: click.Context,
    slug: str,
    main_sha: str,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Record that an external apply advanced main to MAIN_SHA, which contains SLUG's sha."""
    s = session_of(ctx)
    check_slug(slug)
    _key_text(idempotency_key, "--idempotency-key")
    repo, branch = s.repository(), s.config().main_branch
    full = resolve_sha(_git(s), main_sha, field="--main-sha")
    current = repo.branch_sha(branch)
    if current != full:
        shown = "nothing" if current is None else short_sha(current)
        raise IntegrateRefused(
            main_sha, f"{branch!r} points at {shown}, not at it; report the sha {branch} has now"
        )
    engine = s.engine()
    candidate = engine.get(slug)
    if not repo.is_ancestor(candidate.key.sha, full):
        raise IntegrateRefused(
            main_sha,
            f"it does not contain the candidate's sha {short_sha(candidate.key.sha)}; "
            "report integrate only after main contains the candidate, else block",
        )
    outcome = engine.integrate(
        slug, main_sha=full, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return _emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def remediate(
    ctx: click.Context, slug: str, idempotency_key: str | None, expected_seq: int | None
) -> int:
    """Move blocked SLUG to remediating: someone works on its follow-up."""
    s = session_of(ctx)
    check_slug(slug)
    _key_text(idempotency_key, "--idempotency-key")
    outcome = s.engine().start_remediation(
        slug, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return _emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option(
    "--sha",
    "new_sha",
    default=None,
    help="The fixed commit: resolved as submit's --sha is, and contained in the "
    "candidate's branch (default: the branch's tip).",
)
@click.option(
    "--same-sha",
    is_flag=True,
    help="Retry the sha a conflict or a failed check blocked: the fix was outside the code "
    "(--force implies it).",
)
@click.option("--note", default=None, help="Why, in a few words; logged with the move.")
@click.option("--force", is_flag=True, help="Resume although the follow-up is not resolved.")
@click.option("--why", default=None, help="Why the resume is forced (required with --force).")
@_IDEMPOTENCY
@_EXPECTED_SEQ
@click.pass_context
def resume(
    ctx: click.Context,
    slug: str,
    new_sha: str | None,
    same_sha: bool,
    note: str | None,
    force: bool,
    why: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Move remediating SLUG to retry at its branch's tip once its follow-up is resolved.

    Without --sha the branch's current tip is taken, resolved to the full id. If
    that is the very sha a merge conflict or a failed check blocked, resume
    refuses unless --same-sha says the fix was outside the code.
    """
    from mergegate.followups.failure import CODE_REASONS  # noqa: PLC0415

    from .errors import SameShaRefused  # noqa: PLC0415

    s = session_of(ctx)
    check_slug(slug)
    if force and (why is None or not why.strip()):
        raise UsageError("--force needs --why TEXT saying why the follow-up is skipped")
    if why is not None and not force:
        raise UsageError("--why is only used with --force; add --force or drop --why")
    if same_sha and new_sha is not None:
        raise UsageError("--same-sha keeps the blocked sha; drop --sha, or drop --same-sha")
    _key_text(why, "--why")
    _key_text(note, "--note")
    if note is not None and not note.strip():
        raise UsageError("--note needs some text saying why")
    _key_text(idempotency_key, "--idempotency-key")
    engine = s.engine()
    candidate = engine.get(slug)
    key = candidate.key
    if same_sha:
        full = key.sha
    else:
        # Resolved against the branch the candidate was submitted with: the fix
        # must be on it, as apply will require. No --sha: the branch's tip.
        git = _git(s)
        remote = _fetched(s, git, key.branch)
        full = resolve_candidate_sha(git, key.branch, new_sha, field="--sha", remote=remote)
    if full == key.sha and not (same_sha or force) and candidate.state is State.REMEDIATING:
        record = engine.show(slug).blocked
        if record is not None and record.reason in CODE_REASONS:
            # An unresolved follow-up is the first thing to fix: say that first.
            why_not = s.resolver().unresolved_reason(record)
            if why_not is not None:
                raise FollowUpNotResolved(key, record.follow_up_slug, why_not)
            raise SameShaRefused(slug, full, record.reason.value, key.branch, s.config().remote)
    outcome = engine.resume(
        slug,
        # Always the full id, even when unchanged: a retry with the same
        # idempotency key then carries the same payload as the first call.
        new_sha=full,
        force_reason=why if force else None,
        note=note,
        idempotency_key=idempotency_key,
        expected_seq=expected_seq,
    )
    return _emit_outcome(s, outcome)


@cli.command()
@click.argument("slug", required=False)
@click.pass_context
def apply(ctx: click.Context, slug: str | None) -> int:
    """Apply SLUG, or the queue's head (in queue order). Exit 3 if it ends blocked."""
    s = session_of(ctx)
    if slug is not None:
        check_slug(slug)
        beside = _beside_run(s, slug)
        if beside is not None:
            return beside
    engine, applier = s.engine(), s.applier()
    # With a remote: what developers pushed, and main as the server has it.
    applier.sync()
    try:
        if slug is None:
            outcome = engine.apply_next(applier, owner=s.lease_owner())
        else:
            outcome = engine.apply(slug, applier, owner=s.lease_owner())
    except RepositoryError as err:
        raise RepositoryError(
            err.repository,
            f"{err.problem}; a candidate this apply started stays applying "
            "until its lease expires, then `mergegate recover` settles it",
        ) from err
    if outcome is None:
        # A paused queue has no head to claim: say so (exit 4), not "nothing to apply".
        engine.controls().check_start()
        return emit(s.json, s.command, None, "nothing to apply: no pending or retry candidate\n")
    code = EXIT_BLOCKED if outcome.state is State.BLOCKED else EXIT_OK
    return _emit_outcome(s, outcome, code)


def _beside_run(s: Session, slug: str) -> int | None:
    """With a ``run`` up on this host, answer ``apply SLUG`` instead of racing it.

    The integrator takes queued candidates by itself, so a printed NEXT line
    ``mergegate apply SLUG`` run beside it says where SLUG stands and exits
    0 (3 if the integrator already blocked it); ``None`` with no integrator up,
    or for a candidate it would not take (the caller applies it then).
    """
    if not integrator_up(s.repository().state_dir):
        return None
    engine = s.engine()
    candidate = engine.get(slug)
    rows = queue_listing(engine.store.candidates())
    position = next((pos for c, pos in rows if c.id == candidate.id), None)
    state = candidate.state
    if position is not None:
        text = f"{slug}: queued at position {position}; the integrator takes it\n"
    elif state is State.APPLYING:
        text = f"{slug}: the integrator is applying it now; see `mergegate show {slug}`\n"
    elif state is State.INTEGRATED:
        text = f"{slug}: already integrated by the integrator; see `mergegate show {slug}`\n"
    elif state is State.BLOCKED:
        return _emit_outcome(s, engine.show(slug), EXIT_BLOCKED)
    else:
        return None
    result = {"slug": slug, "state": state.value, "position": position, "integrator": "run"}
    return emit(s.json, s.command, result, text)


@cli.command()
@click.pass_context
def recover(ctx: click.Context) -> int:
    """Settle every expired apply: integrate it if main contains it, else block it.

    An apply whose process is gone (same host, dead pid) is settled at once,
    without waiting for its lease to expire.

    Recovery holds main (git's lock, the one every apply moves it under) while
    it decides, so it never settles a candidate whose move is in flight; if a
    live mover holds main, it exits 4 and changes nothing.
    """
    s = session_of(ctx)
    engine = s.engine()
    main = _main_sha(s)
    stale_lock = None
    if main is None:
        outcomes = engine.recover(NULL_SHA)
    else:
        recovered = recover_now(s, main)
        outcomes, stale_lock = list(recovered.outcomes), recovered.stale_lock
    removed: list[str] = []
    cleanup_error = None
    try:
        removed = [str(p) for p in s.applier().cleanup_stale()]
    except MergegateError as err:
        cleanup_error = str(err)
    result = {
        "recovered": [outcome_json(o) for o in outcomes],
        "stale_lock_removed": stale_lock,
        "stale_worktrees_removed": removed,
        "cleanup_error": cleanup_error,
    }
    lines = [outcome_text(o) for o in outcomes] or ["no expired apply lease\n"]
    if stale_lock is not None:
        lines.insert(0, f"removed stale lock {stale_lock} of a dead mover\n")
    if removed:
        lines.append("".join(f"removed stale worktree {p}\n" for p in removed))
    if cleanup_error is not None:
        lines.append(f"worktree cleanup skipped: {cleanup_error}\n")
    return emit(s.json, s.command, result, "\n".join(lines))
