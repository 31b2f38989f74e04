"""Hooks: code that runs after a call's commit, subscribed to the moves it cares about.

A hook is registered when the Engine is built, and checked then: something that
cannot be called with the outcome is refused with a one-line error, long before
a move would have called it. After the commit the Engine runs every matching
hook in order. A hook that raises cannot undo the committed move, so it must not
look as if it had: its failure is logged with the traceback, reported on
``Outcome.hook_errors``, and the later hooks, the guidance and the log line run
as usual.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TypeAlias

import attrs

from .errors import InvalidInput
from .records import HookFailure, Outcome
from .states import Event, State
from .store import Hook

__all__ = ["HookFn", "HookLike", "Subscription", "on_enter", "on_event", "on_outcome", "run_hooks"]

logger = logging.getLogger("mergegate.hooks")

#: A hook callable: it gets the committed outcome and returns a refreshed one, or None.
HookFn = Callable[[Outcome], "Outcome | None"]

#: What ``Engine(hooks=...)`` accepts, spelled out so that a type checker refuses
#: ``hooks=[42]`` before run time does (issue 24).
HookLike: TypeAlias = "Subscription | HookFn | Hook"

_EXPECTED = (
    "give a callable taking the outcome, an object with after_commit(outcome), "
    "or on_enter/on_event/on_outcome(...)"
)


def _checked(callback: object, shown: object) -> HookFn:
    if not callable(callback):
        raise InvalidInput("hook", shown, _EXPECTED)
    try:
        inspect.signature(callback).bind(None)
    except TypeError:
        raise InvalidInput("hook", shown, "its callable must take exactly the outcome") from None
    except ValueError:
        pass  # no signature to read (some builtins): calling it is the only test left
    return callback


def _name(callback: object) -> str:
    owner = getattr(callback, "__self__", None)
    if owner is not None:
        return type(owner).__qualname__
    return str(getattr(callback, "__qualname__", type(callback).__qualname__))


@attrs.frozen
class Subscription:
    """One registered hook and what it listens to; ``None`` means "any"."""

    callback: HookFn
    name: str
    enters: frozenset[State] | None = None
    events: frozenset[Event] | None = None

    def wants(self, outcome: Outcome) -> bool:
        """True when the outcome is one this hook subscribed to."""
        entry = outcome.transition
        if self.enters is not None and (
            entry is None or entry.dest not in self.enters or entry.source is entry.dest
        ):
            return False
        return self.events is None or (entry is not None and entry.event in self.events)


def on_enter(state: State, callback: HookFn, *, name: str | None = None) -> Subscription:
    """Run ``callback`` after a move into ``state`` (an internal replay does not enter)."""
    fn = _checked(callback, callback)
    return Subscription(fn, name or _name(fn), enters=frozenset({State(state)}))


def on_event(event: Event, callback: HookFn, *, name: str | None = None) -> Subscription:
    """Run ``callback`` after every call that logged ``event``, replays included."""
    fn = _checked(callback, callback)
    return Subscription(fn, name or _name(fn), events=frozenset({Event(event)}))


def on_outcome(callback: HookFn, *, name: str | None = None) -> Subscription:
    """Run ``callback`` after every call, no-ops (a repeated submit) included."""
    fn = _checked(callback, callback)
    return Subscription(fn, name or _name(fn))


def subscription(hook: object) -> Subscription:
    """Normalize one registered hook: a Subscription, a callable, or a ``Hook`` object."""
    if isinstance(hook, Subscription):
        _checked(hook.callback, hook.name)
        return hook
    after_commit = getattr(hook, "after_commit", None)
    if after_commit is not None:
        return Subscription(_checked(after_commit, hook), type(hook).__qualname__)
    return on_outcome(_checked(hook, hook))


def subscriptions(hooks: Iterable[object]) -> tuple[Subscription, ...]:
    """Check every hook at registration; the first bad one is refused with a one-line error."""
    if not isinstance(hooks, Iterable) or isinstance(hooks, str | bytes):
        raise InvalidInput("hooks", hooks, "give a list of hooks")
    return tuple(subscription(h) for h in hooks)


def run_hooks(
    hooks: Iterable[Subscription], outcome: Outcome
) -> tuple[Outcome, tuple[HookFailure, ...]]:
    """Run the hooks that want ``outcome``, each isolated from the others' failures."""
    failures: list[HookFailure] = []
    for hook in hooks:
        if not hook.wants(outcome):
            continue
        try:
            result = hook.callback(outcome)
            if result is not None and not isinstance(result, Outcome):
                raise TypeError(f"returned {type(result).__name__}, not an Outcome or None")
        except Exception as err:
            # The move is committed whatever happens here; say so next to the traceback.
            entry = outcome.transition
            logger.exception(
                "hook %s failed after the commit of %s %s (seq %s); the move stands",
                hook.name,
                outcome.candidate.key,
                entry.event if entry is not None else "no-op",
                outcome.candidate.seq,
            )
            failures.append(HookFailure(hook.name, type(err).__name__, str(err)))
            continue
        if result is not None:
            outcome = result
    return outcome, tuple(failures)
