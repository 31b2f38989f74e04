"""`mergegate serve` as an operator meets it: a real server process on 127.0.0.1, a live
queue (a candidate applying whose check waits on a flag file, a blocked one), read through
its JSON twins, as plain HTML, and in Debian's headless chromium after its script ran."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from .conftest import Scratch, _env

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "s3cret-token-for-tests"
_CLI = (sys.executable, "-m", "mergegate.cli")
# Every interface: an address other machines reach, so serve must ask for a token.
_OPEN = "0.0.0.0"  # noqa: S104

# A check that runs until the test creates its flag file: the candidate stays applying.
GATE = """
[[checks]]
name = "gate"
argv = 'while [ ! -e "{flag}" ]; do sleep 0.05; done; echo gate passed'
shell = true
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Connect until the server accepts; fail with what it printed if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"serve exited {proc.returncode}: {out!r} {err!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"serve did not accept connections on port {port} in {timeout} s")


@attrs.frozen
class Server:
    port: int
    proc: subprocess.Popen[str]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        # An http:// URL this test built, to the server it started.
        request = urllib.request.Request(self.url(path), headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def api(self, name: str, query: str = "") -> Any:
        status, body = self.get(f"/api/{name}{query}")
        assert status == 200, body
        return json.loads(body)["result"]


def _serve(s: Scratch, *args: str) -> Server:
    port = _free_port()
    proc = subprocess.Popen(
        [*_CLI, "--repo", str(s.bare), "serve", "--port", str(port), *args],
        cwd=s.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_port(port, proc)
    return Server(port, proc)


def _stop(server: Server) -> None:
    server.proc.terminate()
    out, err = server.proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert "serving http://127.0.0.1:" in out, out


@attrs.frozen
class Live:
    """The blocked fixture with `other` applying under a check that waits for ``flag``."""

    scratch: Scratch
    server: Server
    flag: Path
    apply: subprocess.Popen[str]


def _wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        ok, seen = probe()
        if ok:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout} s for {what}; last seen: {seen!r}")


@pytest.fixture
def live(blocked: Scratch, tmp_path: Path) -> Iterator[Live]:
    """A served queue: add-docs integrated, new-greeting blocked, other applying."""
    flag = tmp_path / "flag"
    (blocked.bare / "mergegate.toml").write_text(GATE.format(flag=flag))
    assert blocked("submit", "other", "--sha", blocked.shas["other"]).code == 0
    apply = subprocess.Popen(
        [*_CLI, "--repo", str(blocked.bare), "apply", "other"],
        cwd=blocked.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = _serve(blocked)
    try:

        def applying() -> tuple[bool, object]:
            rows = server.api("queue")["candidates"]
            states = {r["slug"]: r["state"] for r in rows}
            return states.get("other") == "applying", states

        _wait_for("other to be applying", applying)
        yield Live(blocked, server, flag, apply)
    finally:
        flag.touch()
        apply.communicate(timeout=60)
        _stop(server)


def test_api_queue_shows_the_chain_in_flight_and_the_blocked(live: Live) -> None:
    """/api/queue: other applying in slot 1 with an ETA, new-greeting blocked; CLI envelope."""
    status, body = live.server.get("/api/queue")
    assert status == 200
    doc = json.loads(body)
    assert doc["command"] == "serve /api/queue"
    assert doc["schema_version"] == 1
    rows = {r["slug"]: r for r in doc["result"]["candidates"]}
    assert rows["other"]["slot"] == 1
    assert rows["other"]["elapsed_seconds"] >= 0
    # add-docs integrated in the fixture: one apply to estimate from.
    assert doc["result"]["typical_apply_samples"] == 1
    assert rows["other"]["eta"] is not None
    assert rows["new-greeting"]["state"] == "blocked"
    assert rows["new-greeting"]["waiting_for"].startswith("its follow-up: new-greeting-")
    assert doc["result"]["integrator"]["state"] == "alive"
    blocked = live.server.api("blocked")["blocked"]
    assert [b["slug"] for b in blocked] == ["new-greeting"]
    assert blocked[0]["blocked"]["reason"] == "merge_conflict"
    assert any("greeting.txt" in line for line in blocked[0]["failure"])
    assert "NEXT: " in blocked[0]["guidance"]["text"]
    assert "input.md" in [f["name"] for f in blocked[0]["follow_up_files"]]
    stats = live.server.api("stats")
    assert [r["slug"] for r in stats["integrated"]] == ["add-docs"]
    assert stats["time_in_queue_seconds"]["count"] == 1


def test_the_page_without_javascript_shows_the_same_queue(live: Live) -> None:
    """GET / is complete HTML: queue, in flight, blocked with failure and NEXT, stats."""
    status, html = live.server.get("/")
    assert status == 200
    assert '<meta name="viewport"' in html
    assert "Static view: reload the page to see changes." in html
    for text in ("other", "applying", "new-greeting", "merge_conflict", "greeting.txt", "NEXT: "):
        assert text in html, text
    assert "Integrator alive" in html
    assert "add-docs" in html  # the recent integration


def test_serve_refuses_an_open_address_without_a_token(blocked: Scratch) -> None:
    """--host 0.0.0.0 without a token: exit 2, one line, no server; a short token too."""
    out = blocked("serve", "--host", _OPEN, "--port", str(_free_port()))
    assert out.code == 2
    assert out.stderr.count("\n") == 1
    assert "--token" in out.stderr
    short = blocked("serve", "--token", "short", "--port", str(_free_port()))
    assert short.code == 2
    assert "at least 16 characters" in short.stderr


def test_without_a_token_only_loopback_names_are_served(live: Live) -> None:
    """A request naming another host (a rebound DNS name) gets 403; localhost gets 200."""
    assert live.server.get("/api/queue", {"Host": "evil.example:80"})[0] == 403
    assert live.server.get("/", {"Host": f"localhost:{live.server.port}"})[0] == 200


def test_a_token_guards_every_request(blocked: Scratch) -> None:
    """With a token, a request without it gets 401; with ?token= or a Bearer header, 200."""
    server = _serve(blocked, "--token", TOKEN)
    try:
        for path in ("/", "/api/queue", "/static/status.js"):
            assert server.get(path)[0] == 401, path
        assert server.get(f"/api/queue?token={TOKEN}x")[0] == 401
        assert server.get(f"/api/queue?token={TOKEN}")[0] == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert server.get("/api/queue", bearer)[0] == 200
        status, html = server.get(f"/?token={TOKEN}")
        assert status == 200
        assert f"/api/queue?token={TOKEN}" in html
    finally:
        _stop(server)


# -- the page in a real browser ------------------------------------------------------


def _chromium() -> str:
    """Debian's chromium; under CI a missing browser is a failure (.ci/run installs it)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver)")
    return found


# Headless, as root in CI (no sandbox), and quiet: no update checks, sync or first-run pages.
_QUIET = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


#: The page as the headless browser loads it: a headless browser's virtual time stands
#: still while a request is held open, so it asks the script to poll (servefeed.py).
HEADLESS = "/?wait=0"


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [_chromium(), *_QUIET, f"--user-data-dir={profile}", "--virtual-time-budget=4000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _screenshot(tmp_path: Path, url: str, name: str, size: str) -> Path:
    """A PNG of the page after its script ran; with MERGEGATE_UPDATE_SCREENSHOTS=1, also the
    docs' copy (docs/status-page.md shows them)."""
    shot = tmp_path / name
    done = _browser(tmp_path, f"--window-size={size}", f"--screenshot={shot}", url)
    assert shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, "a page with a queue on it is more than a blank PNG"
    if os.environ.get("MERGEGATE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS / name)
    return shot


def test_the_page_in_chromium_shows_what_a_person_would_see(live: Live, tmp_path: Path) -> None:
    """Headless chromium shows the live page: other applying, new-greeting blocked with NEXT."""
    url = live.server.url(HEADLESS)
    done = _browser(tmp_path, "--dump-dom", url)
    dom = done.stdout
    assert "<main" in dom, done.stderr[-2000:]
    # Only the script writes this line, after it fetched and swapped in the live part.
    assert "Live: updated" in dom, dom[:3000]
    assert "Static view" not in dom
    queue = dom[dom.index('id="queue-section"') : dom.index('id="flight-section"')]
    assert "other" in queue
    assert "applying" in queue
    assert "new-greeting" in queue
    flight = dom[dom.index('id="flight-section"') : dom.index('id="blocked-section"')]
    assert "other" in flight
    blocked = dom[dom.index('id="blocked-section"') : dom.index('id="stats-section"')]
    assert "merge_conflict" in blocked
    assert "greeting.txt" in blocked
    assert "NEXT: mergegate" in blocked
    assert "Integrator alive" in dom
    _screenshot(tmp_path, url, "status-page-applying.png", "1100,1400")
    _screenshot(tmp_path, url, "status-page-phone.png", "390,1400")


def test_the_page_follows_the_queue_without_a_reload(live: Live, tmp_path: Path) -> None:
    """Once the check passes, the served views show other integrated and nothing in flight."""
    live.flag.touch()
    live.apply.communicate(timeout=60)

    def settled() -> tuple[bool, object]:
        rows = live.server.api("queue")["candidates"]
        return all(r["slug"] != "other" for r in rows), rows

    _wait_for("other to leave the active queue", settled)
    status, part = live.server.get("/?part=live")
    assert status == 200
    assert "<html" not in part  # the fragment the script swaps in, not a page
    assert "Nothing is applying." in part
    dom = _browser(tmp_path, "--dump-dom", live.server.url(HEADLESS)).stdout
    assert "Live: updated" in dom
    stats = dom[dom.index('id="stats-section"') :]
    assert "other" in stats
    _screenshot(tmp_path, live.server.url(HEADLESS), "status-page-integrated.png", "1100,1400")


def test_a_stalled_integrator_shows_as_down(blocked: Scratch, tmp_path: Path) -> None:
    """A SIGSTOPped apply past its TTL: list, /api/queue and the page say the integrator is down."""
    flag = tmp_path / "flag"
    (blocked.bare / "mergegate.toml").write_text("lease_ttl = 1\n" + GATE.format(flag=flag))
    assert blocked("submit", "other", "--sha", blocked.shas["other"]).code == 0
    apply = subprocess.Popen(
        [*_CLI, "--repo", str(blocked.bare), "apply", "other"],
        cwd=blocked.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    server = _serve(blocked)
    try:

        def applying() -> tuple[bool, object]:
            doc = server.api("queue")
            return doc["integrator"]["state"] == "alive", doc["integrator"]

        _wait_for("the apply to hold the lease", applying)
        os.killpg(apply.pid, signal.SIGSTOP)

        def down() -> tuple[bool, object]:
            doc = server.api("queue")
            return doc["integrator"]["state"] == "down", doc["integrator"]

        integrator = _wait_for("the lease to expire", down)
        assert integrator["since"] == integrator["expires_at"]
        listed = blocked("list")
        assert "integrator DOWN: " in listed.stdout
        assert "mergegate recover" in listed.stdout
        assert blocked("--json", "list").doc["result"]["integrator"]["state"] == "down"
        status, html = server.get("/")
        assert status == 200
        assert "Integrator DOWN" in html
        dom = _browser(tmp_path, "--dump-dom", server.url(HEADLESS)).stdout
        assert "Live: updated" in dom
        assert "Integrator DOWN" in dom
        _screenshot(tmp_path, server.url(HEADLESS), "status-page-down.png", "1100,700")
    finally:
        flag.touch()  # the check runs in a session of its own: let it end by itself
        os.killpg(apply.pid, signal.SIGKILL)
        apply.communicate(timeout=60)
        _stop(server)


def test_a_paused_queue_shows_who_paused_it_and_why(live: Live, tmp_path: Path) -> None:
    """Paused while other applies: /api/queue and chromium show PAUSED, by whom and why."""
    paused = live.scratch("--actor", "ana", "pause", "--why", "release <freeze>")
    assert paused.code == 0, paused.stderr
    controls = live.server.api("queue")["controls"]
    assert controls["paused"]["actor"] == "ana"
    assert controls["paused"]["why"] == "release <freeze>"
    assert controls["draining"] is None
    dom = _browser(tmp_path, "--dump-dom", live.server.url(HEADLESS)).stdout
    assert "Live: updated" in dom
    banner = dom[dom.index('id="paused"') : dom.index('id="queue-section"')]
    assert "PAUSED" in banner
    assert "ana" in banner
    assert "release &lt;freeze&gt;" in banner  # escaped: a reason is written by others
    assert "mergegate unpause" in banner
    # The chain in flight finishes: other is still applying, not thrown back.
    rows = {r["slug"]: r for r in live.server.api("queue")["candidates"]}
    assert rows["other"]["state"] == "applying"
    _screenshot(tmp_path, live.server.url(HEADLESS), "status-page-paused.png", "1100,1400")


def _get_with_headers(server: Server, path: str) -> tuple[int, dict[str, str], str, float]:
    """GET ``path``: status, headers (lower-case names), body and the seconds it took."""
    began = time.monotonic()
    request = urllib.request.Request(server.url(path))  # noqa: S310  (our own server)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        body = response.read().decode()
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, headers, body, time.monotonic() - began


def test_the_live_part_waits_on_the_change_feed_not_a_poll(
    blocked: Scratch, tmp_path: Path
) -> None:
    """A page asking after its cursor is answered when a submit commits, long before --refresh."""
    server = _serve(blocked, "--refresh", "30")
    try:
        status, page = server.get("/")
        assert status == 200
        cursor = int(re.search(r'data-cursor="(\d+)"', page).group(1))  # type: ignore[union-attr]
        answers: list[tuple[int, dict[str, str], str, float]] = []
        asking = threading.Thread(
            target=lambda: answers.append(_get_with_headers(server, f"/?part=live&after={cursor}"))
        )
        asking.start()
        # The request is held: nothing moved yet.
        time.sleep(1.0)
        assert answers == [], "the live part was answered before anything moved"
        assert blocked("submit", "other", "--sha", blocked.shas["other"]).code == 0
        asking.join(timeout=45)
        assert answers, "no answer within 45 s"
        status, headers, part, took = answers[0]
        assert status == 200
        assert int(headers["x-mergegate-cursor"]) > cursor
        assert "other" in part
        # Answered by the move, not by the 30 s refresh.
        assert took < 20, f"answered after {took:.1f} s: the wait did not wake on the move"
        # The JSON twin: the same wait, answering the changes themselves.
        doc = json.loads(server.get(f"/api/changes?after={cursor}&wait=5")[1])["result"]
        assert [(c["slug"], c["transition"]["event"]) for c in doc["changes"]] == [
            ("other", "submit")
        ]
        assert doc["cursor"] == int(headers["x-mergegate-cursor"])
        for bad in ("after=-1", "after=abc", "wait=31", "wait=x"):
            code, text = server.get(f"/api/changes?{bad}")
            assert code == 400, (bad, text)
            assert text.startswith("400: "), text
            assert text.count("\n") == 1, text
    finally:
        _stop(server)
