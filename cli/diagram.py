"""The lifecycle drawn from :data:`~mergegate.statemachine.TABLE`, never by hand.

``docs/lifecycle.md`` embeds :func:`lifecycle_section`; a test fails when the
committed copy differs from what the table gives today.
"""

from __future__ import annotations

from collections.abc import Mapping

from mergegate.statemachine import TABLE, Effect, Event, State, Table

__all__ = ["BEGIN_MARK", "END_MARK", "Counts", "dot", "lifecycle_section", "mermaid"]

BEGIN_MARK = "<!-- BEGIN GENERATED: mergegate diagram (do not edit by hand) -->"
END_MARK = "<!-- END GENERATED -->"

Counts = Mapping[tuple[State | None, Event, State], int]


def _label(source: State | None, event: Event, dest: State, counts: Counts | None) -> str:
    notes = []
    if source is not None and source is dest:
        notes.append("replay")
    if counts is not None:
        notes.append(str(counts.get((source, event, dest), 0)))
    # Parentheses, not brackets: Mermaid reads brackets in a label as node syntax.
    return f"{event.value} ({', '.join(notes)})" if notes else event.value


def mermaid(table: Table = TABLE, counts: Counts | None = None) -> str:
    """A Mermaid ``stateDiagram-v2``; with ``counts``, each edge says how often it was taken."""
    lines = ["stateDiagram-v2"]
    for source, event, dest in table.edges():
        start = "[*]" if source is None else source.value
        lines.append(f"    {start} --> {dest.value}: {_label(source, event, dest, counts)}")
    for state in table.states:
        if state in table.terminal:
            lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines) + "\n"


def dot(table: Table = TABLE, counts: Counts | None = None) -> str:
    """A Graphviz ``digraph``; with ``counts``, each edge says how often it was taken."""
    lines = [
        "digraph mergegate {",
        "    rankdir=LR;",
        "    node [shape=box, style=rounded];",
        "    new [shape=point];",
    ]
    for state in table.states:
        shape = ", peripheries=2" if state in table.terminal else ""
        lines.append(f'    {state.value} [label="{state.value}"{shape}];')
    for source, event, dest in table.edges():
        start = "new" if source is None else source.value
        lines.append(
            f'    {start} -> {dest.value} [label="{_label(source, event, dest, counts)}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def lifecycle_section(table: Table = TABLE) -> str:
    """The generated part of ``docs/lifecycle.md``: the diagram and the event table with effects."""
    rows = ["| event | from | to | effects | meaning |", "|---|---|---|---|---|"]
    for rule in table.rules:
        sources = ", ".join(s.value for s in rule.sources) or "(new)"
        dest = "unchanged" if rule.dest is None else rule.dest.value
        # Effects in declaration order of the enum, so the page is the same on every run.
        effects = ", ".join(e.value for e in Effect if e in rule.effects) or "-"
        rows.append(f"| `{rule.event.value}` | {sources} | {dest} | {effects} | {rule.meaning} |")
    return (
        f"{BEGIN_MARK}\n\n```mermaid\n{mermaid(table)}```\n\n" + "\n".join(rows) + f"\n\n{END_MARK}"
    )
