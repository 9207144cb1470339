"""Primary and backup endpoints through the Airflow layer's opener (``airflow/remote.py``).

Real servers on loopback: a stopped primary passes the day to the backup (manifest column
``endpoint``, one French e-mail to the SMTP sink per day); a primary presenting a wrong host
key or certificate fails the run at once and the backup never sees a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake.airflow.remote import backup_marker, open_remote
from include.cc_intake.config import ProviderConfig
from include.cc_intake.errors import CertificateError, HostKeyError, RemoteError
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import read_manifest
from include.cc_intake.recordings import copy_day
from include.cc_intake.sandbox.keys import ensure_keys
from include.cc_intake.sandbox.sftp_server import SftpServer
from include.cc_intake.sandbox.smtp_sink import SmtpSink
from tests.helpers import parse_provider, provider_dict
from tests.integration.ftps_servers import FtpsHandle, pyftpdlib_server
from tests.integration.servers import ServerHandle
from tests.integration.test_copy_day import DAY, seed_day
from tests.integration.test_ftps import seed

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def sftp(base: Path) -> Iterator[tuple[ServerHandle, SftpServer]]:
    keys = ensure_keys(base / "keys")
    files = base / "remote"
    files.mkdir(parents=True, exist_ok=True)
    server = SftpServer(files, keys)
    port = server.start()
    try:
        yield ServerHandle("sandbox", port, server.login, keys, files, ""), server
    finally:
        server.stop()


@pytest.fixture
def mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail") as sink:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {
                        "disable_ssl": True,
                        "disable_tls": True,
                        "from_email": "intake@example.com",
                        "retry_limit": 0,
                    },
                }
            ),
        )
        monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path / "data"))
        yield sink


def provider(protocol: str = "sftp") -> ProviderConfig:
    data = provider_dict()
    recordings = data["recordings"]
    del recordings["sftp_conn_id"]
    if protocol == "ftps":
        recordings.update(protocol="ftps", ftp_conn_ids=["ftps_primary", "ftps_backup"])
    else:
        recordings["sftp_conn_ids"] = ["sftp_primary", "sftp_backup"]
    return parse_provider(data, source=Path("test.yaml"))


def copy(cfg: ProviderConfig, root: Path, token: str = "run-1") -> Any:
    """What copy_recordings runs: open through the endpoints, copy the day."""

    async def go() -> Any:
        async with open_remote(cfg, DAY) as remote:
            return await copy_day(
                remote, cfg, DAY, layout=DayLayout(root, cfg.id, DAY), token=token
            )

    return asyncio.run(go())


def endpoints_of(root: Path) -> set[str]:
    rows = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv", ["call_id"])
    return {row.extra.get("endpoint", "") for row in rows}


def test_stopped_primary_day_lands_through_backup_with_one_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail: SmtpSink
) -> None:
    with sftp(tmp_path / "primary") as (primary, _):
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_PRIMARY", primary.connection_json())
    # The primary is stopped now: nothing listens on its port.
    with sftp(tmp_path / "backup") as (backup, server):
        seed_day(backup)
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_BACKUP", backup.connection_json())
        root = tmp_path / "data"
        summary = copy(provider(), root)
        assert summary.failures == []
        assert endpoints_of(root) == {"sftp_backup"}
        assert server.connections_accepted >= 1
        copy(provider(), root, token="run-2")  # a retry, the same day: no second e-mail
    messages = mail.messages()
    assert len(messages) == 1
    subject = str(messages[0]["Subject"])
    assert "[intake][acme_abidjan][2026-11-25]" in subject
    assert "secours" in subject
    body = messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "sftp_primary" in body and "sftp_backup" in body
    marker = backup_marker(root, "acme_abidjan", DAY)
    assert json.loads(marker.read_text())["served_by"] == "sftp_backup"
    assert not (root / "quality/acme_abidjan/2026-11-25" / marker.name).exists()


def test_primary_with_a_wrong_host_key_fails_and_backup_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail: SmtpSink
) -> None:
    other = ensure_keys(tmp_path / "other-keys").host_public_line
    with sftp(tmp_path / "primary") as (primary, _), sftp(tmp_path / "backup") as (backup, server):
        seed_day(primary)
        seed_day(backup)
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_PRIMARY", primary.connection_json(host_key=other))
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_BACKUP", backup.connection_json())
        with pytest.raises(HostKeyError) as caught:
            copy(provider(), tmp_path / "data")
        assert server.connections_accepted == 0
    assert "sftp_primary" in str(caught.value)
    assert caught.value.retryable is False
    assert mail.messages() == []
    assert not (tmp_path / "data/manifests").exists()


def test_every_endpoint_down_names_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("primary", "backup"):
        with sftp(tmp_path / name) as (handle, _):
            monkeypatch.setenv(f"AIRFLOW_CONN_SFTP_{name.upper()}", handle.connection_json())
    with pytest.raises(RemoteError) as caught:
        copy(provider(), tmp_path / "data")
    message = str(caught.value)
    assert "none of the 2 endpoints answered" in message
    assert "sftp_primary" in message and "sftp_backup" in message


def _ftps_env(monkeypatch: pytest.MonkeyPatch, name: str, handle: FtpsHandle, **extra: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_FTPS_{name.upper()}", handle.connection_json(**extra))


def test_ftps_stopped_primary_serves_the_day_from_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail: SmtpSink
) -> None:
    with pyftpdlib_server(tmp_path / "primary") as primary:
        _ftps_env(monkeypatch, "primary", primary)
    with pyftpdlib_server(tmp_path / "backup") as backup:
        files = seed(backup)
        _ftps_env(monkeypatch, "backup", backup)
        root = tmp_path / "data"
        summary = copy(provider("ftps"), root)
    assert summary.failures == []
    assert sum(d["copied"] for d in summary.directions.values()) == len(files)
    assert endpoints_of(root) == {"ftps_backup"}
    [message] = mail.messages()
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "FTPS" in body


def test_ftps_primary_with_a_wrong_certificate_fails_and_backup_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail: SmtpSink
) -> None:
    with (
        pyftpdlib_server(tmp_path / "primary") as primary,
        pyftpdlib_server(tmp_path / "backup") as backup,
    ):
        seed(primary)
        seed(backup)
        _ftps_env(monkeypatch, "primary", primary, cert_sha256="ab" * 32)
        _ftps_env(monkeypatch, "backup", backup)
        with pytest.raises(CertificateError) as caught:
            copy(provider("ftps"), tmp_path / "data")
        assert backup.connections == 0
    message = str(caught.value)
    assert message.startswith("acme_abidjan 2026-11-25:")
    assert "certificate" in message and "ftps_primary" in message
    assert (caught.value.provider, caught.value.day) == ("acme_abidjan", DAY)  # its facts
    assert mail.messages() == []
