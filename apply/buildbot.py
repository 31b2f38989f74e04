"""Buildbot as a :class:`~.runners.CIRunner`: its REST API (``/api/v2``), over the standard library.

One check is one Buildbot builder. ``trigger`` forces a build through a
ForceScheduler (JSON-RPC ``force`` on ``/forceschedulers/NAME`` with the
builder, the merge commit as ``revision``, the ``refs/mergegate/...`` ref as
``branch`` and the remote's URL as ``repository``); the durable id is the
build *request*'s id, which outlives the builds Buildbot itself retries after
a lost worker. ``status`` reads the request and its builds; ``cancel`` cancels
the request (Buildbot stops a claimed one's build too) and stops every build
of it still running. Result codes: 0 success and 1 warnings pass, 2 failure
and 3 skipped fail, 4 exception, 5 retry and 6 cancelled are the CI's own
trouble (docs/buildbot.md). Credentials come from the caller (the environment
or a file, never the repository): HTTP basic auth, or a bearer token.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import attrs

from mergegate.statemachine import InvalidInput, MergegateError

from .runners import CheckJob, RunState, RunStatus

__all__ = ["BuildbotError", "BuildbotRunner"]

#: How much of a failed step's log the evidence keeps (its end).
_TAIL_BYTES = 16_384
_PASS = {0, 1}
_FAIL = {2, 3}


class BuildbotError(MergegateError):
    """The Buildbot master refused a call or could not be reached."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"Buildbot at {url}: {problem}")


def _slash(value: str) -> str:
    return str(value).rstrip("/") + "/"


def _http(_i: object, _a: object, value: str) -> None:
    # urllib would open file: and other schemes too; a master is http(s) only.
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("buildbot url", value, "give the master's http:// or https:// URL")


@attrs.define
class BuildbotRunner:
    """Talks to the master at ``url``; forces builds through ``scheduler``."""

    url: str = attrs.field(converter=_slash, validator=_http)
    repository: str
    scheduler: str = "mergegate"
    #: ``user:password`` (HTTP basic) or ``token`` (Bearer); never logged.
    auth: str | None = attrs.field(default=None, repr=False)
    timeout: float = 30.0
    name: str = "buildbot"
    _builders: dict[str, int] = attrs.field(factory=dict, init=False)

    # -- HTTP ------------------------------------------------------------------

    def _headers(self) -> Mapping[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth:
            if ":" in self.auth:
                token = base64.b64encode(self.auth.encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            else:
                headers["Authorization"] = f"Bearer {self.auth}"
        return headers

    def _call(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}api/v2/{path}",
            data=data,
            headers=dict(self._headers()),
            method="GET" if body is None else "POST",
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")[:300]
            raise BuildbotError(self.url, f"{err.code} on {path}: {text}") from None
        except (OSError, ValueError, http.client.HTTPException) as err:
            # How long it took tells a refused or reset connection from a master that stalled.
            took = time.monotonic() - start
            raise BuildbotError(self.url, f"{path}: {err!r} after {took:.2f}s") from None
        return json.loads(raw) if raw else None

    def _rpc(self, path: str, method: str, params: Mapping[str, Any]) -> Any:
        answer = self._call(path, {"jsonrpc": "2.0", "method": method, "id": 1, "params": params})
        if isinstance(answer, dict) and answer.get("error"):
            raise BuildbotError(self.url, f"{method} on {path}: {answer['error']}")
        return answer.get("result") if isinstance(answer, dict) else None

    def _raw(self, path: str) -> str:
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}api/v2/{path}", headers=dict(self._headers())
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                data: bytes = resp.read()
        except (OSError, ValueError, http.client.HTTPException) as err:
            return f"[mergegate: could not read the log: {err!r}]"
        if len(data) > _TAIL_BYTES:
            data = data[-_TAIL_BYTES:].partition(b"\n")[2]
        return data.decode("utf-8", "replace")

    def builder_id(self, builder: str) -> int:
        """The builder's numeric id; raises BuildbotError if the master has no such builder."""
        if builder not in self._builders:
            found = self._call(f"builders?name={urllib.parse.quote(builder)}")["builders"]
            if not found:
                raise BuildbotError(self.url, f"no builder named {builder!r}; configure it first")
            self._builders[builder] = int(found[0]["builderid"])
        return self._builders[builder]

    # -- the protocol ----------------------------------------------------------

    def trigger(self, job: CheckJob, check: str, ref: str) -> tuple[str, str | None]:
        builderid = self.builder_id(check)
        result = self._rpc(
            f"forceschedulers/{urllib.parse.quote(self.scheduler)}",
            "force",
            {
                "builderNames": [check],
                "revision": job.commit,
                "branch": ref,
                "repository": self.repository,
                "project": "",
                "owner": "mergegate",
                "reason": f"mergegate: {job.key.slug} ({job.key.branch}@{job.candidate[:12]})",
            },
        )
        try:
            requests = result[1]
            brid = int(
                requests[str(builderid)] if str(builderid) in requests else requests[builderid]
            )
        except (TypeError, KeyError, IndexError, ValueError):
            raise BuildbotError(
                self.url, f"force answered {result!r}, not a build request"
            ) from None
        return str(brid), f"{self.url}#/buildrequests/{brid}"

    def _builds(self, build_id: str) -> list[dict[str, Any]]:
        builds: list[dict[str, Any]] = self._call(f"buildrequests/{int(build_id)}/builds")["builds"]
        return sorted(builds, key=lambda b: int(b["buildid"]))

    def _build_url(self, build: Mapping[str, Any]) -> str:
        return f"{self.url}#/builders/{build['builderid']}/builds/{build['number']}"

    def status(self, check: str, build_id: str) -> RunStatus:
        found = self._call(f"buildrequests/{int(build_id)}")["buildrequests"]
        if not found:
            raise BuildbotError(self.url, f"build request {build_id} of {check!r} is gone")
        request = found[0]
        builds = self._builds(build_id)
        last = builds[-1] if builds else None
        url = self._build_url(last) if last is not None else None
        if not request["complete"]:
            running = last is not None and not last["complete"]
            return RunStatus(RunState.RUNNING if running else RunState.QUEUED, url)
        code = request["results"]
        if code in _PASS:
            return RunStatus(RunState.PASSED, url, 0)
        if code in _FAIL and last is not None:
            step, tail = self._failed_step(int(last["buildid"]))
            return RunStatus(RunState.FAILED, url, code, step, tail)
        if code in _FAIL:
            return RunStatus(RunState.FAILED, url, code, None, "")
        return RunStatus(RunState.INFRA, url, code)

    def _failed_step(self, buildid: int) -> tuple[str | None, str]:
        steps = self._call(f"builds/{buildid}/steps")["steps"]
        failed = [s for s in steps if s.get("results") in _FAIL]
        if not failed:
            return None, ""
        step = failed[0]
        logs = self._call(f"steps/{int(step['stepid'])}/logs")["logs"]
        chosen = next((lg for lg in logs if lg.get("slug") == "stdio"), logs[0] if logs else None)
        tail = "" if chosen is None else self._raw(f"logs/{int(chosen['logid'])}/raw")
        return str(step["name"]), tail

    def cancel(self, check: str, build_id: str, why: str) -> None:
        brid = int(build_id)
        self._rpc(f"buildrequests/{brid}", "cancel", {"reason": why})
        for build in self._builds(build_id):
            if not build["complete"]:
                self._rpc(f"builds/{int(build['buildid'])}", "stop", {"reason": why})
