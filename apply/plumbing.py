"""The git plumbing one apply is made of, each step one command and a typed result.

None of these touch a checkout or write a ref, except :func:`compare_and_swap`
(which writes ``main`` only if it still points where we left it). The fenced
push to a remote is in ``remote.py``.
"""

from __future__ import annotations

import attrs

from mergegate.statemachine import RepositoryError

from .errors import GitCommandFailed
from .git import Git

__all__ = [
    "Conflict",
    "Lookup",
    "Merged",
    "compare_and_swap",
    "commit_tree",
    "is_ancestor",
    "lookup",
    "parse_lookup",
    "merge_trees",
    "remote_main",
]


@attrs.frozen
class Lookup:
    """What one name resolved to: its object id and type, or why it did not."""

    name: str
    oid: str | None
    type: str | None
    problem: str | None

    @property
    def commit(self) -> str | None:
        """The object id if the name resolved to a commit, else ``None``."""
        return self.oid if self.type == "commit" else None


def parse_lookup(name: str, line: str) -> Lookup:
    """Read one ``cat-file --batch-check`` answer about ``name``."""
    if line.endswith((" missing", " ambiguous")):
        return Lookup(name, None, None, line.rsplit(" ", 1)[1])
    oid, type_, _size = line.split(" ")
    return Lookup(name, oid, type_, None)


def lookup(git: Git, *names: str) -> list[Lookup]:
    """Resolve every name in ONE ``git cat-file --batch-check`` process, in order.

    The names go through stdin, one a line, so none can be read as an option.
    """
    stdin = "".join(f"{name}\n" for name in names).encode()
    lines = git.run("cat-file", "--batch-check", stdin=stdin).text.split("\n")
    return [parse_lookup(n, line) for n, line in zip(names, lines, strict=True)]


@attrs.frozen
class Merged:
    """A clean merge: the tree object it produced."""

    tree: str


@attrs.frozen
class Conflict:
    """A conflicted merge: the conflicted paths, sorted and without duplicates."""

    paths: tuple[str, ...]


def merge_trees(git: Git, ours: str, theirs: str) -> Merged | Conflict:
    """Merge two commits with ``git merge-tree --write-tree``; no checkout is touched."""
    out = git.run(
        "merge-tree",
        "--write-tree",
        "--name-only",
        "-z",
        "--no-messages",
        "--end-of-options",
        ours,
        theirs,
        ok=(0, 1),
    )
    fields = out.stdout.decode("utf-8", "surrogateescape").split("\0")
    tree = fields[0]
    if out.returncode == 0:
        return Merged(tree)
    paths = tuple(sorted({p for p in fields[1:] if p}))
    if not tree or not paths:
        # Exit status 1 without a tree or paths is git failing, not a conflict.
        raise GitCommandFailed(
            str(git.repo), ("merge-tree", "--write-tree"), 1, out.stderr.decode("utf-8", "replace")
        )
    return Conflict(paths)


def is_ancestor(git: Git, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is contained in ``descendant``'s history."""
    out = git.run(
        "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant, ok=(0, 1)
    )
    return out.returncode == 0


def commit_tree(git: Git, tree: str, parents: tuple[str, ...], message: str) -> str:
    """Write a commit of ``tree`` with ``parents``; return its id. Writes no ref."""
    args = ["commit-tree"]
    for parent in parents:
        args += ["-p", parent]
    return git.run(*args, "-F", "-", "--end-of-options", tree, stdin=message.encode()).text


def compare_and_swap(git: Git, ref: str, new: str, old: str, reason: str) -> bool:
    """Point ``ref`` at ``new`` only if it still points at ``old``; say whether it did.

    Raises GitCommandFailed if the update failed for another reason than a moved ref.
    """
    try:
        git.run("update-ref", "-m", reason, "--end-of-options", ref, new, old)
    except GitCommandFailed as err:
        now = lookup(git, ref)[0].oid
        if now != old:
            return False
        raise err from None
    return True


def remote_main(git: Git, remote: str, ref: str, timeout: float) -> str:
    """The sha ``remote``'s ``ref`` points at, with its objects fetched (no ref is written).

    Raises RepositoryError if the remote cannot be read or has no such ref.
    """
    out = git.run("ls-remote", "--end-of-options", remote, ref, timeout=timeout).text
    shas = [line.split("\t")[0] for line in out.split("\n") if line.endswith(f"\t{ref}")]
    if not shas:
        raise RepositoryError(str(git.repo), f"remote {remote} has no {ref}; create it first")
    git.run(
        "fetch",
        "-q",
        "--no-write-fetch-head",
        "--no-tags",
        # No opportunistic update of refs/remotes/<remote>/*: this fetch takes
        # no ref lock, so it never contends with another process's fetch.
        "--refmap=",
        "--end-of-options",
        remote,
        ref,
        timeout=timeout,
    )
    return shas[0]
