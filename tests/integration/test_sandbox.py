"""The sandbox's servers, for real on loopback: SFTP (asyncssh), SMTP (aiosmtpd), connections."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import smtplib
import stat
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER, Sandbox
from include.cc_intake.sandbox.keys import SandboxKeys, ensure_keys
from include.cc_intake.sandbox.seed import SeedResult, seed_provider
from include.cc_intake.sandbox.sftp_server import SftpServer
from include.cc_intake.sandbox.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def acme() -> ProviderConfig:
    return load_provider(PROVIDERS_FOLDER / "acme_abidjan.yaml")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, acme: ProviderConfig) -> SeedResult:
    root = tmp_path_factory.mktemp("acme_root")
    result = seed_provider(root, acme, DAY)
    # A directory link to /etc: a client must not be able to walk through it.
    (root / "etc_link").symlink_to("/etc")
    return result


@pytest.fixture
def server(seeded: SeedResult, keys: SandboxKeys) -> Iterator[SftpServer]:
    with SftpServer(seeded.root, keys) as srv:
        yield srv


def _connect(server: SftpServer, keys: SandboxKeys, **overrides: object) -> Any:
    options: dict[str, object] = {
        "username": "intake",
        "client_keys": [keys.client_key],
        "known_hosts": asyncssh.import_known_hosts(keys.known_hosts_line("127.0.0.1", server.port)),
    }
    options.update(overrides)
    return asyncssh.connect("127.0.0.1", server.port, **options)


def posix_dir(remote_path: str) -> str:
    return remote_path.rsplit("/", 1)[0]


def test_server_serves_seeded_files(
    server: SftpServer, keys: SandboxKeys, seeded: SeedResult
) -> None:
    inbound = seeded.folders["ENTRANTS"]
    sample = next(f for f in seeded.files if f.direction == "ENTRANTS")

    async def scenario() -> tuple[set[str], bytes, int]:
        async with _connect(server, keys) as conn, conn.start_sftp_client() as sftp:
            names = set(await sftp.listdir(inbound))
            async with sftp.open(sample.remote_path, "rb") as handle:
                data = await handle.read()
            attrs = await sftp.stat(sample.remote_path)
            return names, data, int(attrs.mtime or 0)

    names, data, mtime = asyncio.run(scenario())
    assert set(seeded.valid["ENTRANTS"]) <= names
    assert set(seeded.rejected_reasons["ENTRANTS"]) <= names
    assert data == seeded.local_path(sample.remote_path).read_bytes()
    assert len(data) == sample.size
    assert mtime == int(sample.mtime)
    assert server.bytes_served >= sample.size


def test_wrong_host_key_is_refused(server: SftpServer, keys: SandboxKeys) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    pinned = asyncssh.import_known_hosts(f"[127.0.0.1]:{server.port} {other}")

    async def scenario() -> None:
        async with _connect(server, keys, known_hosts=pinned):
            pass

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(scenario())


@pytest.mark.parametrize("wrong", ["login", "client_key"])
def test_only_the_authorized_login_and_key_get_in(
    server: SftpServer, keys: SandboxKeys, wrong: str
) -> None:
    overrides: dict[str, object] = (
        {"username": "root"}
        if wrong == "login"
        else {"client_keys": [asyncssh.generate_private_key("ssh-ed25519")]}
    )

    async def scenario() -> None:
        async with _connect(server, keys, **overrides):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(scenario())


def test_symlink_is_listed_as_a_link_and_never_followed(
    server: SftpServer, keys: SandboxKeys, seeded: SeedResult
) -> None:
    link = next(e for e in seeded.rejected if e.reason == "not_regular_file")

    async def scenario() -> tuple[int, list[str]]:
        errors = []
        async with _connect(server, keys) as conn, conn.start_sftp_client() as sftp:
            entries = {n.filename: n for n in await sftp.readdir(posix_dir(link.remote_path))}
            mode = entries[link.name].attrs.permissions or 0
            for attempt in (sftp.stat, sftp.readlink):
                try:
                    await attempt(link.remote_path)
                except asyncssh.SFTPNoSuchFile:
                    errors.append(attempt.__name__)
            try:
                async with sftp.open(link.remote_path, "rb") as handle:
                    await handle.read()
            except asyncssh.SFTPNoSuchFile:
                errors.append("open")
        return mode, errors

    mode, errors = asyncio.run(scenario())
    assert stat.S_ISLNK(mode)
    assert errors == ["stat", "readlink", "open"]


def test_chroot_holds_and_server_is_read_only(
    server: SftpServer, keys: SandboxKeys, seeded: SeedResult
) -> None:
    sample = seeded.files[0]

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        async with _connect(server, keys) as conn, conn.start_sftp_client() as sftp:
            seen["realpath"] = await sftp.realpath("/../../..")
            seen["root"] = sorted(await sftp.listdir("/"))
            seen["above"] = sorted(await sftp.listdir("/../.."))
            for label, path in [("passwd", "/../../etc/passwd"), ("via_link", "/etc_link/passwd")]:
                try:
                    async with sftp.open(path, "rb") as handle:
                        seen[label] = await handle.read()
                except asyncssh.SFTPNoSuchFile:
                    seen[label] = "refused"
            try:
                await sftp.listdir("/etc_link")
            except asyncssh.SFTPNoSuchFile:
                seen["list_link"] = "refused"
            try:
                await sftp.remove(sample.remote_path)
            except asyncssh.SFTPPermissionDenied:
                seen["remove"] = "refused"
            try:
                async with sftp.open("/exports/new.wav", "wb") as handle:
                    await handle.write(b"x")
            except asyncssh.SFTPPermissionDenied:
                seen["write"] = "refused"
        return seen

    seen = asyncio.run(scenario())
    assert seen["realpath"] == "/"
    assert seen["above"] == seen["root"]
    assert "exports" in seen["root"]  # type: ignore[operator]
    assert seen["passwd"] == seen["via_link"] == seen["list_link"] == "refused"
    assert seen["remove"] == seen["write"] == "refused"
    assert seeded.local_path(sample.remote_path).is_file()
    assert not (seeded.root / "exports" / "new.wav").exists()


def test_drop_connections_cuts_a_read_mid_file(
    server: SftpServer, keys: SandboxKeys, seeded: SeedResult
) -> None:
    big = max(seeded.files, key=lambda f: f.size)
    assert big.size > 1_000_000

    async def scenario() -> tuple[int, int, BaseException | None, int]:
        got = 0
        failure: BaseException | None = None
        async with (
            _connect(server, keys) as conn,
            conn.start_sftp_client() as sftp,
            sftp.open(big.remote_path, "rb", block_size=16_384) as handle,
        ):
            got += len(await handle.read(16_384))
            dropped = server.drop_connections()
            try:
                while chunk := await handle.read(16_384):
                    got += len(chunk)
            except (asyncssh.Error, OSError) as exc:
                failure = exc
        async with _connect(server, keys) as conn, conn.start_sftp_client() as sftp:
            size_after = (await sftp.stat(big.remote_path)).size or 0
        return dropped, got, failure, size_after

    dropped, got, failure, size_after = asyncio.run(scenario())
    assert dropped == 1
    assert failure is not None, "the read went on after the connection was dropped"
    assert got < big.size
    assert size_after == big.size  # the server still serves new connections


def test_stop_leaves_no_thread_behind(seeded: SeedResult, keys: SandboxKeys) -> None:
    before = set(threading.enumerate())
    server = SftpServer(seeded.root, keys)
    port = server.start()
    assert port > 0 and server.running
    server.stop()
    sink = SmtpSink(seeded.root.parent / "mail_threads")
    sink.start()
    sink.stop()
    assert not server.running
    assert set(threading.enumerate()) - before == set()


def test_smtp_sink_stores_messages_in_arrival_order(tmp_path: Path) -> None:
    with SmtpSink(tmp_path / "mail") as sink:
        assert sink.port > 0
        for number in (1, 2):
            msg = EmailMessage()
            msg["From"] = "intake@sandbox.example"
            msg["To"] = "ops@sandbox.example"
            msg["Subject"] = f"[cc-intake] acme_abidjan 2026-11-25: alerte {number} — écart"
            msg.set_content("Relancer le jour après correction.")
            with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
                client.send_message(msg, to_addrs=["ops@sandbox.example", "audit@sandbox.example"])
        messages = sink.messages()
        paths = sink.paths()
    assert [m["Subject"].split("alerte ")[1][0] for m in messages] == ["1", "2"]
    assert "écart" in messages[0]["Subject"]
    assert messages[0]["X-Envelope-To"] == "ops@sandbox.example, audit@sandbox.example"
    assert "Relancer" in messages[0].get_content()
    assert [p.suffix for p in paths] == [".eml", ".eml"]
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600


def _read_report(result: SeedResult) -> tuple[list[str], list[list[str]]]:
    assert result.report_path is not None
    raw = result.local_path(result.report_path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    delimiter = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;").delimiter
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    return rows[0], rows[1:]


@pytest.mark.parametrize("scenario", ["normal", "report_mismatch"])
def test_seeded_report_counts_match_the_seed(tmp_path: Path, scenario: str) -> None:
    for yaml_path in sorted(PROVIDERS_FOLDER.glob("*.yaml")):
        cfg = load_provider(yaml_path)
        result = seed_provider(tmp_path / cfg.id, cfg, DAY, scenario=scenario)
        header, rows = _read_report(result)
        report = cfg.daily_report
        to_direction = {
            v.casefold(): d for d, values in report.direction_values.items() for v in values
        }
        col = header.index(report.direction_column)
        counted: dict[str, int] = {}
        if report.kind == "summary":
            assert report.count_column is not None
            for row in rows:
                direction = to_direction[row[col].casefold()]
                counted[direction] = int(row[header.index(report.count_column)])
        else:
            assert report.call_id_column is not None
            for row in rows:
                direction = to_direction[row[col].casefold()]
                counted[direction] = counted.get(direction, 0) + 1
            ids = {row[header.index(report.call_id_column)] for row in rows}
            assert {f.call_id for f in result.files} <= ids
        extra = 2 if scenario == "report_mismatch" else 0
        delivered = result.delivered_counts
        expected = {"ENTRANTS": delivered["ENTRANTS"] + extra, "SORTANTS": delivered["SORTANTS"]}
        assert counted == expected, cfg.id
        assert counted == result.report_counts


def test_sftp_hooks_connect_with_the_sandbox_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook, SFTPHookAsync

    async def list_root(conn_id: str) -> list[str]:
        hook = SFTPHookAsync(sftp_conn_id=conn_id)
        async with hook.get_managed_conn() as sftp:
            return sorted(await sftp.listdir("/"))

    with Sandbox(tmp_path / "work", days=DAY) as sandbox:
        env = sandbox.env()
        assert set(env) == {
            "AIRFLOW_CONN_SFTP_ACME",
            "AIRFLOW_CONN_SFTP_BAOBAB",
            "AIRFLOW_CONN_FTPS_CEDRE",  # cedre_lome's FTPS primary and backup
            "AIRFLOW_CONN_FTPS_CEDRE_BACKUP",
            "AIRFLOW_CONN_SMTP_DEFAULT",
        }
        acme_conn = json.loads(env["AIRFLOW_CONN_SFTP_ACME"])
        assert acme_conn["port"] not in (0, 22)
        assert acme_conn["extra"]["host_key"].startswith("ssh-ed25519 AAAA")
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        assert "exports" in asyncio.run(list_root("sftp_acme"))
        assert "ENREGISTREMENTS" in asyncio.run(list_root("sftp_baobab"))
        # The paramiko-based hook accepts the same connection.
        sync_names = SFTPHook(ssh_conn_id="sftp_baobab").list_directory("/ENREGISTREMENTS/ENTRANTS")
        assert set(sandbox.seeds["baobab_douala"].valid["ENTRANTS"]) <= set(sync_names)

        wrong = dict(acme_conn)
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        wrong["extra"] = {**acme_conn["extra"], "host_key": other}
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_WRONG", json.dumps(wrong))
        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            asyncio.run(list_root("sftp_wrong"))

        smtp_conn = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
        assert smtp_conn["port"] == sandbox.smtp.port  # type: ignore[union-attr]
        with smtplib.SMTP(smtp_conn["host"], smtp_conn["port"], timeout=10) as client:
            client.sendmail(
                "intake@sandbox.example", ["ops@sandbox.example"], b"Subject: t\r\n\r\nx"
            )
        assert len(sandbox.smtp.messages()) == 1  # type: ignore[union-attr]


class _EchoService:
    """A stand-in extra server: proves the hook a CRM server will plug into."""

    def __init__(self) -> None:
        self.started_with: Sandbox | None = None
        self.stopped = False

    def start(self, sandbox: Sandbox) -> None:
        self.started_with = sandbox

    def stop(self) -> None:
        self.stopped = True

    def connections(self) -> dict[str, str]:
        return {"crm_acme": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 1})}


def test_sandbox_defaults_to_each_providers_j_minus_1_and_runs_extra_services(
    tmp_path: Path,
) -> None:
    # 23:30 UTC is already the next day in Douala (UTC+1), not yet in Abidjan (UTC+0).
    now = dt.datetime(2026, 11, 26, 23, 30, tzinfo=dt.UTC)
    service = _EchoService()
    before = set(threading.enumerate())
    with Sandbox(tmp_path / "work", now=now, services=[service]) as sandbox:
        assert sandbox.days == {
            "acme_abidjan": dt.date(2026, 11, 25),
            "baobab_douala": dt.date(2026, 11, 26),
            "cedre_lome": dt.date(2026, 11, 25),  # Lomé is on UTC
        }
        assert sandbox.seeds["baobab_douala"].day == dt.date(2026, 11, 26)
        assert service.started_with is sandbox
        assert "AIRFLOW_CONN_CRM_ACME" in sandbox.env()
        assert sandbox.providers_folder == PROVIDERS_FOLDER
    assert service.stopped
    assert set(threading.enumerate()) - before == set()
