"""Item 8 of issue #10: a full disk while writing the manifest or a proof file.

The writers run against a file system that really refuses the bytes, in two ways:

- ``tmpfs``: a 64 KiB tmpfs mounted as the data root and filled up, so the kernel answers
  ``ENOSPC`` as on a full data disk (needs root and a ``mount`` that works: skipped otherwise);
- ``fsize``: a child process whose ``RLIMIT_FSIZE`` is below the size of the new file, so the
  kernel answers ``EFBIG`` (works unprivileged on every Linux).

Either way the writer must raise the project's ``StorageError`` naming provider, day and path,
remove its temporary file, and leave the previous file byte for byte as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import ManifestRow, write_manifest
from include.cc_intake.proof import write_proof, write_summary

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "acme_abidjan"
DAY = "2026-11-25"
GROUPS = ["agent", "call_id", "date", "time"]

# Runs in a child: imports first (they may write bytecode), then the limit, then the write.
WRITER = textwrap.dedent(
    """
    import datetime as dt, json, resource, signal, sys
    from pathlib import Path
    from include.cc_intake.manifest import ManifestRow, write_manifest
    from include.cc_intake.proof import write_proof, write_summary

    args = json.loads(sys.argv[1])
    rows = [ManifestRow(**row) for row in args["rows"]]
    if args["fsize"] is not None:
        # Without this the kernel kills the process (SIGXFSZ) instead of failing the write.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args["fsize"], args["fsize"]))
    root = Path(args["root"])
    quality = root / "quality" / "acme_abidjan" / "2026-11-25"
    try:
        if args["what"] == "manifest":
            write_manifest(
                root / "manifests" / "acme_abidjan" / "2026-11-25.csv",
                rows,
                group_names=args["groups"],
                token="run2",
                root=root,
            )
        elif args["what"] == "proof":
            write_proof(quality, "recordings", args["result"])
        else:
            write_summary(
                quality,
                provider="acme_abidjan",
                day=dt.date(2026, 11, 25),
                recordings=args["result"],
            )
    except BaseException as exc:
        cause = exc.__cause__ or exc
        print("RESULT" + json.dumps({
            "error": type(exc).__name__, "message": str(exc),
            "provider": getattr(exc, "provider", None), "day": getattr(exc, "day", None),
            "path": getattr(exc, "path", None), "errno": getattr(cause, "errno", None),
        }))
    else:
        print("RESULT" + json.dumps({"error": None}))
    """
)


class FullDisk:
    """A data root whose next write is refused by the kernel (see the module docstring)."""

    def __init__(self, root: Path, mechanism: str) -> None:
        self.root = root
        self.mechanism = mechanism

    def fill(self) -> None:
        """Make the next write fail: fill the tmpfs (the limit of ``fsize`` is per process)."""
        if self.mechanism != "tmpfs":
            return
        fd = os.open(self.root / "filler", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)

    def write(self, what: str, **payload: Any) -> dict[str, Any]:
        args = {
            "root": str(self.root),
            "what": what,
            "fsize": 64 if self.mechanism == "fsize" else None,
            "groups": GROUPS,
            "rows": [],
            "result": None,
            **payload,
        }
        proc = subprocess.run(
            [sys.executable, "-c", WRITER, json.dumps(args)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
        assert line, f"writer child failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return dict(json.loads(line.removeprefix("RESULT")))

    @property
    def refusal(self) -> tuple[int, str]:
        """The errno and text the kernel answers with this mechanism."""
        if self.mechanism == "tmpfs":
            return errno.ENOSPC, "No space left on device (ENOSPC)"
        return errno.EFBIG, "File too large (EFBIG)"


@contextlib.contextmanager
def _tmpfs(target: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    target.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0750", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture(params=["tmpfs", "fsize"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FullDisk]:
    root = tmp_path / "data"
    if request.param == "tmpfs":
        with _tmpfs(root):
            yield FullDisk(root, "tmpfs")
    else:
        root.mkdir()
        yield FullDisk(root, "fsize")


def _rows(n: int) -> list[ManifestRow]:
    return [
        ManifestRow(
            direction="ENTRANTS",
            file_name=f"20261125_0900{i:02d}_AG1_C{i}.wav",
            remote_path=f"/exports/inbound/20261125/20261125_0900{i:02d}_AG1_C{i}.wav",
            size_bytes=1000 + i,
            remote_mtime="2026-11-25T09:00:00Z",
            sha256=f"{i:064x}",
            copied_at="2026-11-26T02:31:00Z",
            status="copied",
            groups={"agent": "AG1", "call_id": f"C{i}", "date": "20261125", "time": "090000"},
        )
        for i in range(n)
    ]


def _row_dict(row: ManifestRow) -> dict[str, Any]:
    return {**row.__dict__, "groups": dict(row.groups), "extra": dict(row.extra)}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def _assert_named(outcome: dict[str, Any], path: Path, disk: FullDisk) -> None:
    code, text = disk.refusal
    assert outcome["error"] == "StorageError", outcome
    assert (outcome["provider"], outcome["day"], outcome["path"]) == (PROVIDER, DAY, str(path))
    assert outcome["errno"] == code, outcome
    message = outcome["message"]
    assert message.startswith(f"{PROVIDER} {DAY}: cannot write the "), message
    assert str(path) in message and text in message, message


def test_item8_full_disk_while_writing_the_manifest_keeps_the_previous_one(
    full_disk: FullDisk,
) -> None:
    layout = DayLayout(full_disk.root, PROVIDER, dt.date(2026, 11, 25))
    write_manifest(layout.manifest, _rows(3), group_names=GROUPS, token="run1", root=layout.root)
    before = layout.manifest.read_bytes()
    full_disk.fill()

    outcome = full_disk.write("manifest", rows=[_row_dict(r) for r in _rows(200)])

    _assert_named(outcome, layout.manifest, full_disk)
    assert "manifest" in outcome["message"]
    assert layout.manifest.read_bytes() == before
    assert _leftovers(layout.manifest.parent) == []


@pytest.mark.parametrize("what", ["proof", "summary"])
def test_item8_full_disk_while_writing_a_proof_keeps_the_previous_one(
    full_disk: FullDisk, what: str
) -> None:
    quality = full_disk.root / "quality" / PROVIDER / DAY
    earlier = {"success": True, "warnings": []}
    write_proof(quality, "recordings", earlier)
    write_summary(
        quality,
        provider=PROVIDER,
        day=dt.date(2026, 11, 25),
        recordings=earlier,
    )
    before = {p.name: p.read_bytes() for p in quality.iterdir()}
    full_disk.fill()

    # A result big enough for any limit: a day with many warnings.
    result = {"success": False, "failure": "gap", "warnings": [f"w{i} " * 20 for i in range(50)]}
    outcome = full_disk.write(what, result=result)

    target = quality / ("recordings.json" if what == "proof" else "summary.json")
    _assert_named(outcome, target, full_disk)
    assert "proof file" in outcome["message"]
    assert {p.name: p.read_bytes() for p in quality.iterdir()} == before
    assert _leftovers(quality) == []
