"""The configuration's records: :class:`Config`, its checks and notifications, and the
ranges their numbers must fall in.

The records check their numbers too, so one built in Python cannot carry what
the file reader (``configfile.py``) refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from mergegate.followups import DEFAULT_GROUP
from mergegate.statemachine import InvalidInput

from .ciconfig import BuildbotConfig

__all__ = [
    "CHECK_TIMEOUT_RANGE",
    "CONFIG_FILE",
    "GUIDANCE_NAMES",
    "NOTIFY_DEFAULT_ON",
    "NOTIFY_ON",
    "NOTIFY_TIMEOUT_RANGE",
    "NotifyConfig",
    "LEASE_TTL_RANGE",
    "MAX_MAIN_RETRIES_RANGE",
    "PUSH_TIMEOUT_RANGE",
    "CheckConfig",
    "Config",
]

CONFIG_FILE = "mergegate.toml"
GUIDANCE_NAMES = ("remediate", "resume", "apply", "show", "sync", "done", "approve")
# Seconds. Below 1 s the heartbeat (a third of the TTL) leaves no room for one
# git step between two renewals; above a day, a crashed apply would hold the
# queue for longer than anyone waits, and 1e12 overflows the lease's datetime.
LEASE_TTL_RANGE = (1.0, 86_400.0)
# Seconds. A check that needs more than a day is a job for CI, not a gate.
CHECK_TIMEOUT_RANGE = (1.0, 86_400.0)
MAX_MAIN_RETRIES_RANGE = (0, 100)
#: Seconds one talk with the remote (a push, a fetch, an ls-remote) may take.
PUSH_TIMEOUT_RANGE = (1.0, 3600.0)


def _between(low: float, high: float) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not (low <= value <= high):
            raise InvalidInput(attribute.name, value, f"give {low:g} to {high:g}")

    return check


@attrs.frozen
class CheckConfig:
    """One check run on the merged tree before ``main`` moves."""

    name: str
    argv: tuple[str, ...]
    timeout: float = attrs.field(default=600.0, validator=_between(*CHECK_TIMEOUT_RANGE))
    shell: bool = False
    #: Runs again after a failure, at most this many times (a pass then is flaky).
    retries: int = 0


#: What a notification command may be run on (docs/configuration.md, ``[[notify]]``):
#: a candidate's moves, then the integrator's presence. ``notify`` in the payload names it.
NOTIFY_ON = (
    "blocked",
    "integrated",
    "withdrawn",
    "requeued",
    "superseded",
    "integrator_down",
    "integrator_back",
)
#: Without ``on``: the two events every ``[[notify]]`` ran on before the others existed,
#: so a configuration written then sends what it sent.
NOTIFY_DEFAULT_ON = ("blocked", "integrated")
NOTIFY_TIMEOUT_RANGE = (0.1, 600.0)


@attrs.frozen
class NotifyConfig:
    """One ``[[notify]]`` command: run after a move into a state of ``on``, outcome on stdin."""

    argv: tuple[str, ...]
    on: tuple[str, ...] = NOTIFY_DEFAULT_ON
    timeout: float = attrs.field(default=10.0, validator=_between(*NOTIFY_TIMEOUT_RANGE))
    shell: bool = False


@attrs.frozen
class Config:
    """The settings of one repository; every path is absolute and inside ``repo``.

    Numbers out of their range raise InvalidInput here too, so a record built
    in Python cannot carry what the file reader refuses.
    """

    repo: Path
    todos: Path
    roadmap: Path
    source: str | None = None
    main_branch: str = "main"
    remote: str | None = None
    follow_up_group: str | None = DEFAULT_GROUP
    max_main_retries: int = attrs.field(default=3, validator=_between(*MAX_MAIN_RETRIES_RANGE))
    lease_ttl: float = attrs.field(default=600.0, validator=_between(*LEASE_TTL_RANGE))
    push_timeout: float = attrs.field(default=120.0, validator=_between(*PUSH_TIMEOUT_RANGE))
    checks: tuple[CheckConfig, ...] = ()
    guidance: tuple[tuple[str, str], ...] = ()
    notify: tuple[NotifyConfig, ...] = ()
    #: The resolved rules (docs/followups.md): state-done, folder-removed or roadmap-gone;
    #: several (``resolved = [...]``) combine as ``resolved_combine`` says.
    #: Names, not ``ResolvedRule``: a plain read must not load the follow-up writers.
    resolved: tuple[str, ...] = ("state-done",)
    resolved_combine: Literal["any", "all"] = "any"
    #: Checks on an existing Buildbot instead of ``checks`` (docs/buildbot.md).
    buildbot: BuildbotConfig | None = None

    @classmethod
    def defaults(cls, repo: Path) -> Config:
        """The default values for ``repo``, unchecked; ``configfile.load_config`` checks them."""
        return cls(repo, repo / "todos", repo / "todos" / "roadmap.yaml")

    @property
    def todos_label(self) -> str:
        """The todos folder relative to the repository, as guidance prints it."""
        return self.todos.relative_to(self.repo).as_posix() or "."
