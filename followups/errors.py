"""The errors of the follow-up component.

Each one is a :class:`~mergegate.statemachine.MergegateError` and also the
builtin a caller would catch: a todo folder that belongs to someone else is a
``FileExistsError``, a bad roadmap or template is a ``ValueError``.
"""

from __future__ import annotations

from mergegate.statemachine import CandidateKey, MergegateError

__all__ = [
    "FollowUpConflict",
    "FollowUpError",
    "InvalidTemplate",
    "LockTimeout",
    "MalformedRoadmap",
    "PathOutsideRepository",
    "PathOutsideTodos",
    "UnsafeFile",
]


class FollowUpError(MergegateError):
    """The root of the follow-up errors; the blocked hook records these instead of raising."""


class FollowUpConflict(FollowUpError, FileExistsError):
    """The todo folder exists but links another candidate (or none); nothing was written."""

    path: str
    #: The identity the folder should link.
    expected: CandidateKey
    #: The identity it links (its input.md's Source), or ``None`` for no readable linkage.
    found: CandidateKey | None

    def __init__(self, path: str, expected: CandidateKey, found: CandidateKey | None) -> None:
        shown = "no source linkage" if found is None else f"candidate {found}"
        super().__init__(
            f"todo folder {path} already exists with {shown}, not {expected}; "
            "move that folder away or rename it, then run `mergegate followups sync`",
            path=path,
            expected=expected,
            found=found,
        )


class MalformedRoadmap(FollowUpError, ValueError):
    """The roadmap file is not a YAML list of ``{slug, ...}`` entries; it was left untouched."""

    path: str

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"roadmap {path} is malformed ({problem}); it was left untouched. "
            "Fix it to be a YAML list of mappings with a 'slug' key",
            path=path,
        )


class PathOutsideTodos(FollowUpError, ValueError):
    """A follow-up slug would resolve to a path outside the todos folder; nothing was written."""

    slug: str
    root: str

    def __init__(self, slug: str, root: str, resolved: str) -> None:
        super().__init__(
            f"follow-up {slug!r} resolves to {resolved}, outside the todos folder {root}; "
            "remove the symlink or entry that points out of it",
            slug=slug,
            root=root,
        )


class PathOutsideRepository(FollowUpError, ValueError):
    """A configured or default path resolves outside the repository; nothing was written."""

    key: str
    path: str
    resolved: str
    root: str

    def __init__(self, key: str, path: str, resolved: str, root: str) -> None:
        super().__init__(
            f"{key} {path} resolves to {resolved}, outside the repository {root}; "
            "remove the symlink that points out of it, or choose a path inside it",
            key=key,
            path=path,
            resolved=resolved,
            root=root,
        )


class UnsafeFile(FollowUpError, OSError):
    """A file mergegate reads or writes under the todos folder is a symlink or not a regular
    file; it was neither followed nor changed."""

    path: str
    problem: str

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path} {problem}; mergegate never follows a link under the todos folder: "
            "replace it with a regular file (or remove it)",
            path=path,
            problem=problem,
        )


class LockTimeout(FollowUpError, TimeoutError):
    """Another writer held the roadmap lock for longer than the timeout; nothing was written."""

    path: str
    timeout: float

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            f"could not lock {path} within {timeout:g}s: another writer holds it; "
            "retry with `mergegate followups sync`",
            path=path,
            timeout=timeout,
        )


class InvalidTemplate(FollowUpError, ValueError):
    """A guidance command template is not usable; the templates were not built."""

    name: str
    template: str

    def __init__(self, name: str, template: str, problem: str, allowed: tuple[str, ...]) -> None:
        names = ", ".join("{" + a + "}" for a in allowed)
        super().__init__(
            f"guidance template {name}={template!r}: {problem}; "
            f"use one line with only these placeholders: {names}",
            name=name,
            template=template,
        )
