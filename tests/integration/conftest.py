from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import ServerHandle, have_sshd, openssh_server, sandbox_server

SERVERS = [
    pytest.param("sandbox", id="asyncssh"),
    pytest.param(
        "openssh",
        id="openssh",
        marks=[
            pytest.mark.sshd,
            pytest.mark.skipif(
                not have_sshd(), reason="OpenSSH sshd not installed (.ci/run installs it)"
            ),
        ],
    ),
]


@pytest.fixture(params=SERVERS)
def sftp_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerHandle]:
    """Each test runs against OpenSSH's sshd and against the in-process asyncssh server."""
    factory = openssh_server if request.param == "openssh" else sandbox_server
    with factory(tmp_path / "server") as handle:
        yield handle
