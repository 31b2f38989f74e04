"""The lifecycle table: its moves, the effects it checks, and what is derived from it."""

from __future__ import annotations

import enum

import pytest

from mergegate.cli.diagram import dot, lifecycle_section, mermaid
from mergegate.statemachine import (
    TABLE,
    Effect,
    Event,
    Rule,
    State,
    Table,
    TableError,
)
from mergegate.statemachine._machine import LifecycleMachine, lifecycle


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
        (State.PENDING, Event.SUPERSEDE, State.PENDING),
        (State.RETRY, Event.SUPERSEDE, State.RETRY),
        (State.PENDING, Event.WITHDRAW, State.WITHDRAWN),
        (State.RETRY, Event.WITHDRAW, State.WITHDRAWN),
        (State.BLOCKED, Event.WITHDRAW, State.WITHDRAWN),
        (State.REMEDIATING, Event.WITHDRAW, State.WITHDRAWN),
        (State.APPLYING, Event.REQUEUE, State.PENDING),
    }
    assert set(TABLE.edges()) == expected


def test_state_sets_are_derived_from_the_rules() -> None:
    """Terminal, active, queued, leased, blocked-carrying and released states follow from rules."""
    assert TABLE.states == tuple(State)
    assert TABLE.initial is State.PENDING
    assert TABLE.terminal == {State.INTEGRATED, State.WITHDRAWN}
    assert TABLE.active == set(State) - {State.INTEGRATED, State.WITHDRAWN}
    assert TABLE.released == {State.WITHDRAWN}
    assert TABLE.events_from(State.WITHDRAWN) == ()
    assert TABLE.queued == {State.PENDING, State.RETRY}
    assert TABLE.leased == {State.APPLYING}
    assert TABLE.carrying_blocked == {State.BLOCKED, State.REMEDIATING}
    assert TABLE.events_from(State.INTEGRATED) == ()


def test_effects_are_where_the_lifecycle_says() -> None:
    """The lease is taken by start_apply and released by every move out of applying."""
    for source, event, dest in TABLE.edges():
        effects = TABLE.rule(source, event).effects  # type: ignore[union-attr]
        assert (Effect.TAKE_LEASE in effects) == (event is Event.START_APPLY)
        assert (Effect.RELEASE_LEASE in effects) == (source is State.APPLYING)
        assert (Effect.RECORD_BLOCK in effects) == (event in (Event.BLOCK, Event.INTERRUPT))
        assert (Effect.CLOSE_BLOCKED in effects) == (event is Event.RESUME)
        assert (Effect.SUPERSEDE_SHA in effects) == (event in (Event.RESUME, Event.SUPERSEDE))
        assert (Effect.DROP_BLOCKED in effects) == (
            event is Event.WITHDRAW and source in TABLE.carrying_blocked
        )
        assert (Effect.RELEASE_IDENTITY in effects) == (event is Event.WITHDRAW)
        assert TABLE.destination(source, event) is dest


RELEASE = Effect.RELEASE_LEASE


def _without(event: Event, effect: Effect, source: State | None = None) -> tuple[Rule, ...]:
    """The table's rules with ``effect`` dropped from ``event``'s rule (from ``source``)."""
    return tuple(
        Rule(r.event, r.sources, r.dest, r.meaning, r.effects - {effect})
        if r.event is event and (source is None or source in r.sources)
        else r
        for r in TABLE.rules
    )


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (
            (*TABLE.rules, Rule(Event.BLOCK, (State.APPLYING,), State.RETRY, "dup")),
            "duplicate transition: block from applying",
        ),
        (
            _without(Event.INTEGRATE, Effect.RELEASE_LEASE),
            "state integrated has no way out, yet it would keep a lease",
        ),
        (
            _without(Event.BLOCK, Effect.RECORD_BLOCK, State.APPLYING),
            "record_block and enqueue_follow_up go together",
        ),
        (
            _without(Event.START_APPLY, Effect.TAKE_LEASE),
            "integrate from applying to integrated releases a lease it does not hold",
        ),
        (
            tuple(r for r in TABLE.rules if r.event not in (Event.RESUME, Event.WITHDRAW)),
            "state remediating has no way out, yet it would keep",
        ),
        (
            (*TABLE.rules, Rule(Event.START_REMEDIATION, (State.PENDING,), State.BLOCKED, "x")),
            "start_remediation from pending to blocked enters a blocked-carrying state",
        ),
        (
            (*TABLE.rules, Rule(Event.START_REMEDIATION, (State.RETRY,), State.APPLYING, "x")),
            "start_remediation from retry to applying enters a leased state",
        ),
        (
            (
                *TABLE.rules,
                Rule(
                    Event.INTEGRATE, (State.PENDING,), State.INTEGRATED, "x", {Effect.RELEASE_LEASE}
                ),
            ),
            "integrate from pending to integrated releases a lease it does not hold",
        ),
        (
            (
                *TABLE.rules,
                Rule(Event.INTERRUPT, (State.PENDING,), State.BLOCKED, "x"),
            ),
            "rules of interrupt disagree on what the call must carry",
        ),
        (
            (
                *TABLE.rules,
                Rule(
                    Event.WITHDRAW, (State.APPLYING,), State.WITHDRAWN, "x", {Effect.DROP_BLOCKED}
                ),
            ),
            "withdraw from pending to withdrawn enters a leased state, so it must take the lease",
        ),
        (
            (
                *TABLE.rules,
                Rule(
                    Event.START_REMEDIATION,
                    (State.PENDING,),
                    State.WITHDRAWN,
                    "x",
                    {Effect.DROP_BLOCKED},
                ),
            ),
            "start_remediation from pending to withdrawn closes a blocked outcome it does not",
        ),
        (
            (
                *TABLE.rules,
                Rule(
                    Event.START_REMEDIATION,
                    (State.PENDING,),
                    State.RETRY,
                    "x",
                    {Effect.RELEASE_IDENTITY},
                ),
            ),
            "state retry releases its identity, so it must be terminal",
        ),
        (
            _without(Event.WITHDRAW, Effect.DROP_BLOCKED, State.BLOCKED),
            "withdraw from pending to withdrawn enters a blocked-carrying state, so it must record",
        ),
    ],
    ids=[
        "duplicate",
        "lease-not-released",
        "block-without-record",
        "lease-never-taken",
        "stranded-blocked",
        "block-without-record-entering",
        "lease-entered-without-take",
        "release-without-lease",
        "payload-disagreement",
        "withdraw-while-leased",
        "drop-without-blocked",
        "release-not-terminal",
        "withdraw-keeps-blocked",
    ],
)
def test_contradictory_tables_are_refused_at_build_time(
    rules: tuple[Rule, ...], problem: str
) -> None:
    """A rule set whose effects contradict its moves cannot be built; the error is one line."""
    with pytest.raises(TableError, match=problem) as err:
        Table(rules)
    assert "\n" not in str(err.value)


def test_machine_is_shared_and_agrees_with_table() -> None:
    """One machine serves every candidate and answers exactly as the table does."""
    machine = lifecycle()
    assert machine is lifecycle()
    for source in (None, *State):
        for event in Event:
            assert machine.destination(source, event) == TABLE.destination(source, event)
    assert machine.is_internal(State.BLOCKED, Event.BLOCK)
    assert not machine.is_internal(State.APPLYING, Event.BLOCK)


def test_the_machine_refuses_what_the_table_refuses() -> None:
    """The transitions machine built from the table raises on a trigger the table forbids."""
    from transitions import MachineError

    class Model:
        """A plain model for a private machine (the shared one has none)."""

    machine = LifecycleMachine()
    model = Model()
    machine.machine.add_model(model, initial=State.PENDING.value)
    with pytest.raises(MachineError):
        model.trigger("integrate")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        model.to_integrated()  # type: ignore[attr-defined]
    model.trigger("start_apply")  # type: ignore[attr-defined]
    assert model.state == State.APPLYING.value  # type: ignore[attr-defined]


# -- adding a state is a table row (plus its tests) -------------------------


class Scratch(enum.StrEnum):
    """The lifecycle's states plus one more, as a new state would be declared."""

    PENDING = "pending"
    APPLYING = "applying"
    BLOCKED = "blocked"
    REMEDIATING = "remediating"
    RETRY = "retry"
    INTEGRATED = "integrated"
    ABANDONED = "abandoned"


class ScratchEvent(enum.StrEnum):
    """The lifecycle's events plus the one that leads to the new state."""

    ABANDON = "abandon"


ABANDON = Rule(
    ScratchEvent.ABANDON,  # type: ignore[arg-type]
    (State.BLOCKED, State.REMEDIATING),
    Scratch.ABANDONED,  # type: ignore[arg-type]
    "the work item was given up",
    {Effect.CLOSE_BLOCKED},
)


def test_a_scratch_terminal_state_is_picked_up_everywhere() -> None:
    """One added rule: derived sets, the machine, and every diagram pick up the new state."""
    table = Table((*TABLE.rules, ABANDON))
    assert Scratch.ABANDONED in table.states
    assert table.terminal == {State.INTEGRATED, State.WITHDRAWN, Scratch.ABANDONED}
    assert table.active == TABLE.active
    assert table.carrying_blocked == TABLE.carrying_blocked
    assert table.events_from(State.BLOCKED) == (
        Event.BLOCK,
        Event.START_REMEDIATION,
        Event.WITHDRAW,
        "abandon",
    )
    machine = LifecycleMachine(table)
    assert machine.destination(State.REMEDIATING, ScratchEvent.ABANDON) == Scratch.ABANDONED  # type: ignore[arg-type]
    drawn = mermaid(table)
    assert "    remediating --> abandoned: abandon\n" in drawn
    assert "    abandoned --> [*]\n" in drawn
    assert "abandoned" not in mermaid()
    assert '    abandoned [label="abandoned", peripheries=2];' in dot(table)
    row = (
        "| `abandon` | blocked, remediating | abandoned | close_blocked | " + ABANDON.meaning + " |"
    )
    assert row in lifecycle_section(table).splitlines()


def test_a_scratch_state_that_keeps_its_blocked_outcome_is_refused() -> None:
    """The same new rule without closing the blocked outcome fails the build."""
    keeps = Rule(ABANDON.event, ABANDON.sources, ABANDON.dest, ABANDON.meaning)
    with pytest.raises(TableError, match="state abandoned has no way out, yet it would keep"):
        Table((*TABLE.rules, keeps))


def test_every_edge_compiles_to_a_step_whose_flags_are_its_rules_effects() -> None:
    """Table.step gives each edge its destination, flags and one flag per effect of its rule."""
    from mergegate.statemachine.table import STEP_FLAG

    for source, event, dest in TABLE.edges():
        step = TABLE.step(source, event)
        rule = TABLE.rule(source, event)
        assert step is not None
        assert rule is not None
        assert (step.source, step.event, step.dest) == (source, event, dest)
        assert step.active is (dest in TABLE.active)
        assert step.queued is (dest in TABLE.queued)
        assert step.carries_blocked is (dest in TABLE.carrying_blocked)
        on = {flag for flag in set(STEP_FLAG.values()) if getattr(step, flag)}
        assert on == {STEP_FLAG[effect] for effect in rule.effects}, (source, event)
    assert TABLE.step(State.INTEGRATED, Event.START_APPLY) is None


def test_only_a_resume_after_a_block_goes_to_the_back_of_the_queue() -> None:
    """reenters is set on the closing moves into a queued state (resume), not on a requeue."""
    steps = [TABLE.step(source, event) for source, event, _ in TABLE.edges()]
    reentering = {(s.source, s.event) for s in steps if s is not None and s.reenters}
    assert reentering == {(State.REMEDIATING, Event.RESUME)}
