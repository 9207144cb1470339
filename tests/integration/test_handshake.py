"""The completion handshake against real SFTP servers (OpenSSH's sshd and the asyncssh sandbox).

Through the production session (``airflow/sftp.open_sftp``, an Airflow connection) and the
production copy (``recordings.copy_day``): the marker's content and atomic upload, the move's
idempotence, and what the next run's listing and manifest make of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake import handshake
from include.cc_intake.airflow.sftp import open_sftp
from include.cc_intake.config import ProviderConfig
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import read_manifest
from include.cc_intake.recordings import DaySummary, assess_readiness, copy_day, list_day
from tests.integration.servers import ServerHandle, have_sshd, openssh_server, sandbox_server
from tests.integration.test_copy_day import DAY, make_provider, put, seed_day

pytestmark = pytest.mark.integration

MARKER = "_RECU_2026-11-25.ok"


@pytest.fixture(
    params=[
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
)
def server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerHandle]:
    """A provider server we may write on (the sandbox's is read-only unless told otherwise),
    reached through the Airflow connection ``sftp_acme`` as the tasks reach it."""
    factory: Callable[[Path], Any] = (
        openssh_server
        if request.param == "openssh"
        else functools.partial(sandbox_server, read_only=False)
    )
    with factory(tmp_path / "server") as handle:
        monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", handle.connection_json())
        yield handle


def local(server: ServerHandle, remote: str) -> Path:
    return server.files / remote.removeprefix(server.prefix).lstrip("/")


def in_session(cfg: ProviderConfig, work: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        async with open_sftp(cfg, DAY) as sftp:
            return await work(sftp)

    return asyncio.run(go())


def copy(cfg: ProviderConfig, root: Path, token: str) -> DaySummary:
    layout = DayLayout(root, cfg.id, DAY)
    return in_session(cfg, lambda s: copy_day(s, cfg, DAY, layout=layout, token=token))


def manifest(root: Path) -> dict[str, Any]:
    rows = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv", ["call_id"])
    return {r.file_name: r for r in rows}


# --------------------------------------------------------------------------- marker


def test_marker_lists_every_file_we_hold_and_the_next_run_ignores_it(
    server: ServerHandle, tmp_path: Path
) -> None:
    files = seed_day(server)
    root = tmp_path / "data"
    cfg = make_provider(server, on_complete="marker")
    copy(cfg, root, "run-1")
    rows = list(manifest(root).values())

    result = in_session(cfg, lambda s: handshake.write_markers(s, cfg, DAY, rows, token="t1"))

    for direction, folder in (("ENTRANTS", "inbound"), ("SORTANTS", "outbound")):
        marker = server.files / "exports" / folder / "20261125" / MARKER
        mine = sorted((rel, c) for rel, c in files.items() if f"/{folder}/" in rel)
        expected = "file_name,size_bytes,sha256\n" + "".join(
            f"{Path(rel).name},{len(c)},{hashlib.sha256(c).hexdigest()}\n" for rel, c in mine
        )
        assert marker.read_text(encoding="utf-8") == expected
        assert result.directions[direction]["files"] == len(mine)
        assert not [p.name for p in marker.parent.iterdir() if p.name.endswith(".part")]

    # The marker is ours: the next run neither rejects it nor copies it; a re-run of the
    # handshake replaces it in place (same content, no error on the existing name).
    summary = copy(cfg, root, "run-2")
    assert summary.directions["ENTRANTS"]["rejected"] == {}
    assert {r.status for r in manifest(root).values()} == {"skipped_identical"}
    in_session(cfg, lambda s: handshake.write_markers(s, cfg, DAY, rows, token="t2"))
    assert (server.files / "exports/inbound/20261125" / MARKER).read_text().count("\n") == 4


class _WatchRename:
    """The real session, watched at the rename: the final name must not exist before it."""

    def __init__(self, sftp: Any, server: ServerHandle) -> None:
        self._sftp, self._server = sftp, server
        self.seen: list[tuple[bool, bytes]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sftp, name)

    async def posix_rename(self, old: str, new: str) -> None:
        self.seen.append((local(self._server, new).exists(), local(self._server, old).read_bytes()))
        await self._sftp.posix_rename(old, new)


class _CutMidWrite:
    """The real session, whose line drops halfway through the marker's upload."""

    def __init__(self, sftp: Any) -> None:
        self._sftp = sftp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sftp, name)

    @contextlib.asynccontextmanager
    async def _open(self, path: str, mode: str) -> Any:
        async with self._sftp.open(path, mode) as remote:

            class Half:
                async def write(self, data: bytes) -> None:
                    await remote.write(data[: len(data) // 2])
                    raise ConnectionResetError("the line dropped")

            yield Half()

    def open(self, path: str, mode: str = "r") -> Any:
        return self._open(path, mode)


def test_marker_upload_never_shows_a_partial_file_under_its_final_name(
    server: ServerHandle, tmp_path: Path
) -> None:
    seed_day(server)
    root = tmp_path / "data"
    cfg = make_provider(server, on_complete="marker")
    copy(cfg, root, "run-1")
    rows = list(manifest(root).values())
    marker = server.files / "exports/inbound/20261125" / MARKER

    # The rename publishes a complete file, and only then does the final name exist.
    watched: list[_WatchRename] = []

    async def watch(sftp: Any) -> None:
        watched.append(_WatchRename(sftp, server))
        await handshake.write_markers(watched[0], cfg, DAY, rows, token="t1")  # type: ignore[arg-type]

    in_session(cfg, watch)
    (before_inbound, content), _ = watched[0].seen
    assert before_inbound is False
    assert content == marker.read_bytes() and content.count(b"\n") == 4

    # A cut mid-upload: the earlier marker stays whole, no temporary file is left.
    earlier = marker.read_bytes()
    with pytest.raises(handshake.HandshakeError) as info:
        in_session(
            cfg,
            lambda s: handshake.write_markers(
                _CutMidWrite(s),  # type: ignore[arg-type]
                cfg,
                DAY,
                rows,
                token="t2",
            ),
        )
    message = str(info.value)
    assert message.startswith("acme_abidjan 2026-11-25: cannot write the completion marker")
    assert MARKER in message and "the line dropped" in message
    assert info.value.details["endpoint"] == "sftp_acme"
    assert marker.read_bytes() == earlier
    assert not [p.name for p in marker.parent.iterdir() if p.name.endswith(".part")]


def test_a_server_that_refuses_writes_fails_with_the_handshake_error(tmp_path: Path) -> None:
    with sandbox_server(tmp_path / "server") as ro, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_SFTP_ACME", ro.connection_json())
        seed_day(ro)
        root = tmp_path / "data"
        cfg = make_provider(ro, on_complete="marker")
        copy(cfg, root, "run-1")
        rows = list(manifest(root).values())
        with pytest.raises(handshake.HandshakeError, match="read-only") as info:
            in_session(cfg, lambda s: handshake.write_markers(s, cfg, DAY, rows, token="t"))
        assert "The day stays landed and proven" in str(info.value)
        assert manifest(root) and all(r.status == "copied" for r in manifest(root).values())


# --------------------------------------------------------------------------- move


@pytest.mark.parametrize("recursive", [False, True], ids=["flat", "recursive"])
def test_move_is_idempotent_and_the_next_run_still_holds_every_file(
    server: ServerHandle, tmp_path: Path, recursive: bool
) -> None:
    files = seed_day(server)
    root = tmp_path / "data"
    cfg = make_provider(server, on_complete="move", recursive=recursive)
    copy(cfg, root, "run-1")
    first = manifest(root)
    rows = list(first.values())

    result = in_session(cfg, lambda s: handshake.move_done(s, cfg, DAY, rows))
    assert result.directions["ENTRANTS"] == {"moved": 3, "already": 0, "left": []}
    assert result.directions["SORTANTS"] == {"moved": 1, "already": 0, "left": []}
    for rel, content in files.items():
        moved = server.files / Path(rel).parent / "traites" / Path(rel).name
        assert moved.read_bytes() == content  # renamed, whole
        assert not (server.files / rel).exists()

    # Again: everything is already there, nothing moves, nothing fails.
    again = in_session(cfg, lambda s: handshake.move_done(s, cfg, DAY, rows))
    assert again.directions["ENTRANTS"] == {"moved": 0, "already": 3, "left": []}

    # The next run lists the moved files under their own names: held and identical, not
    # `kept` (gone) and not re-copied; the readiness sees them settled.
    listing = in_session(cfg, lambda s: list_day(s, cfg.recordings, DAY))
    assert sorted(e.rel_name for e in listing["ENTRANTS"]) == sorted(
        Path(r).name for r in files if "/inbound/" in r
    )
    readiness = assess_readiness(
        listing,
        listing,
        cfg=cfg.recordings,
        day=DAY,
        now=time.time(),
        expected={"ENTRANTS": 3, "SORTANTS": 1},
    )
    assert readiness.ready, readiness.describe()
    assert [d.state for d in readiness.directions] == ["ready", "ready"]
    summary = copy(cfg, root, "run-2")
    assert summary.directions["ENTRANTS"]["skipped_identical"] == 3
    assert summary.directions["ENTRANTS"]["kept"] == 0
    assert summary.directions["ENTRANTS"]["rejected"] == {}
    second = manifest(root)
    assert {r.status for r in second.values()} == {"skipped_identical"}
    assert [(r.file_name, r.sha256, r.copied_at) for r in second.values()] == [
        (r.file_name, r.sha256, r.copied_at) for r in first.values()
    ]


def test_move_leaves_a_file_the_provider_changed_since_our_copy(
    server: ServerHandle, tmp_path: Path
) -> None:
    seed_day(server)
    root = tmp_path / "data"
    cfg = make_provider(server, on_complete="move")
    copy(cfg, root, "run-1")
    rows = list(manifest(root).values())
    rel = "exports/inbound/20261125/20261125_091500_AG02_C1002.wav"
    put(server, rel, b"a newer, different version")

    result = in_session(cfg, lambda s: handshake.move_done(s, cfg, DAY, rows))
    entrants = result.directions["ENTRANTS"]
    assert entrants["moved"] == 2
    (note,) = entrants["left"]
    assert note.startswith("20261125_091500_AG02_C1002.wav: changed on the server since our copy")
    assert (server.files / rel).read_bytes() == b"a newer, different version"
    assert not (server.files / "exports/inbound/20261125/traites" / Path(rel).name).exists()


def test_move_never_overwrites_a_file_already_in_the_done_folder(
    server: ServerHandle, tmp_path: Path
) -> None:
    files = seed_day(server)
    root = tmp_path / "data"
    cfg = make_provider(server, on_complete="move")
    copy(cfg, root, "run-1")
    rows = list(manifest(root).values())
    rel = next(r for r in files if "/outbound/" in r)
    occupied = server.files / Path(rel).parent / "traites" / Path(rel).name
    occupied.parent.mkdir()
    occupied.write_bytes(b"the provider's own")

    result = in_session(cfg, lambda s: handshake.move_done(s, cfg, DAY, rows))
    assert result.directions["SORTANTS"]["moved"] == 0
    assert "exists, not overwritten" in result.directions["SORTANTS"]["left"][0]
    assert occupied.read_bytes() == b"the provider's own"
    assert (server.files / rel).read_bytes() == files[rel]
