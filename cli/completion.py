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


def stored_slugs(db: str | None, repo: Path) -> list[str]:
    """The slugs of every candidate in the store, sorted; ``[]`` when there is no store."""
    from .session import Session  # noqa: PLC0415  (only a completion or a command needs it)

    session = Session(repo_path=repo, db_url=db)
    try:
        return sorted({c.key.slug for c in session.store().candidates()})
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
        slugs = stored_slugs(params.get("db"), Path(repo))
        return [CompletionItem(slug) for slug in slugs if slug.startswith(incomplete)]


SLUG = SlugType()
