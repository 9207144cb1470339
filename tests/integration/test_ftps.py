"""The voice day against real FTPS servers: vsftpd (LIST only), ProFTPD (MLSD), pyftpdlib.

vsftpd and ProFTPD are configured as providers are told to (TLS required on both channels,
TLS session reuse required on the data channel): the stdlib's ``FTP_TLS`` is refused by them,
ours is not. The listing, the classification, the copy with its SHA-256 and manifest, and the
resume are the SFTP path's, through ``recordings.copy_day``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ftplib
import hashlib
import logging
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake import ftps
from include.cc_intake.errors import CertificateError, HostKeyError, RemoteError
from include.cc_intake.layout import DayLayout, resume_tag, tmp_path_for
from include.cc_intake.manifest import read_manifest, read_records
from include.cc_intake.recordings import classify_day, copy_day, list_day
from tests.integration.ftps_servers import FACTORIES, FtpsHandle, missing, pyftpdlib_server
from tests.integration.servers import sandbox_server
from tests.integration.test_copy_day import DAY, OLD, landed, make_provider, put, seed_day

pytestmark = pytest.mark.integration

KINDS = ["vsftpd", "proftpd", "pyftpdlib"]


def require(kind: str) -> None:
    reason = missing(kind)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the FTPS matrix must run)")
    pytest.skip(reason)


@pytest.fixture(params=KINDS)
def ftps_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FtpsHandle]:
    """Each test runs against vsftpd, ProFTPD and the in-process pyftpdlib server."""
    require(request.param)
    with FACTORIES[request.param](tmp_path / "server") as handle:
        yield handle


def served(server: FtpsHandle, rel: str, content: bytes, mtime: float = OLD) -> Path:
    """A file the server serves (readable by its anonymous user)."""
    path = put(server, rel, content, mtime)  # type: ignore[arg-type]
    path.chmod(0o644)
    for parent in path.parents:
        if parent == server.files:
            break
        parent.chmod(0o755)
    return path


def seed(server: FtpsHandle) -> dict[str, bytes]:
    files = seed_day(server)  # type: ignore[arg-type]
    for rel in files:
        served(server, rel, files[rel])
    return files


def source_for(server: FtpsHandle, **changes: Any) -> ftps.FtpsSource:
    endpoint = server.endpoint(**changes)

    def open_session() -> ftps.FtpsSession:
        return ftps.connect(endpoint, where="acme_abidjan 2026-11-25")

    return ftps.FtpsSource(open_session(), open_session, endpoint=endpoint.name)


def run(coro_factory: Any) -> Any:
    return asyncio.run(coro_factory())


def copy(server: FtpsHandle, root: Path, token: str = "run-1", **recordings: object) -> Any:
    cfg = make_provider(server, **recordings)  # type: ignore[arg-type]

    async def go() -> Any:
        source = source_for(server)
        try:
            return await copy_day(
                source, cfg, DAY, layout=DayLayout(root, cfg.id, DAY), token=token
            )
        finally:
            await source.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["vsftpd", "proftpd"])
def test_stdlib_ftp_tls_is_refused_where_ours_is_served(kind: str, tmp_path: Path) -> None:
    """The servers require TLS session reuse on the data channel: the test can fail."""
    require(kind)
    with FACTORIES[kind](tmp_path / "server") as server:
        served(server, "exports/inbound/20261125/a.wav", b"x" * 1000)
        context = ftps.tls_context(server.endpoint())
        plain = ftplib.FTP_TLS(context=context, timeout=10)
        plain.connect("127.0.0.1", server.port)
        plain.login(server.login, server.password)
        plain.prot_p()
        with pytest.raises((ftplib.Error, ssl.SSLError, OSError)) as refused:
            plain.nlst("/exports/inbound/20261125")
        plain.close()
        if isinstance(refused.value, ftplib.Error):
            assert str(refused.value)[:3] in ("522", "425", "450", "426"), refused.value
        session = ftps.connect(server.endpoint(), where="acme_abidjan 2026-11-25")
        try:
            assert session.read_file("/exports/inbound/20261125/a.wav") == b"x" * 1000
            assert session.has_mlsd is (kind == "proftpd")
        finally:
            session.close()


def test_same_files_same_classification_as_sftp(ftps_server: FtpsHandle, tmp_path: Path) -> None:
    """One file tree served over FTPS and SFTP: the same entries, verdicts and reasons."""
    tree = {
        "exports/inbound/20261125/20261125_080102_AG01_C1001.wav": b"a" * 5000,
        "exports/inbound/20261125/20261125_091500_AG02_C1002.mp3": b"b" * 7000,
        "exports/inbound/20261125/20261124_235959_AG09_C668.wav": b"old",
        "exports/inbound/20261125/notes de l'agent.txt": b"hello",
        "exports/inbound/20261125/20261125_120100_AG09_C667.wav": b"",
        "exports/outbound/20261125/20261125_110000_AG03_C2001.wav": b"c" * 9000,
    }
    for rel, content in tree.items():
        served(ftps_server, rel, content)
    (ftps_server.files / "exports/inbound/20261125/sub").mkdir(mode=0o755)
    link = "exports/inbound/20261125/20261125_120000_AG09_C666.wav"
    # Relative, to a file inside the root: a chrooted server does not list a dangling link.
    (ftps_server.files / link).symlink_to("20261125_080102_AG01_C1001.wav")
    cfg = make_provider(ftps_server)  # type: ignore[arg-type]

    async def over_ftps() -> Any:
        source = source_for(ftps_server)
        try:
            return await list_day(source, cfg.recordings, DAY)
        finally:
            await source.aclose()

    ftps_listing = asyncio.run(over_ftps())
    with sandbox_server(tmp_path / "sftp") as sftp_server:
        for rel, content in tree.items():
            put(sftp_server, rel, content)
        (sftp_server.files / "exports/inbound/20261125/sub").mkdir()
        (sftp_server.files / link).symlink_to("20261125_080102_AG01_C1001.wav")

        async def over_sftp() -> Any:
            async with sftp_server.sftp() as sftp:
                return await list_day(sftp, cfg.recordings, DAY)

        sftp_listing = asyncio.run(over_sftp())

    def shape(listing: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (
                v.entry.direction,
                v.entry.rel_name,
                v.entry.size if v.entry.kind == "file" else None,  # a folder's size: the server's
                v.entry.kind,
                v.reason,
            )
            for v in classify_day(listing, cfg.recordings, DAY)
        )

    assert shape(ftps_listing) == shape(sftp_listing)
    assert len(shape(ftps_listing)) == 8  # six files, the folder `sub` and a link
    assert ("ENTRANTS", Path(link).name, None, "symlink", "not_regular_file") in shape(ftps_listing)
    by_name = {e.rel_name: e for e in ftps_listing["ENTRANTS"]}
    exact = int(OLD)
    # MLSD times are exact; LIST times (vsftpd) are whole minutes of the same instant.
    expected = exact if ftps_server.mlsd else exact - exact % 60
    assert by_name["20261125_080102_AG01_C1001.wav"].mtime == expected
    assert by_name["sub"].kind == "dir"


def test_copy_day_lands_with_sha256_and_manifest(ftps_server: FtpsHandle, tmp_path: Path) -> None:
    files = seed(ftps_server)
    root = tmp_path / "data"
    before = ftps_server.connections
    summary = copy(ftps_server, root, max_parallel=3)
    assert summary.failures == []
    assert summary.directions["ENTRANTS"]["copied"] == 3
    assert summary.directions["SORTANTS"]["copied"] == 1
    # Parallel transfers run on their own control connections.
    assert ftps_server.connections - before >= 2
    manifest = root / "manifests/acme_abidjan/2026-11-25.csv"
    rows = {r.file_name: r for r in read_manifest(manifest, ["call_id"])}
    for rel, content in files.items():
        assert landed(root, rel).read_bytes() == content
        row = rows[Path(rel).name]
        assert row.status == "copied"
        assert row.sha256 == hashlib.sha256(content).hexdigest()
        assert row.extra["endpoint"] == "ftps_test"
    header, _ = read_records(manifest)
    assert header[-4:] == ["codec", "duration_s", "audio_ok", "endpoint"]
    assert not list(root.rglob("*.part"))
    again = copy(ftps_server, root, token="run-2")
    assert again.directions["ENTRANTS"]["skipped_identical"] == 3
    assert again.directions["ENTRANTS"]["copied"] == 0


def _plant(server: FtpsHandle, root: Path, rel: str, kept: bytes) -> Path:
    cfg = make_provider(server)  # type: ignore[arg-type]

    async def entry() -> Any:
        source = source_for(server)
        try:
            return await list_day(source, cfg.recordings, DAY)
        finally:
            await source.aclose()

    [found] = [e for e in run(entry)["ENTRANTS"] if e.rel_name == Path(rel).name]
    final = landed(root, rel)
    part = tmp_path_for(final, "run-1", tag=resume_tag(found.size, found.mtime))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(kept)
    return part


REL = "exports/inbound/20261125/20261125_080102_AG01_C1001.wav"


def test_resume_with_rest_after_the_check(
    ftps_server: FtpsHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 123)
    served(ftps_server, REL, content)
    root = tmp_path / "data"
    _plant(ftps_server, root, REL, content[:2_000_000])
    with caplog.at_level(logging.INFO):
        summary = copy(ftps_server, root)
    assert summary.failures == []
    assert landed(root, REL).read_bytes() == content
    assert any("resuming" in r.getMessage() and "2000000" in r.getMessage() for r in caplog.records)
    [row] = [r for r in read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv")]
    assert row.sha256 == hashlib.sha256(content).hexdigest()


def test_resume_of_a_different_version_restarts_from_zero(
    ftps_server: FtpsHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = os.urandom(2 * 1024 * 1024)
    served(ftps_server, REL, content)
    root = tmp_path / "data"
    kept = bytearray(content[:1_500_000])
    kept[100] ^= 0xFF  # the head differs: the check must see it
    _plant(ftps_server, root, REL, bytes(kept))
    with caplog.at_level(logging.INFO):
        summary = copy(ftps_server, root)
    assert summary.failures == []
    assert landed(root, REL).read_bytes() == content
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("restarting from byte 0" in w and "first at byte 100" in w for w in warnings)


def test_wrong_certificate_pin_fails_naming_certificate(
    ftps_server: FtpsHandle, tmp_path: Path
) -> None:
    with pytest.raises(CertificateError) as caught:
        ftps.connect(ftps_server.endpoint(cert_sha256="ab" * 32), where="acme_abidjan 2026-11-25")
    message = str(caught.value)
    assert "acme_abidjan 2026-11-25" in message
    assert "certificate" in message
    assert ftps_server.certificate.sha256 in message
    assert isinstance(caught.value, HostKeyError)
    assert caught.value.retryable is False


def test_ca_file_trusts_and_an_unrelated_ca_refuses(
    ftps_server: FtpsHandle, tmp_path: Path
) -> None:
    good = ftps_server.endpoint(cert_sha256=None, ca_file=str(ftps_server.certificate.cert_path))
    ftps.connect(good, where="acme_abidjan 2026-11-25").close()
    from include.cc_intake.sandbox.ftps_server import ensure_certificate

    other = ensure_certificate(tmp_path / "other-ca")
    bad = ftps_server.endpoint(cert_sha256=None, ca_file=str(other.cert_path))
    with pytest.raises(CertificateError, match="certificate"):
        ftps.connect(bad, where="acme_abidjan 2026-11-25")


def test_unreachable_server_is_a_remote_error(ftps_server: FtpsHandle) -> None:
    ftps_server.stop()
    with pytest.raises(RemoteError) as caught:
        ftps.connect(ftps_server.endpoint(), where="acme_abidjan 2026-11-25")
    assert not isinstance(caught.value, HostKeyError)
    assert "ftps_test" in str(caught.value)


def test_an_unparsable_list_line_is_an_error_naming_it(tmp_path: Path) -> None:
    """A LIST-only server (MLST not advertised) answering a line we cannot read."""
    with pyftpdlib_server(
        tmp_path / "server", mlsd=False, list_fault="weird listing line 42"
    ) as server:
        seed(server)
        cfg = make_provider(server)  # type: ignore[arg-type]

        async def go() -> Any:
            source = source_for(server)
            try:
                return await copy_day(
                    source, cfg, DAY, layout=DayLayout(tmp_path / "data", cfg.id, DAY), token="t"
                )
            finally:
                await source.aclose()

        with pytest.raises(RemoteError) as caught:
            asyncio.run(go())
    message = str(caught.value)
    assert "weird listing line 42" in message
    assert "/exports/inbound/20261125" in message
    assert "acme_abidjan 2026-11-25" in message
    assert not (tmp_path / "data/manifests").exists()


def test_list_only_server_copies_like_mlsd(tmp_path: Path) -> None:
    """pyftpdlib without MLSD: the LIST parse and MDTM settle the same day."""
    with pyftpdlib_server(tmp_path / "server", mlsd=False) as server:
        files = seed(server)
        recent = "exports/outbound/20261125/20261125_235900_AG03_C2002.wav"
        served(server, recent, b"r" * 4000, mtime=dt.datetime.now().timestamp() - 30)
        files[recent] = b"r" * 4000
        root = tmp_path / "data"
        summary = copy(server, root)
    assert summary.failures == []
    for rel, content in files.items():
        assert landed(root, rel).read_bytes() == content


def test_list_only_server_readiness_sees_a_young_file_moving(tmp_path: Path) -> None:
    """LIST times are minutes: MDTM settles the in-scope files too young to judge."""
    import time

    from include.cc_intake.recordings import assess_readiness

    with pyftpdlib_server(tmp_path / "server", mlsd=False) as server:
        seed(server)
        young = "exports/outbound/20261125/20261125_235900_AG03_C2002.wav"
        when = int(time.time()) - 30  # min_file_age is 5m
        when -= 1 if when % 60 == 0 else 0  # not on a whole minute: LIST would show less
        served(server, young, b"y" * 4000, mtime=when)
        cfg = make_provider(server)  # type: ignore[arg-type]

        async def look() -> Any:
            source = source_for(server)
            try:
                return await list_day(source, cfg.recordings, DAY)
            finally:
                await source.aclose()

        first, second = asyncio.run(look()), asyncio.run(look())
    readiness = assess_readiness(
        first, second, cfg=cfg.recordings, day=DAY, now=time.time(), expected={"ENTRANTS": 3}
    )
    states = {d.direction: (d.state, d.moving) for d in readiness.directions}
    assert states == {"ENTRANTS": ("ready", 0), "SORTANTS": ("moving", 1)}
    [entry] = [e for e in second["SORTANTS"] if e.rel_name == Path(young).name]
    assert entry.mtime == when  # MDTM's exact time, not the listed minute


@pytest.mark.parametrize("kind", ["vsftpd", "proftpd"])
def test_a_name_that_is_not_utf8_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    """Servers that send names as raw bytes: a Latin-1 name fails the listing, named."""
    require(kind)
    with FACTORIES[kind](tmp_path / "server") as server:
        seed(server)
        folder = server.files / "exports/inbound/20261125"
        odd = os.path.join(os.fsencode(folder), b"appel_caf\xe9.wav")
        with open(odd, "wb") as handle:
            handle.write(b"x" * 100)
        os.chmod(odd, 0o644)
        cfg = make_provider(server)  # type: ignore[arg-type]

        async def go() -> Any:
            source = source_for(server)
            try:
                return await list_day(source, cfg.recordings, DAY)
            finally:
                await source.aclose()

        with pytest.raises(RemoteError) as caught:
            asyncio.run(go())
    assert "not UTF-8" in str(caught.value)
    assert "/exports/inbound/20261125" in str(caught.value)
