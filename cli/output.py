"""Writing results and errors: one JSON document with ``--json``, else text; errors on stderr.

The JSON envelope is documented in docs/cli.md and versioned by
``schema_version``: keys are only ever added within a version.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .colour import enabled, error_prefix, paint

__all__ = ["document", "emit", "fail_line", "report_error"]


def document(command: str, exit_code: int, **body: Any) -> str:
    """The JSON envelope as text: sorted keys, two-space indent, one trailing newline."""
    # Imported here: this module is loaded by every call, `--version` included.
    from .payload import SCHEMA_VERSION  # noqa: PLC0415

    doc = {"schema_version": SCHEMA_VERSION, "command": command, "exit_code": exit_code, **body}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def emit(json_mode: bool, command: str, result: Any, text: str, exit_code: int = 0) -> int:
    """Write ``result`` (JSON mode) or ``text`` to stdout; return ``exit_code``."""
    # click here, not at the top: the read fast path (fastread.py) uses document().
    import click  # noqa: PLC0415

    if json_mode:
        click.echo(document(command, exit_code, result=result), nl=False)
    elif enabled(sys.stdout):
        click.echo(paint(text), nl=False, color=True)
    else:
        click.echo(text, nl=False)
    return exit_code


def fail_line(message: str) -> None:
    """Say on stderr why a command that printed its result exits non-zero."""
    import click  # noqa: PLC0415

    click.echo(f"mergegate: error: {message}", err=True)


def report_error(
    json_mode: bool,
    command: str,
    err: BaseException,
    exit_code: int,
    message: str | None = None,
    kind: str | None = None,
) -> int:
    """One line on stderr (and the JSON error document on stdout in JSON mode)."""
    import click  # noqa: PLC0415

    from mergegate.followups.text import one_line  # noqa: PLC0415

    from .errors import error_code  # noqa: PLC0415

    text = one_line(message if message is not None else str(err) or type(err).__name__, 1000)
    if json_mode:
        body = {"error": {"type": kind or error_code(err), "message": text}}
        click.echo(document(command, exit_code, **body), nl=False)
    sys.stderr.write(f"{error_prefix(sys.stderr)} {text}\n")
    sys.stderr.flush()
    return exit_code
