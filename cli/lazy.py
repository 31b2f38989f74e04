"""A click group that imports a command's module only when that command runs.

Every ``mergegate`` call is a fresh process, so whatever the command modules
import at their top (the store, git plumbing, YAML, the PostgreSQL driver) is
paid by every call, ``--version`` included. The group knows its commands by
name and module, and imports the module when click resolves the name; the
module then registers the command on the group with the usual decorators.

Resolving a command also gives it what every mergegate command has: a
``--json`` flag after the command name (the same as the global one) and
shell completion of candidate slugs on a ``SLUG`` argument.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

__all__ = ["LazyGroup"]


class LazyGroup(click.Group):
    """A group whose commands are imported from ``lazy`` (name -> module) on first use.

    Sub-groups made with ``@group.group()`` are of the same class (with no lazy
    names), so a nested command such as ``followups sync`` is finished alike.
    """

    group_class = type

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = dict(lazy or {})

    def finish(self, command: click.Command) -> None:
        """Complete ``command`` once it is resolved; called on every resolution, so idempotent."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            self.finish(command)
        return command
