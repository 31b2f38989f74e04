"""The one error boundary: every exception ends here as one line and an exit code.

The exit codes are documented in docs/cli.md. An unexpected exception is also
written, with its traceback, to the log file, never to the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .app import Seat, cli
from .output import report_error

if TYPE_CHECKING:
    from .session import Session

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "run"]

# The same values as in errors.py, which imports the engine; this module must not.
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _log_unexpected(session: Session | None, err: BaseException) -> str | None:
    """Write ``err``'s traceback to the log file; return the path, or ``None`` if it failed."""
    try:
        # Imported here, as the whole report is: only a crash needs them.
        import traceback  # noqa: PLC0415
        from datetime import UTC, datetime  # noqa: PLC0415

        from mergegate.statemachine._logfmt import format_logfmt  # noqa: PLC0415

        from .session import Session  # noqa: PLC0415

        if session is None:  # the crash came before the group callback seated one
            session = Session()
        path = session.log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = format_logfmt(
            {
                "ts": stamp,
                "event": "unexpected_error",
                "command": session.command,
                "error": f"{type(err).__name__}: {err}",
            }
        )
        with path.open("a", encoding="utf-8") as log:
            log.write(head + "\n")
            log.write("".join(traceback.format_exception(err)))
        return str(path)
    except Exception:  # the error report itself must not fail
        return None


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` and return its exit code; never raises."""
    try:
        return _run(argv)
    except Exception as err:  # reporting itself failed (a closed stdout, say)
        with contextlib.suppress(Exception):  # nothing is left to tell
            sys.stderr.write(f"mergegate: error: unexpected {type(err).__name__} while reporting\n")
        return EXIT_UNEXPECTED


def _json_requested(args: Sequence[str], err: click.UsageError) -> bool:
    """Whether the command line asked for JSON, when a usage error stopped click early."""
    if err.ctx is not None and err.ctx.find_root().params.get("json_mode"):
        return True
    # The flag after the command is parsed with that command's options, which a
    # usage error may have cut short; the token itself is the user's intent.
    words = list(args)
    return "--json" in words[: words.index("--")] if "--" in words else "--json" in words


def _run(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    seat = Seat()
    try:
        result = cli.main(args=args, prog_name="mergegate", standalone_mode=False, obj=seat)
    except click.exceptions.Exit as done:
        return done.exit_code
    except SystemExit as done:
        # Shell completion answers and exits 0. Otherwise click turns a closed stdout
        # (EPIPE) into sys.exit(1) once it muted the streams; no command of ours
        # exits the process itself.
        if done.code in (0, None):
            return 0
        return EXIT_BROKEN_PIPE if done.code == 1 else EXIT_UNEXPECTED
    except click.exceptions.NoArgsIsHelpError as err:
        # `mergegate` or `mergegate followups` alone: the help, as git prints its
        # usage, on stdout; exit 2 because no command ran (docs/cli.md).
        if _json_mode(seat) or _json_requested(args, err):
            message = f"no command given; see `{err.ctx.command_path} --help`"
            return report_error(True, _command(seat), err, EXIT_USAGE, message, "usage_error")
        click.echo(err.ctx.get_help())
        return EXIT_USAGE
    except click.ClickException as err:
        usage = err.ctx if isinstance(err, click.UsageError) else None
        hint = "" if usage is None else f"; see `{usage.command_path} --help`"
        json_mode = _json_mode(seat)
        if isinstance(err, click.UsageError):
            # A usage error can stop click before the group callback read --json.
            json_mode = json_mode or _json_requested(args, err)
        message = err.format_message().rstrip(".") + hint
        return report_error(json_mode, _command(seat), err, EXIT_USAGE, message, "usage_error")
    except (click.Abort, KeyboardInterrupt) as err:
        # A store transaction that was cut short rolled back; nothing half-written remains.
        return report_error(
            _json_mode(seat), _command(seat), err, EXIT_INTERRUPTED, "interrupted", "interrupted"
        )
    except Exception as err:  # the one boundary: any crash becomes one line
        return _report(seat, err)
    finally:
        if seat.session is not None:
            seat.session.close()
    return result if isinstance(result, int) else 0


def _json_mode(seat: Seat) -> bool:
    return seat.session is not None and seat.session.json


def _command(seat: Seat) -> str:
    return "mergegate" if seat.session is None else seat.session.command


def _report(seat: Seat, err: Exception) -> int:
    # Imported here: every command that can raise one has loaded the engine already.
    from mergegate.statemachine import MergegateError  # noqa: PLC0415

    from .errors import exit_code_for  # noqa: PLC0415

    json_mode, command = _json_mode(seat), _command(seat)
    if isinstance(err, MergegateError):
        return report_error(json_mode, command, err, exit_code_for(err))
    if isinstance(err, BrokenPipeError):
        # The reader went away (`mergegate history x | head -1`): the command's work
        # is done, only its output is cut. Exit as a process killed by SIGPIPE would.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    where = _log_unexpected(seat.session, err)
    more = f"; the traceback is in {where}" if where else ""
    message = f"unexpected {type(err).__name__}: {err}{more}"
    return report_error(json_mode, command, err, EXIT_UNEXPECTED, message)
