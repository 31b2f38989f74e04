"""Shell completion of candidate slugs, through click's own completion protocol.

``eval "$(_MERGEGATE_COMPLETE=bash_source mergegate)"`` installs it (docs/cli.md).
A completion runs the whole program on every TAB, so it reads the store the
global options name (``--db``, ``--repo``, ``MERGEGATE_DB``) without creating
one, and answers nothing rather than an error: a shell has nowhere to show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    # click's types are generic for the type checker; at run time older clicks are not.
    _ParamType = click.ParamType[str, str]
else:
    _ParamType = click.ParamType

__all__ = ["SLUG", "SlugType", "stored_slugs"]

# A completion read is cut here, so that a TAB costs the same whatever the store holds.
_MOST = 200


def stored_slugs(db: str | None, repo: Path, prefix: str = "") -> list[str]:
    """The stored slugs starting with ``prefix``, sorted, at most 200 of them (a shell shows
    no more usefully); ``[]`` when there is no store."""
    from .session import Session  # noqa: PLC0415  (only a completion or a command needs it)

    session = Session(repo_path=repo, db_url=db)
    try:
        return session.store().slugs(prefix, _MOST)
    except Exception:  # a shell cannot show an error; an empty answer is the honest one
        return []
    finally:
        session.close()


class SlugType(_ParamType):
    """A candidate slug: passed on as text (the command checks it), completed from the store."""

    name = "slug"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem  # noqa: PLC0415  (only on TAB)

        params = ctx.find_root().params
        repo = params.get("repo") or Path()
        slugs = stored_slugs(params.get("db"), Path(repo), incomplete)
        return [CompletionItem(slug) for slug in slugs]


SLUG = SlugType()
