"""One fenced move of the remote's ``main``, and what a push that failed turns out to be.

The decision procedure of docs/apply.md, "With a remote": read the remote,
push ``main`` and the fence ref in one atomic push, and after any failure ask
the remote before deciding. A push that did not finish is fenced off (the
fence advanced past its token) before it is called failed, so it can never
land afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mergegate.statemachine import Blocked, BlockedReport, Evidence, Reason, RepositoryError

from .remote import FENCE_REF, FENCE_TRIES, NothingPushed, Remote, RemoteUnreachable

__all__ = ["push_fenced"]

# A child of the transition log's logger: the CLI writes these lines to mergegate.log.
_LOG = logging.getLogger("mergegate.transitions.remote")


def push_fenced(
    remote: Remote, main_ref: str, base: str, commit: str, heartbeat: Callable[[], None]
) -> bool | Blocked | None:
    """Move the remote's main ``base`` -> ``commit`` with the fence; ``True`` once it landed.

    ``None``: the remote's main is not at ``base`` (an outside push): nothing
    landed, follow it and try again. Blocked: the server refused (its own
    words in the evidence), or a push that did not finish was fenced off so
    it can never land. Raises RemoteUnreachable when the remote cannot be
    asked whether a push landed: the candidate then stays ``applying`` and
    recovery (which advances the fence first) decides.
    """
    for attempt in range(FENCE_TRIES):
        try:
            state = remote.read(main_ref)
        except RemoteUnreachable as err:
            if attempt:
                raise
            # Nothing was pushed yet, so nothing can land: say so, and the run
            # gives the candidate back to the queue instead of leaving it applying.
            raise NothingPushed(
                str(remote.git.repo),
                remote.name,
                f"cannot read its refs, so nothing of {commit[:12]} was pushed",
                str(err).rpartition("cannot read its refs: ")[2],
            ) from err
        if state.main != base:
            return None
        token = remote.token(f"move {main_ref} {base[:12]} -> {commit[:12]}")
        pushed = remote.push([(main_ref, commit, base), (FENCE_REF, token, state.fence)])
        if pushed.landed:
            return True
        # A push that failed is not yet a push that did not happen: ask the remote.
        try:
            now = remote.read(main_ref)
        except RemoteUnreachable as err:
            raise RemoteUnreachable(
                str(remote.git.repo),
                remote.name,
                f"the push of {commit[:12]} to {main_ref} did not finish "
                f"({pushed.said}) and the remote cannot be asked whether it landed",
                f"{str(err).partition(': ')[2]}; `mergegate recover` decides once it answers",
            ) from err
        if now.main == commit:
            return True
        if now.main != base:
            return None
        if now.fence != state.fence:
            # The fence moved, main did not: a recovery elsewhere (then our
            # lease is gone and the heartbeat raises) or a hand. Go again.
            heartbeat()
            _LOG.warning(
                "event=fence_moved remote=%s ref=%s expected=%s found=%s "
                'why="moved outside this push (by hand, or another clone) while main did not; '
                'pushing again with the new token"',
                remote.name,
                FENCE_REF,
                (state.fence or "none")[:12],
                (now.fence or "none")[:12],
            )
            continue
        if pushed.refused:
            return Blocked(
                BlockedReport(
                    Reason.PUSH_REJECTED,
                    base,
                    Evidence(
                        diagnostic=f"{remote.name} refused the push of {commit[:12]} to "
                        f"{main_ref}: {pushed.said}"
                    ),
                )
            )
        # Undecided (a timeout, a dropped connection): the server may still
        # land it. Fence it off; then whether it landed is final.
        before, _token = remote.advance_fence(
            f"fence off the unfinished push of {commit[:12]}", main_ref
        )
        if before.main == commit:
            return True
        if before.main != base:
            return None
        return Blocked(
            BlockedReport(
                Reason.PUSH_REJECTED,
                base,
                Evidence(
                    diagnostic=f"the push of {commit[:12]} to {remote.name} {main_ref} "
                    f"did not finish within push_timeout={remote.timeout:g}s "
                    f"({pushed.said}); {FENCE_REF} was advanced so it can never land, "
                    "and main did not move"
                ),
            )
        )
    raise RepositoryError(
        str(remote.git.repo),
        f"{FENCE_REF} on {remote.name} moved during each of {FENCE_TRIES} pushes while main "
        "did not; something outside mergegate moves it: stop it, then run again",
    )
