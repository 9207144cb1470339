"""How the copy's SSH connections are set up: the cipher preference and the first auth request.

Both are options the Airflow layer passes where the connection is made (``airflow/sftp.py``'s
hook subclass); nothing here knows about Airflow. Measured in docs/benchmarks.md (issue #15).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh


# Ciphers, fastest first for the CPU at hand. With AES instructions AES-GCM costs a fraction of
# chacha20-poly1305's CPU in `cryptography` (asyncssh's default pick); without them chacha20 is
# the fast one. The rest of asyncssh's default list follows, for servers that offer neither.
GCM_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
CHACHA_CIPHER = "chacha20-poly1305@openssh.com"
OTHER_CIPHERS = ("aes128-ctr", "aes192-ctr", "aes256-ctr")


def cpu_has_aes(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AES instructions (x86 ``flags`` or Arm ``Features``: ``aes``)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and "aes" in value.split():
            return True
    return False


def preferred_ciphers(*, has_aes: bool | None = None) -> list[str]:
    """The SSH ciphers to offer, in order: AES-GCM first when the CPU has AES, else chacha20."""
    aes = cpu_has_aes() if has_aes is None else has_aes
    fast = [*GCM_CIPHERS, CHACHA_CIPHER] if aes else [CHACHA_CIPHER, *GCM_CIPHERS]
    return [*fast, *OTHER_CIPHERS]


# Auth methods a connection tries before the server has named its own (quick_auth_client):
# those that our credentials (key, password) serve, in asyncssh's preferred order.
FIRST_AUTH_METHODS = (b"publickey", b"keyboard-interactive", b"password")


@functools.cache
def quick_auth_client() -> type[asyncssh.SSHClient]:
    """An ``asyncssh.SSHClient`` (``client_factory``) that skips the opening "none" request.

    asyncssh opens authentication with a "none" request to learn the server's methods: a
    round trip before the first real attempt (100 ms on a link to another country). This
    client's connection starts with ``FIRST_AUTH_METHODS`` instead (those the connection has
    credentials for are tried, in its preferred order, as asyncssh does after a "none"); a
    method the server refuses gets its list of methods back, and asyncssh goes on with it
    as usual. It sets ``SSHClientConnection._auth_methods`` (private; read with
    ``_preferred_auth``) of asyncssh 2.24.1, pinned in constraints.txt, from the documented
    ``connection_made`` callback; ``tests/integration/test_open_sftp.py`` fails if asyncssh
    changes them. Otherwise the connection asks "none" first, as before.
    """
    import asyncssh

    class QuickAuthClient(asyncssh.SSHClient):
        skipped_none = False

        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            if getattr(conn, "_auth_methods", None) != [b"none"]:
                return
            preferred = getattr(conn, "_preferred_auth", None) or []
            first = [method for method in preferred if method in FIRST_AUTH_METHODS]
            if first:
                conn._auth_methods = first
                self.skipped_none = True

    return QuickAuthClient
