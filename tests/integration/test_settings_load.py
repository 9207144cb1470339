"""`make settings` for real: airflow_settings.yaml into a migrated SQLite DB, then used by hooks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.cc_intake.airflow.settings import apply_settings, parse_settings
from include.cc_intake.sandbox import up
from include.cc_intake.sandbox.env import Sandbox
from include.cc_intake.sandbox.services import default_services
from tests.integration.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "airflow_settings.yaml"


def stored(conn_id: str) -> Any:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        assert conn is not None, f"{conn_id} not in the metadata DB"
        session.expunge(conn)
        return conn


def test_make_settings_creates_then_leaves_unchanged_then_updates(airflow_db: Path) -> None:
    command = [sys.executable, "-m", "include.cc_intake.airflow.settings", str(SETTINGS)]
    first = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert first.returncode == 0, first.stderr
    for conn_id in ("sftp_acme", "sftp_baobab", "crm_acme", "crm_baobab", "smtp_default"):
        assert f"connection {conn_id}: " in first.stdout

    sftp = stored("sftp_acme")
    assert (sftp.conn_type, sftp.host, sftp.port, sftp.login) == (
        "sftp",
        "127.0.0.1",
        2222,
        "intake",
    )
    assert sftp.extra_dejson["key_file"] == str(ROOT / ".up/sandbox/keys/intake_client_ed25519_key")
    assert sftp.extra_dejson["known_hosts"] == str(ROOT / ".up/sandbox/known_hosts")
    crm = stored("crm_baobab")
    assert (crm.conn_type, crm.schema, crm.port) == ("http", "http", 8181)
    assert crm.extra_dejson == {"X-API-Key": up.CRM_SECRETS["crm_baobab"]}
    smtp = stored("smtp_default")
    assert smtp.extra_dejson["disable_ssl"] is True and smtp.extra_dejson["disable_tls"] is True
    assert "sandbox-acme-token" not in first.stdout  # secrets are never printed
    # The shared link's pool, and its slots where a task can read them (#11).
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable

    link = Pool.get_pool("cc_intake_link")
    assert link is not None and link.slots == 4
    assert Variable.get("cc_intake_link_slots") == "4"
    assert "CC_INTAKE_LINK_POOL=cc_intake_link" in first.stdout

    again = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": unchanged (") == 5

    doc = yaml.safe_load(SETTINGS.read_text())
    doc["airflow"]["connections"][0]["conn_port"] = 2999
    doc["airflow"]["pools"] = [{"pool_name": "cc_intake_sftp", "pool_slot": 3}]
    doc["airflow"]["variables"] = [{"variable_name": "cc_intake_note", "variable_value": "hi"}]
    lines = apply_settings(parse_settings(doc, root=ROOT))
    assert lines[0].startswith("connection sftp_acme: updated (sftp 127.0.0.1:2999")
    assert stored("sftp_acme").port == 2999

    pool = Pool.get_pool("cc_intake_sftp")
    assert pool is not None
    assert pool.slots == 3
    assert Variable.get("cc_intake_note") == "hi"


def test_settings_file_reaches_the_make_up_sandbox(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The YAML's key_file/known_hosts/secret extras really open the sandbox `make up` starts."""
    ports = {"sftp_acme": free_port(), "sftp_baobab": free_port(), "smtp_default": free_port()}
    crm_port = free_port()
    doc = yaml.safe_load(SETTINGS.read_text())
    for entry in doc["airflow"]["connections"]:
        entry["conn_port"] = crm_port if entry["conn_type"] == "http" else ports[entry["conn_id"]]
    # The YAML's paths name `.up/sandbox/…` under the root: make tmp_path that root.
    settings = parse_settings(doc, root=tmp_path)
    for conn_id in ("sftp_acme", "crm_acme", "crm_baobab"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    # Outside a task the hooks read the metadata DB only in a server process (as a worker's
    # task would through the api-server): say this is one.
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")

    with Sandbox(
        tmp_path / ".up" / "sandbox",
        ports=ports,
        services=default_services(crm_port=crm_port, crm_secrets=up.CRM_SECRETS),
    ) as sandbox:
        up.write_known_hosts(sandbox)
        lines = apply_settings(settings)
        assert not any("not there yet" in line for line in lines), lines

        from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

        async def listing() -> list[str]:
            hook = SFTPHookAsync(sftp_conn_id="sftp_acme")
            async with hook.get_managed_conn() as sftp:
                return sorted(await sftp.listdir("/"))

        assert "exports" in asyncio.run(listing())

        for conn_id, route in (
            ("crm_acme", "/api/export/interactions"),
            ("crm_baobab", "/v2/interactions"),
        ):
            conn = stored(conn_id)
            url = f"http://{conn.host}:{conn.port}{route}"
            assert _status(url, conn.extra_dejson) != 401, f"{conn_id}: credentials refused"
            assert _status(url, {}) == 401  # the server does check them


def _status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
