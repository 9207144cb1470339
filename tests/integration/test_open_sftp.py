"""The Airflow layer's SFTP session: connection from Airflow, host key checked, clear errors."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from include.cc_intake.airflow.sftp import open_sftp
from include.cc_intake.errors import HostKeyError, RemoteError
from include.cc_intake.recordings import list_day
from include.cc_intake.sandbox.keys import ensure_keys
from include.cc_intake.ssh_setup import CHACHA_CIPHER, cpu_has_aes, preferred_ciphers
from tests.integration.servers import ServerHandle, free_port
from tests.integration.test_copy_day import DAY, make_provider, seed_day

pytestmark = pytest.mark.integration


def listing(server: ServerHandle) -> dict:
    cfg = make_provider(server)

    async def go() -> dict:
        async with open_sftp(cfg, DAY) as sftp:
            return await list_day(sftp, cfg.recordings, DAY)

    return asyncio.run(go())


def test_known_host_key_opens_a_session(
    sftp_server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_day(sftp_server)
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", sftp_server.connection_json())
    found = listing(sftp_server)
    assert len(found["ENTRANTS"] or []) == 3
    assert len(found["SORTANTS"] or []) == 1


def test_wrong_host_key_is_refused_naming_provider_and_host_key(
    sftp_server: ServerHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Through the hook subclass that chooses the cipher (#15): the host-key check still holds.
    other = ensure_keys(tmp_path / "other-keys").host_public_line
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", sftp_server.connection_json(host_key=other))
    with pytest.raises(HostKeyError) as info:
        listing(sftp_server)
    message = str(info.value)
    assert message.startswith(f"acme_abidjan {DAY}:")
    assert "host key" in message
    assert "sftp_acme" in message


def test_unreachable_server_names_provider_day_and_connection(
    sftp_server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SFTP_ACME",
        sftp_server.connection_json().replace(
            f'"port": {sftp_server.port}', f'"port": {free_port()}'
        ),
    )
    with pytest.raises(RemoteError) as info:
        listing(sftp_server)
    assert f"acme_abidjan {DAY}: cannot open an SFTP session with connection 'sftp_acme'" in str(
        info.value
    )


def test_session_uses_the_fastest_cipher_for_this_cpu_and_logs_it(
    sftp_server: ServerHandle, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The DAG's hook (a subclass of the provider's) offers AES-GCM first when the CPU has AES.

    asyncssh alone would pick chacha20-poly1305 (its default order); the copy log names the
    cipher both ends agreed on.
    """
    seed_day(sftp_server)
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", sftp_server.connection_json())
    with caplog.at_level(logging.INFO, logger="include.cc_intake.airflow.sftp"):
        listing(sftp_server)
    expected = preferred_ciphers()[0]
    assert expected == ("aes128-gcm@openssh.com" if cpu_has_aes() else CHACHA_CIPHER)
    assert f"cipher {expected}" in caplog.text


def test_session_authenticates_without_the_none_round_trip(
    sftp_server: ServerHandle, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The DAG's hook connects with ``ssh_setup.quick_auth_client``: no opening "none" request.

    asyncssh alone asks "none" first and logs the server's answer ("Remaining auth methods");
    here the key is offered at once and accepted: no failure answer at all. This also pins the
    asyncssh internals the client relies on (``_auth_methods``, ``_preferred_auth``): if an
    upgrade changes them, "none" is asked again and this test fails.
    """
    import asyncssh

    seed_day(sftp_server)
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", sftp_server.connection_json())
    asyncssh.set_debug_level(2)
    try:
        with caplog.at_level(logging.DEBUG, logger="asyncssh"):
            found = listing(sftp_server)
    finally:
        asyncssh.set_debug_level(1)
    assert len(found["ENTRANTS"] or []) == 3
    assert "succeeded" in caplog.text  # "Auth for user … succeeded"
    assert "Remaining auth methods" not in caplog.text


def test_quick_auth_goes_on_with_the_methods_the_server_names(tmp_path: Path) -> None:
    """A server that refuses the first method tried (publickey) names its own (password):
    the client goes on with them, as asyncssh does after its "none" request."""
    import asyncssh

    from include.cc_intake.ssh_setup import quick_auth_client

    class PasswordOnly(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == "agent" and password == "s3cret"

    keys = ensure_keys(tmp_path / "keys")

    async def go() -> list[bool]:
        server = await asyncssh.create_server(
            PasswordOnly, "127.0.0.1", 0, server_host_keys=[keys.host_key]
        )
        port = server.sockets[0].getsockname()[1]
        clients: list = []

        def factory() -> asyncssh.SSHClient:
            clients.append(quick_auth_client()())
            return clients[-1]

        try:
            async with asyncssh.connect(
                "127.0.0.1",
                port,
                username="agent",
                password="s3cret",
                client_keys=[keys.client_key],  # refused: the server takes passwords only
                known_hosts=None,
                client_factory=factory,
            ):
                pass  # authenticated: the connection is open
            return [client.skipped_none for client in clients]
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(go()) == [True]
