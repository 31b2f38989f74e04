"""The one place that knows how records look on disk and on the wire.

A private cattrs converter, never the global one: mergegate's shapes must not
change because some other library registered a hook.

The converter, and cattrs with it, is built on first use, not at import: the
store imports this module for :func:`dump_time`, and every command opens the
store, but only one that reads or writes a report needs cattrs (a fifth of the
start-up of ``mergegate show`` of a candidate that was never blocked).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mergegate.statemachine import (
    BlockedReport,
    CheckAttempt,
    CheckResult,
    Evidence,
    InvalidInput,
    MergegateError,
)

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "dump_report",
    "dump_time",
    "evidence_from_json",
    "load_evidence",
    "load_report",
    "load_time",
    "report_from_json",
    "report_to_json",
    "unstructure",
]


def dump_time(value: datetime) -> str:
    """Render ``value`` as sortable UTC text with microseconds."""
    if value.tzinfo is not UTC:
        # The Engine's clock is already UTC; converting costs more than formatting.
        if value.tzinfo is None:
            raise InvalidInput("time", value, "use a timezone-aware datetime")
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def load_time(value: str) -> datetime:
    """Parse text written by :func:`dump_time` (or any ISO 8601 time with an offset)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@functools.cache
def _converter() -> cattrs.Converter:
    import cattrs  # noqa: PLC0415  (lazy: see the module doc)

    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_unstructure_hook(datetime, dump_time)
    conv.register_structure_hook(datetime, lambda v, _: load_time(v))

    def tuple_of_str(value: Any, _: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise TypeError(f"expected a list of strings, got {type(value).__name__}")
        if not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of strings")
        return tuple(value)

    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], tuple_of_str)

    # ``object``, not ``Any``: the isinstance checks then narrow the value, so each hook
    # returns its declared type under mypy --strict instead of an Any.
    def strict_str(value: object, _: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        return value

    conv.register_structure_hook(str, strict_str)

    def strict_int(value: object, _: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {type(value).__name__}")
        return value

    conv.register_structure_hook(int, strict_int)

    def strict_bool(value: object, _: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {type(value).__name__}")
        return value

    conv.register_structure_hook(bool, strict_bool)

    # A check run by a CI adds its build URL, failed step and retries; a local
    # check that ran once has none of them, and its JSON stays as it always was.
    from cattrs.gen import make_dict_unstructure_fn, override  # noqa: PLC0415

    omit = override(omit_if_default=True)
    conv.register_unstructure_hook(
        CheckResult,
        make_dict_unstructure_fn(CheckResult, conv, url=omit, step=omit, retried=omit),
    )
    conv.register_unstructure_hook(
        CheckAttempt, make_dict_unstructure_fn(CheckAttempt, conv, url=omit)
    )
    return conv


def unstructure(value: Any) -> Any:
    """Turn a record into plain JSON-ready data."""
    return _converter().unstructure(value)


def _validation_error() -> type[Exception]:
    # Evaluated only once structure() raised, so the converter (and cattrs) exist.
    import cattrs  # noqa: PLC0415

    return cattrs.BaseValidationError


def _format_leaf(exc: BaseException, type_: Any) -> str:
    from cattrs.v import format_exception  # noqa: PLC0415  (loaded with the converter)

    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _describe(err: BaseException) -> str:
    import cattrs  # noqa: PLC0415  (loaded with the converter)
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError  # noqa: PLC0415

    if isinstance(err, MergegateError):
        return str(err)
    if isinstance(err, ForbiddenExtraKeysError):
        return f"unknown keys {sorted(err.extra_fields)}"
    if isinstance(err, ClassValidationError):
        messages = cattrs.transform_error(err, format_exception=_format_leaf)
        return "; ".join(messages[:3])
    return str(err) or type(err).__name__


def dump_report(report: BlockedReport) -> dict[str, Any]:
    """The documented JSON shape of a blocked report."""
    data: dict[str, Any] = _converter().unstructure(report)
    return data


def load_report(data: Any) -> BlockedReport:
    """Build a report from its documented shape; raises InvalidInput naming the problem."""
    if not isinstance(data, dict):
        raise InvalidInput("blocked report", data, "give a JSON object")
    try:
        return _converter().structure(data, BlockedReport)
    except InvalidInput:
        raise
    except (_validation_error(), ValueError, TypeError, KeyError) as err:
        raise InvalidInput(
            "blocked report", _first_line(data), f"not the documented shape: {_describe(err)}"
        ) from None


def load_evidence(data: Any) -> Evidence:
    """Build evidence from its documented shape; raises InvalidInput naming the problem."""
    if not isinstance(data, dict):
        raise InvalidInput("evidence", data, "give a JSON object")
    try:
        return _converter().structure(data, Evidence)
    except InvalidInput:
        raise
    except (_validation_error(), ValueError, TypeError, KeyError) as err:
        raise InvalidInput(
            "evidence", _first_line(data), f"not the documented shape: {_describe(err)}"
        ) from None


def _first_line(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)[:60]


def report_to_json(report: BlockedReport) -> str:
    """Canonical JSON text: sorted keys, no whitespace, so equal reports give equal text."""
    return json.dumps(dump_report(report), sort_keys=True, separators=(",", ":"))


def report_from_json(text: str | bytes) -> BlockedReport:
    """Parse JSON text into a report; raises InvalidInput for bad JSON or a bad shape."""
    try:
        data = json.loads(text)
    # RecursionError: a few hundred thousand nested brackets exhaust the parser.
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidInput(
            "blocked report JSON", _snippet(text), f"not valid JSON ({err})"
        ) from None
    return load_report(data)


def evidence_from_json(text: str | bytes) -> Evidence:
    """Parse JSON text into evidence; raises InvalidInput for bad JSON or a bad shape."""
    try:
        data = json.loads(text)
    # RecursionError: a few hundred thousand nested brackets exhaust the parser.
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidInput("evidence JSON", _snippet(text), f"not valid JSON ({err})") from None
    return load_evidence(data)


def _snippet(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[:40]
