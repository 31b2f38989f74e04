"""A stranger starts `mergegate serve` with its defaults while the port is taken (a second
copy, another program): it must not say "serving" and then die with the server's own error."""

from __future__ import annotations

import socket
import subprocess
import sys

from .conftest import Scratch, _env


def test_cli_stranger_serve_on_a_busy_port_is_one_line_and_no_serving_claim(
    scratch: Scratch,
) -> None:
    """Port held by a listener: exit 2, one `mergegate: error:` line naming it, no serving line."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mergegate.cli",
                "--repo",
                str(scratch.bare),
                "serve",
                "--port",
                str(port),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert "serving" not in done.stdout, done.stdout
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mergegate: error: cannot listen on 127.0.0.1:"), lines[0]
    assert str(port) in lines[0]
