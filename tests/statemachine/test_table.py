"""The lifecycle table and the shared transitions machine built from it."""

from __future__ import annotations

import pytest

from mergegate.statemachine import TABLE, Event, LifecycleMachine, Rule, State, Table, lifecycle


def test_table_matches_the_documented_lifecycle() -> None:
    """Every documented move, and no other, is in the table."""
    expected = {
        (None, Event.SUBMIT, State.PENDING),
        (State.PENDING, Event.START_APPLY, State.APPLYING),
        (State.RETRY, Event.START_APPLY, State.APPLYING),
        (State.APPLYING, Event.INTEGRATE, State.INTEGRATED),
        (State.APPLYING, Event.BLOCK, State.BLOCKED),
        (State.BLOCKED, Event.BLOCK, State.BLOCKED),
        (State.REMEDIATING, Event.BLOCK, State.REMEDIATING),
        (State.APPLYING, Event.INTERRUPT, State.BLOCKED),
        (State.BLOCKED, Event.START_REMEDIATION, State.REMEDIATING),
        (State.REMEDIATING, Event.RESUME, State.RETRY),
    }
    assert set(TABLE.edges()) == expected


def test_only_integrated_is_terminal() -> None:
    """Integrated has no way out; every other state has one."""
    assert TABLE.events_from(State.INTEGRATED) == ()
    for state in State:
        if state is not State.INTEGRATED:
            assert TABLE.events_from(state)


def test_duplicate_rule_is_rejected_at_build_time() -> None:
    """A table with two rules for one (state, event) cannot be built."""
    with pytest.raises(ValueError, match="duplicate transition"):
        Table((*TABLE.rules, Rule(Event.BLOCK, (State.APPLYING,), State.RETRY, "dup")))


def test_dead_end_state_is_rejected_at_build_time() -> None:
    """A table that strands a non-terminal state cannot be built."""
    rules = tuple(r for r in TABLE.rules if r.event is not Event.RESUME)
    with pytest.raises(ValueError, match="remediating has no way out"):
        Table(rules)


def test_machine_is_shared_and_agrees_with_table() -> None:
    """One machine serves every candidate and answers exactly as the table does."""
    machine = lifecycle()
    assert machine is lifecycle()
    for source in (None, *State):
        for event in Event:
            assert machine.destination(source, event) == TABLE.destination(source, event)
    assert machine.is_internal(State.BLOCKED, Event.BLOCK)
    assert not machine.is_internal(State.APPLYING, Event.BLOCK)
    assert machine.machine.models == []


def test_machine_refuses_invalid_triggers() -> None:
    """The transitions machine is built strict: no auto transitions, no ignored triggers."""
    machine = LifecycleMachine()
    assert machine.machine.auto_transitions is False
    assert machine.machine.ignore_invalid_triggers is False
    assert "to_pending" not in machine.machine.events
