"""The remote is canonical: its ``main`` moves only with the fence token, checked by the server.

A local lock cannot stop a push the server already has: the server's
receive-pack outlives a killed client and may update ``main`` after recovery
decided. So every move of the remote's ``main`` is one atomic push
(``git push --atomic``) that also moves the fence ref, ``refs/mergegate/fence``,
each ref with its expected old value (``--force-with-lease``), and the server
applies both or neither in one ref transaction. Recovery first advances the
fence by a compare-and-swap of its own; from then on, any push prepared
before (it expects the old token) is refused by the server itself, and what
the remote's ``main`` holds is final for the decision.

A fence token is a commit of the empty tree whose message says who made it
and why, with a random nonce: two tokens are never equal, so an old token
can never match again (no ABA), and ``git log refs/mergegate/fence`` on the
server shows the latest one. Commits, not blobs: every forge accepts a ref to
a commit.

Candidate branches are fetched into ``refs/remotes/<remote>/<branch>`` and
the remote's ``main`` into ``refs/remotes/<remote>/<main>``: names that never
collide with a checked-out ``main`` (git refuses to fetch into that).

Several mergegate processes on one clone (``run`` and a ``submit``, or two
runs) fetch into these same refs, and git locks each ref it updates with
a compare-and-swap against the value it read before the transfer: the loser
of that race fails with ``cannot lock ref '…': is at … but expected …`` (or
``….lock': File exists``) although nothing is wrong. Such a failure is
contention, not a fault: the fetch is made again, at most
:data:`FETCH_TRIES` times, each retry logged (``event=fetch_contended``);
the objects are already here, so a retry only rewrites the refs. Only when
every try lost is it :class:`FetchContended` (exit 4, "run it again").
See docs/apply.md, "Several processes fetching on one clone".
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
import uuid
from collections.abc import Sequence

import attrs

from mergegate.statemachine import RepositoryError

from .errors import GitCommandFailed
from .git import Git
from .liveness import this_host

__all__ = [
    "FENCE_REF",
    "FenceMoving",
    "FetchContended",
    "Pushed",
    "Remote",
    "RemoteState",
    "NothingPushed",
    "RemoteUnreachable",
]

#: The ref whose value is the current fencing token, on the remote.
FENCE_REF = "refs/mergegate/fence"

#: How many times a fence advance re-reads and tries again when the fence moved under it.
FENCE_TRIES = 5

#: How many times a fetch is made when another process on this clone keeps
#: updating the same remote-tracking refs at the same moment (git's ref lock).
FETCH_TRIES = 8

# git's words when another process updated or holds a ref this one is updating:
# "cannot lock ref 'X': is at A but expected B", "Unable to create '….lock':
# File exists", "cannot lock ref 'X': reference already exists" (both created it).
_CONTENDED = re.compile(
    r"cannot lock ref '[^']*': (is at [0-9a-f]+ but expected|reference already exists)"
    r"|\.lock': File exists"
)

_LOG = logging.getLogger("mergegate.transitions.remote")

# A porcelain line of git push: flag, tab, from:to, tab, summary.
_PORCELAIN = re.compile(r"^(?P<flag>[ +\-*!=])\t(?P<src>[^:\t]*):(?P<dst>[^\t]+)\t(?P<summary>.*)$")


class RemoteUnreachable(RepositoryError):
    """The remote could not be read or written (down, slow past the timeout, refusing us)."""

    remote: str

    def __init__(self, repository: str, remote: str, what: str, why: str) -> None:
        super().__init__(repository, f"remote {remote}: {what}: {why}")
        self.remote = remote


class NothingPushed(RemoteUnreachable):
    """The remote could not be read before a push was made: nothing can land, nothing moved.

    The candidate's apply may be given back to the queue as it is (a host
    event, not the candidate's fault), unlike a push that was made and whose
    outcome is unknown, which recovery must decide after advancing the fence.
    """


class FetchContended(RemoteUnreachable):
    """Another process on this clone updated the same remote-tracking refs during every try.

    Nothing is wrong with the remote or the repository: the same command
    succeeds when run again (exit 4, like any concurrent writer that won).
    """


def contended(stderr: str) -> bool:
    """Whether git failed only because another process updated or held the same ref."""
    return _CONTENDED.search(stderr) is not None


class FenceMoving(RepositoryError):
    """The fence kept moving while recovery tried to advance it; nothing was decided."""


@attrs.frozen
class RemoteState:
    """What the remote's ``main`` and fence point at (``None``: the ref does not exist)."""

    main: str | None
    fence: str | None


@attrs.frozen
class Pushed:
    """What one atomic push did: landed, refused by someone (``refused``), or undecided.

    ``said`` holds the server's own words (its ``remote:`` lines and the
    refusal reasons) or git's, for the evidence.
    """

    landed: bool
    refused: bool
    said: str


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


@attrs.define
class Remote:
    """One configured remote of the integration repository, as mergegate talks to it."""

    git: Git
    name: str
    timeout: float
    _empty_tree: str | None = None

    def _run(self, what: str, *args: str, ok: Sequence[int] = (0,)) -> str:
        """Run a git command that talks to the remote; any failure is RemoteUnreachable."""
        try:
            return self.git.run(*args, timeout=self.timeout, ok=ok, die_with_parent=True).text
        except GitCommandFailed as err:
            raise RemoteUnreachable(
                str(self.git.repo), self.name, what, _first_line(err.stderr)
            ) from err
        except RepositoryError as err:
            said = str(err).partition(": ")[2] or str(err)
            raise RemoteUnreachable(str(self.git.repo), self.name, what, said) from err

    def read(self, main_ref: str) -> RemoteState:
        """The remote's ``main`` and fence now (one ``ls-remote``); raises RemoteUnreachable."""
        out = self._run(
            "cannot read its refs", "ls-remote", "--end-of-options", self.name, main_ref, FENCE_REF
        )
        found: dict[str, str] = {}
        for line in out.split("\n"):
            sha, _, ref = line.partition("\t")
            if ref in (main_ref, FENCE_REF):
                found[ref] = sha
        return RemoteState(found.get(main_ref), found.get(FENCE_REF))

    def tracking(self, branch: str) -> str:
        """Where ``branch`` of the remote is fetched to: ``refs/remotes/<remote>/<branch>``."""
        return f"refs/remotes/{self.name}/{branch}"

    def fetch_all(self) -> None:
        """Fetch every branch of the remote into ``refs/remotes/<remote>/*``, pruning deleted ones.

        git's own default refspec: the checked-out ``main`` is never written.
        """
        self._fetch([f"+refs/heads/*:refs/remotes/{self.name}/*"], prune=True)

    def fetch_main(self, main_ref: str) -> str:
        """Fetch the remote's ``main`` into its tracking ref; return its sha."""
        branch = main_ref.removeprefix("refs/heads/")
        dest = self.tracking(branch)
        self._fetch([f"+{main_ref}:{dest}"])
        return self.git.run("rev-parse", "--verify", "--end-of-options", f"{dest}^{{commit}}").text

    def fetch_branches(self, branches: Sequence[str]) -> list[str]:
        """Fetch each branch into its tracking ref; return those the remote does not have.

        The tracking ref of a branch that is gone from the remote is deleted, so
        a branch deleted on the server is never taken from a stale copy.
        """
        wanted = sorted(set(branches))
        if not wanted:
            return []
        out = self._run(
            "cannot read its branches",
            "ls-remote",
            "--heads",
            "--end-of-options",
            self.name,
            *(f"refs/heads/{b}" for b in wanted),
        )
        there = {line.partition("\t")[2] for line in out.split("\n") if line}
        present = [b for b in wanted if f"refs/heads/{b}" in there]
        missing = [b for b in wanted if f"refs/heads/{b}" not in there]
        if present:
            self._fetch([f"+refs/heads/{b}:{self.tracking(b)}" for b in present])
        for branch in missing:
            self._contending(
                "cannot forget a deleted branch",
                ("update-ref", "-d", "--end-of-options", self.tracking(branch)),
                remote=False,
            )
        return missing

    def _fetch(self, refspecs: Sequence[str], *, prune: bool = False) -> None:
        self._contending(
            "cannot fetch",
            (
                "fetch",
                "-q",
                *(["--prune"] if prune else []),
                "--no-tags",
                "--no-write-fetch-head",
                "--end-of-options",
                self.name,
                *refspecs,
            ),
        )

    def _contending(self, what: str, args: Sequence[str], *, remote: bool = True) -> None:
        """Run ``args``; when another process won git's lock on a ref, run it again.

        A bounded, logged retry (module docstring): up to :data:`FETCH_TRIES`
        tries, a short random pause between them so two losers do not meet
        again. Any other failure raises RemoteUnreachable (or, for a local
        ``update-ref``, RepositoryError) at once; contention on every try
        raises FetchContended.
        """
        said = ""
        for attempt in range(1, FETCH_TRIES + 1):
            try:
                if remote:
                    self.git.run(*args, timeout=self.timeout, die_with_parent=True)
                else:
                    self.git.run(*args)
                return
            except GitCommandFailed as err:
                said = _first_line(err.stderr)
                if not contended(err.stderr):
                    if not remote:
                        raise
                    raise RemoteUnreachable(str(self.git.repo), self.name, what, said) from err
            except RepositoryError as err:
                if not remote:
                    raise
                said = str(err).partition(": ")[2] or str(err)
                raise RemoteUnreachable(str(self.git.repo), self.name, what, said) from err
            # A logged decision: git's ref lock was lost to another process on this clone.
            _LOG.info(
                "event=fetch_contended remote=%s try=%d of=%d git=%r",
                self.name,
                attempt,
                FETCH_TRIES,
                said,
            )
            time.sleep(random.uniform(0.02, 0.1) * attempt)  # jitter: two losers do not meet again
        raise FetchContended(
            str(self.git.repo),
            self.name,
            what,
            f"another process on this clone kept updating the same refs during each of "
            f"{FETCH_TRIES} tries (git: {said.removeprefix('error: ')}); run the command again",
        )

    def token(self, purpose: str) -> str:
        """A new fence token: a commit of the empty tree, unique by its nonce."""
        if self._empty_tree is None:
            self._empty_tree = self.git.run("mktree", stdin=b"").text
        message = (
            f"mergegate fence: {purpose}\n\n"
            f"Fence-Holder: {this_host()}:{os.getpid()}\n"
            f"Fence-Nonce: {uuid.uuid4().hex}\n"
        )
        return self.git.run(
            "commit-tree", "-F", "-", "--end-of-options", self._empty_tree, stdin=message.encode()
        ).text

    def push(self, updates: Sequence[tuple[str, str, str | None]]) -> Pushed:
        """Push every ``(ref, new, expected old)`` in ONE atomic push; the server checks each old.

        ``None`` as the old value means the ref must not exist yet. Never
        raises for the push itself: a failure the server did not decide (a
        timeout, a dropped connection) is ``Pushed(landed=False, refused=False)``.
        """
        leases = [f"--force-with-lease={ref}:{old or ''}" for ref, _new, old in updates]
        specs = [f"{new}:{ref}" for ref, new, _old in updates]
        try:
            out = self.git.run(
                "push",
                "--atomic",
                "--porcelain",
                *leases,
                "--end-of-options",
                self.name,
                *specs,
                ok=range(256),
                timeout=self.timeout,
                # A push that outlived a killed mover is harmless now (the fence
                # refuses it), but a dead mover's push should not linger either.
                die_with_parent=True,
            )
        except RepositoryError as err:
            return Pushed(False, False, str(err).partition(": ")[2] or str(err))
        stdout = out.stdout.decode("utf-8", "replace")
        stderr = out.stderr.decode("utf-8", "replace")
        results = [m for m in map(_PORCELAIN.match, stdout.splitlines()) if m is not None]
        if out.returncode == 0 and results and all(m["flag"] != "!" for m in results):
            return Pushed(True, False, "")
        refused = any(m["flag"] == "!" for m in results)
        return Pushed(False, refused, _said(results, stderr))

    def advance_fence(self, purpose: str, main_ref: str) -> tuple[RemoteState, str]:
        """Move the fence to a new token by compare-and-swap; return the state it moved from.

        After this returns, no push prepared with the old token can land: the
        server refuses it. Raises RemoteUnreachable if the remote cannot be
        reached, FenceMoving if the fence moved under every one of the tries.
        """
        for _ in range(FENCE_TRIES):
            before = self.read(main_ref)
            token = self.token(purpose)
            pushed = self.push([(FENCE_REF, token, before.fence)])
            if pushed.landed:
                if before.fence is None:
                    # A logged decision: a fence deleted by hand is created again.
                    _LOG.warning(
                        "event=fence_created remote=%s ref=%s token=%s "
                        'why="there was none: a first run, or it was deleted by hand"',
                        self.name,
                        FENCE_REF,
                        token[:12],
                    )
                return before, token
            if not pushed.refused:
                raise RemoteUnreachable(
                    str(self.git.repo), self.name, f"cannot advance {FENCE_REF}", pushed.said
                )
            # Refused: the fence moved since we read it (a late push landed, or
            # another recoverer); read it again. A refusal that is not a moved
            # fence (a hook) shows as the same state twice.
            again = self.read(main_ref)
            if again == before:
                raise RemoteUnreachable(
                    str(self.git.repo),
                    self.name,
                    f"the server refused to advance {FENCE_REF}",
                    pushed.said,
                )
        raise FenceMoving(
            str(self.git.repo),
            f"{FENCE_REF} on {self.name} moved during each of {FENCE_TRIES} tries to advance "
            "it; something outside this integrator keeps moving it: stop it, then run again",
        )


def _said(results: Sequence[re.Match[str]], stderr: str) -> str:
    """The server's own words: its ``remote:`` lines, then each refusal with its ref."""
    remote = [
        line.removeprefix("remote:").strip()
        for line in stderr.splitlines()
        if line.startswith("remote:") and line.removeprefix("remote:").strip()
    ]
    refusals = [f"{m['dst']} {m['summary']}" for m in results if m["flag"] == "!"]
    errors = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip()
        and not line.startswith("remote:")
        and "failed to push some refs" not in line
    ]
    words = remote + refusals if (remote or refusals) else errors
    return "; ".join(words) or "no message"
