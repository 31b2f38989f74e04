"""``mergegate serve``: a read-only status page of the queue, with a JSON twin of every view.

Starlette and uvicorn are imported by this command only: no other command's
start-up pays for them (tests/cli/test_cli_startup.py). The page is plain
HTML from the server (complete without JavaScript) and a small script that
swaps in its live part (cli/web/status.js). The script does not poll: it asks
for the live part after the change-feed cursor it has (``/?part=live&after=N``)
and the server answers once the log moved past it (the store's wake-up:
LISTEN/NOTIFY on PostgreSQL, SQLite's data version), or after ``--refresh``
seconds, so that elapsed times and an integrator's silence still show. The
same long wait serves programs as ``/api/changes?after=N&wait=S``. Nothing it
serves writes: the views read the store through the bounded reads of
``list`` and ``report`` (cli/views.py).

It listens on 127.0.0.1 unless told otherwise; any other address needs a
token (``--token`` or ``MERGEGATE_SERVE_TOKEN``), and then every request
must carry it, as ``?token=`` (what a browser can do) or an
``Authorization: Bearer`` header. See docs/status-page.md.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import click

from .app import cli, session_of
from .errors import UsageError
from .names import VERSION
from .output import document
from .session import Session

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["TOKEN_ENV", "TOKEN_MIN", "build_app", "is_loopback", "serve"]

TOKEN_ENV = "MERGEGATE_SERVE_TOKEN"  # noqa: S105  (the variable's name, not a secret)
#: A token shorter than this is refused: it would be guessed, and it guards the whole queue.
TOKEN_MIN = 16

_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

_STATIC = {"status.js": "text/javascript", "status.css": "text/css"}
# The page loads its own script and style only; nothing inline, nothing from elsewhere.
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return (resources.files("mergegate.cli") / "web" / name).read_bytes()


def build_app(session: Session, *, token: str | None, refresh_ms: int = 2000) -> Starlette:
    """The Starlette application over ``session``'s store; every route is a read."""
    from starlette.applications import Starlette  # noqa: PLC0415  (only serve pays)
    from starlette.responses import HTMLResponse, PlainTextResponse  # noqa: PLC0415
    from starlette.responses import Response as Plain  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    from .servefeed import CURSOR_HEADER, BadQuery, FeedViews  # noqa: PLC0415
    from .views import blocked_view, queue_view, stats_view, status_view  # noqa: PLC0415
    from .webpage import live_html, page_html  # noqa: PLC0415

    store = session.store()
    engine = session.reader()
    todos = session.config().todos
    static = {name: _static(name) for name in _STATIC}

    def allowed(request: Request) -> bool:
        if token is None:
            # No token: loopback only, and only under a loopback name, so that a web
            # page elsewhere cannot read the queue through a name it re-points at
            # 127.0.0.1 (DNS rebinding).
            return (request.url.hostname or "") in _LOCAL_NAMES
        given = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(
        view: Callable[[Request], Response | Awaitable[Response]],
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # A coroutine that reads in the event loop: the reads are a few milliseconds of
        # indexed queries and take turns on the store's one connection anyway, so a
        # worker thread per request would add a hop and no concurrency. Only a wait
        # on the change feed goes to a thread (its own connection; servefeed.py).
        async def endpoint(request: Request) -> Response:
            if not allowed(request):
                if token is None:
                    return PlainTextResponse(
                        "403: without --token only localhost and 127.0.0.1 are served\n",
                        status_code=403,
                        headers=_HEADERS,
                    )
                return PlainTextResponse(
                    "401: give the token as ?token=... or Authorization: Bearer ...\n",
                    status_code=401,
                    headers=_HEADERS,
                )
            try:
                answer = view(request)
                return await answer if inspect.isawaitable(answer) else answer
            except BadQuery as err:
                return PlainTextResponse(f"400: {err}\n", status_code=400, headers=_HEADERS)
            except Exception as err:  # a store that went away: say so, keep serving
                traceback.print_exc(file=sys.stderr)
                body = {"error": {"type": type(err).__name__, "message": str(err)[:1000]}}
                return Plain(
                    document(f"serve {request.url.path}", 1, **body),
                    status_code=500,
                    media_type="application/json",
                    headers=_HEADERS,
                )

        return endpoint

    def api(name: str, build: Callable[[datetime], dict[str, Any]]) -> Route:
        def view(_request: Request) -> Response:
            text = document(f"serve /api/{name}", 0, result=build(datetime.now(UTC)))
            return Plain(text, media_type="application/json", headers=_HEADERS)

        return Route(f"/api/{name}", guarded(view), methods=["GET"])

    def everything(now: datetime) -> dict[str, Any]:
        return status_view(engine, store, now, todos)

    feed = FeedViews(store, dict(_HEADERS))

    async def page(request: Request) -> Response:
        if request.query_params.get("part") == "live":
            head = await feed.waited(request, refresh_ms / 1000)
            headers = dict(_HEADERS)
            if head is not None:
                headers[CURSOR_HEADER] = str(head)
            return HTMLResponse(live_html(everything(datetime.now(UTC))), headers=headers)
        head = feed.head()
        view = everything(datetime.now(UTC))
        query = "" if token is None else "?token=" + request.query_params.get("token", "")
        return HTMLResponse(
            page_html(view, query=query, refresh_ms=refresh_ms, cursor=head), headers=_HEADERS
        )

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return PlainTextResponse("404: no such file\n", status_code=404, headers=_HEADERS)
        return Plain(static[name], media_type=_STATIC[name], headers=_HEADERS)

    from .status import read_status  # noqa: PLC0415

    routes = [
        Route("/", guarded(page), methods=["GET"]),
        Route("/static/{name}", guarded(asset), methods=["GET"]),
        api("queue", lambda now: queue_view(read_status(store, now))),
        api("blocked", lambda now: blocked_view(engine, store, read_status(store, now), todos)),
        api("stats", lambda now: stats_view(store, now)),
        api("status", everything),
        Route("/api/changes", guarded(feed.changes), methods=["GET"]),
    ]
    return Starlette(routes=routes)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="The port."
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    metavar="TEXT",
    help=f"Required of every request; needed to listen on anything but loopback "
    f"[env {TOKEN_ENV}; at least {TOKEN_MIN} characters].",
)
@click.option(
    "--refresh",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.5, 60.0),
    help="Seconds between the page's live updates.",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None, refresh: float) -> int:
    """A read-only web status page of the queue on http://127.0.0.1:8765/ (and JSON under /api/).

    It shows the queue with positions, the candidates applying with elapsed
    time and ETA, each blocked candidate's failure, follow-up and NEXT lines,
    recent integrations, the last day's throughput and time in queue, and
    whether an integrator is alive. Ctrl-C stops it.
    """
    s = session_of(ctx)
    if token is not None and len(token) < TOKEN_MIN:
        raise UsageError(f"--token: use at least {TOKEN_MIN} characters (a random one is best)")
    if not is_loopback(host) and token is None:
        raise UsageError(
            f"--host {host} is reachable from other machines: give --token (or {TOKEN_ENV}); "
            "every request must then carry it"
        )
    app = build_app(s, token=token, refresh_ms=int(refresh * 1000))

    import uvicorn  # noqa: PLC0415  (only serve pays for the server)

    shown = f"[{host}]" if ":" in host else host
    # Bind before saying "serving": a port in use is one line and exit 2, never a
    # serving line followed by the server's own error (a watcher would trust the line).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise UsageError(
            f"cannot listen on {shown}:{port} ({err.strerror or err}); "
            "stop what holds it or give another --port"
        ) from err
    click.echo(f"mergegate {VERSION}: serving http://{shown}:{port}/ (read-only; Ctrl-C stops)")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    server.run(sockets=[sock])
    return 0
