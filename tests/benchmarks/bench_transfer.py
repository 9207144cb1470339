"""Transfer benchmark: the project's copy step against OpenSSH's ``sftp`` on the same files.

``make bench`` runs every case at full size; ``--quick`` shrinks them; ``--only day,small``
picks cases; every size has a flag and a ``BENCH_<NAME>`` variable (``--help`` lists them).
Data sets are generated once under ``.bench/`` (gitignored) and reused while their sizes match.

The server is OpenSSH's sshd on 127.0.0.1 when ``/usr/sbin/sshd`` exists, else the sandbox's
asyncssh server. Our copy runs in a subprocess (``copy_day`` over asyncssh with the default
algorithms, as the Airflow task does; once more with AES-GCM for comparison); its seconds run
from connect to manifest written, its CPU is its own. OpenSSH ``sftp -b`` (``get -r``) and, when
installed, ``rclone copy`` fetch the same files in the same run, interleaved with ours; each
throughput figure is the median of ``--repeats`` runs, and dirty pages are flushed (``sync``)
before each run. Peak RSS is the process tree's ``VmHWM`` from /proc. Every copy is checked
byte for byte, ours against its manifest's SHA-256 too.

Cases: ``day`` (a day of 20 MB files), ``small`` (many 50 KB files), ``listing`` (one folder of
20 000 entries), ``memory`` (peak RSS for one 2 GiB file and for 20 000 files, against an idle
task), ``resume`` (the line is cut mid-file, the retry must not start over), ``parse`` (DagBag
fill with 50 provider YAMLs) and ``shaped`` (a veth pair into a network namespace, ``tbf`` at
8 Mbit/s both ways, sshd inside; uncapped, then under a ``max_bandwidth``; needs root, ``ip``
and ``tc``). The output ends with the 1 GB day's line ``ratio vs openssh sftp: X.XX``
(OpenSSH's seconds over ours: above 1 we are faster).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 25)
TOKEN = "bench"
MB = 1_000_000
MIB = 1024 * 1024
CASES = ("day", "small", "listing", "memory", "resume", "parse", "shaped")
TOOLS = ("cc-intake copy_day", "openssh sftp", "rclone copy", "asyncssh mget")
# A run longer than this is not repeated (contract §8.1: one run for a peer slower than 60 s).
SLOW_S = 60.0


class BenchError(RuntimeError):
    """A tool failed or landed something other than the source files."""


# ---------------------------------------------------------------------------------------------
# Sizes


@dataclass
class Sizes:
    """Every knob of the run; each has a ``--flag`` and a ``BENCH_<NAME>`` variable."""

    day_mb: int = 1000  # the day case: total size ...
    day_file_mb: int = 20  # ... in files of this size
    small_files: int = 2000
    small_kb: int = 50
    listing_entries: int = 20000  # also the file count of the 20 000-files memory case
    listing_kb: int = 70  # above the 64 KiB audio head: per-file state would show in RSS
    big_mb: int = 2048  # one big file: memory and resume cases
    providers: int = 50
    shaped_mbit: float = 8.0  # the WAN case's tbf rate ...
    wan_rtt_ms: float = 100.0  # ... plus this round trip (the delay proxy)
    wan_small_files: int = 400  # WAN day of short recordings ...
    wan_small_kb: int = 50
    wan_big_files: int = 8  # ... and of longer ones
    wan_big_kb: int = 2500
    shaped_cap_mbit: float = 6.0  # a provider's max_bandwidth on that link (0: skip)
    repeats: int = 3  # a peer slower than SLOW_S seconds on its first run runs once
    max_parallel: int = 4  # recordings.max_parallel (the provider default)
    connections: int = 0  # recordings.connections (0: unset, the product's default)


QUICK = Sizes(
    day_mb=200,
    day_file_mb=20,
    small_files=400,
    listing_entries=5000,
    big_mb=300,
    providers=50,
    wan_small_files=100,
    wan_big_files=2,
    repeats=1,
)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_transfer",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--only", default="", help=f"comma-separated cases among {CASES}")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench", help="data and outputs")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--server", choices=("auto", "openssh", "sandbox"), default="auto", help="SFTP server"
    )
    parser.add_argument(
        "--tools",
        default="",
        help="comma-separated peers among openssh,rclone,mget (default: all; ours always runs)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    defaults = Sizes()
    kinds = {f.name: type(getattr(defaults, f.name)) for f in dataclasses.fields(Sizes)}
    for name, kind in kinds.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"default {getattr(defaults, name)} (env BENCH_{name.upper()})",
        )
    args = parser.parse_args(argv)
    sizes = dataclasses.replace(QUICK) if args.quick else Sizes()
    for name, kind in kinds.items():
        value = getattr(args, name)
        env = os.environ.get(f"BENCH_{name.upper()}")
        if value is None and env:
            value = kind(env)
        if value is not None:
            setattr(sizes, name, value)
    return args, sizes


# ---------------------------------------------------------------------------------------------
# Rows and the table


@dataclass
class Row:
    case: str
    tool: str
    seconds: float | None = None
    nbytes: int = 0
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    ratio: float | None = None  # OpenSSH's seconds / ours (above 1: faster than OpenSSH)
    note: str = ""

    @property
    def mb_per_s(self) -> float | None:
        if not self.seconds or not self.nbytes:
            return None
        return self.nbytes / MB / self.seconds

    @property
    def cpu_per_gb(self) -> float | None:
        if self.cpu_s is None or not self.nbytes:
            return None
        return self.cpu_s / (self.nbytes / 1e9)


@dataclass
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    day_ratio: float | None = None
    outputs: dict[str, Path] = field(default_factory=dict)  # tool output folders, for tests
    text: str = ""  # the printed report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: Report, *, header: str = "") -> str:
    cols = [
        "case",
        "tool",
        "seconds",
        "MB/s",
        "peak RSS MB",
        "cpu s",
        "cpu s/GB",
        "ratio vs openssh",
        "note",
    ]
    lines = [
        [
            r.case,
            r.tool,
            _fmt(r.seconds, ".2f"),
            _fmt(r.mb_per_s, ".1f"),
            _fmt(r.peak_rss_mb, ".0f"),
            _fmt(r.cpu_s, ".2f"),
            _fmt(r.cpu_per_gb, ".1f"),
            _fmt(r.ratio, ".2f"),
            r.note,
        ]
        for r in report.rows
    ]
    widths = [
        max(len(c), *(len(line[i]) for line in lines)) if lines else len(c)
        for i, c in enumerate(cols)
    ]

    def fmt_line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [header] if header else []
    out.append(fmt_line(cols))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(fmt_line(line) for line in lines)
    if report.targets:
        out += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
        for t in report.targets:
            met = "n/a" if t.met is None else ("yes" if t.met else "NO")
            out.append(f"| {t.what} | {t.goal} | {t.measured} | {met} |")
    out.append("")
    ratio = "n/a" if report.day_ratio is None else f"{report.day_ratio:.2f}"
    out.append(f"ratio vs openssh sftp: {ratio}")
    return "\n".join(out)


def mib(nbytes: int) -> str:
    return f"{nbytes / 1024**3:g} GiB" if nbytes >= 1024**3 else f"{nbytes / MIB:g} MiB"


def say(message: str) -> None:
    """Progress chatter on stderr; the table goes to stdout."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data sets


def call_name(i: int) -> str:
    """A recording name that the default provider pattern accepts, for the processed day."""
    secs = i % 86400
    clock = f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}"
    return f"{DAY:%Y%m%d}_{clock}_AG{i % 97:02d}_C{i:06d}.wav"


def ensure_dataset(folder: Path, count: int, size: int) -> dict[str, tuple[int, str]]:
    """``count`` random files of ``size`` bytes in ``folder``; {name: (size, sha256)}.

    Reused when a previous run left the same set (the marker records it).
    """
    marker = folder.parent / f".{folder.name}.json"
    spec = {"count": count, "size": size}
    if marker.exists() and folder.is_dir():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == spec:
            return {k: (v[0], v[1]) for k, v in saved["files"].items()}
    say(f"generating {count} files of {size / MB:g} MB in {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    old = time.time() - 3 * 3600
    files: dict[str, tuple[int, str]] = {}
    for i in range(count):
        name = call_name(i)
        digest = hashlib.sha256()
        path = folder / name
        with path.open("wb") as handle:
            left = size
            while left:
                block = os.urandom(min(left, 8 * MIB))
                digest.update(block)
                handle.write(block)
                left -= len(block)
        os.utime(path, (old, old))
        files[name] = (size, digest.hexdigest())
    marker.write_text(json.dumps({"spec": spec, "files": files}))
    return files


def check_tree(source: dict[str, tuple[int, str]], folder: Path, *, full: bool) -> None:
    """Raise unless ``folder`` holds exactly the source files (sizes; with ``full``, SHA-256)."""
    got = {p.name: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    missing = sorted(set(source) - set(got))
    extra = sorted(set(got) - set(source))
    if missing or extra:
        raise BenchError(
            f"{folder}: {len(missing)} files missing {missing[:3]}, "
            f"{len(extra)} unexpected {extra[:3]}"
        )
    for name, (size, sha) in source.items():
        path = got[name]
        if path.stat().st_size != size:
            raise BenchError(f"{path}: {path.stat().st_size} bytes, expected {size}")
        if full and _sha256(path) != sha:
            raise BenchError(f"{path}: content differs from the source file")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def fresh(folder: Path) -> Path:
    """An empty ``folder``, dirty pages flushed: no run pays for the previous one's writes."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    return folder


# ---------------------------------------------------------------------------------------------
# Processes measured with wait4 (peak RSS of that child and its waited-for children)


@dataclass
class Proc:
    rc: int
    seconds: float
    peak_rss_mb: float
    cpu_s: float
    stdout: str
    stderr: str


class PeakSampler(threading.Thread):
    """Peak RSS of a process tree: the sum of each process's ``VmHWM``, sampled from /proc.

    Not ``wait4``'s ``ru_maxrss``: Linux keeps a process's high-water mark across exec, so a
    child's starts at the RSS of the process that forked it, here the benchmark's own.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = pid
        self.hwm_kb: dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(0.02)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def sample(self) -> None:
        pending = [self.root]
        while pending:
            pid = pending.pop()
            hwm = _vm_hwm_kb(pid)
            if hwm is None:
                continue
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), hwm)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children = (task / "children").read_text().split()
                    pending.extend(int(c) for c in children)

    @property
    def peak_mb(self) -> float:
        return sum(self.hwm_kb.values()) / 1024


def _vm_hwm_kb(pid: int | str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def run_measured(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800
) -> Proc:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=env, cwd=ROOT, start_new_session=True
        )
        sampler = PeakSampler(proc.pid)
        sampler.start()
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
            sampler.stop()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            rc=proc.returncode,
            seconds=seconds,
            peak_rss_mb=sampler.peak_mb,
            cpu_s=usage.ru_utime + usage.ru_stime,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------------------------------
# The server and the peers' command lines


@dataclass
class Peer:
    """Where a tool connects: host, port, login, client key and the pinned host key."""

    host: str
    port: int
    login: str
    key_path: Path
    known_hosts_line: str
    prefix: str  # how the server names the data folder (absolute path for sshd, "" sandbox)
    data: Path  # the data folder on our side
    work: Path

    def remote(self, folder: Path) -> str:
        return f"{self.prefix}/{folder.relative_to(self.data).as_posix()}"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:
        """An asyncssh SFTP session, as the tests open one (default algorithms)."""
        import asyncssh

        async with (
            asyncssh.connect(
                self.host,
                self.port,
                username=self.login,
                client_keys=[asyncssh.read_private_key(str(self.key_path))],
                known_hosts=asyncssh.import_known_hosts(self.known_hosts_line),
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            yield sftp

    def known_hosts_file(self) -> Path:
        path = self.work / "known_hosts"  # rewritten for each call: one peer at a time
        path.write_text(self.known_hosts_line + "\n")
        return path


@contextlib.contextmanager
def loopback_server(work: Path, kind: str = "auto") -> Iterator[tuple[Peer, Any]]:
    """OpenSSH's sshd when installed (or asked), else the sandbox server (tests/integration)."""
    from tests.integration.servers import have_sshd, openssh_server, sandbox_server

    use_sshd = kind == "openssh" or (kind == "auto" and have_sshd())
    factory = openssh_server if use_sshd else sandbox_server
    with factory(work / "server") as handle:
        peer = Peer(
            host="127.0.0.1",
            port=handle.port,
            login=handle.login,
            key_path=handle.keys.client_key_path,
            known_hosts_line=handle.known_hosts_line(),
            prefix=handle.prefix,
            data=handle.files,
            work=work,
        )
        yield peer, handle


# Each peer's documented best flags for the shape of the day ("large": files of megabytes,
# "small": many files of tens of KB). OpenSSH sftp(1): -B is the size of a read request (the
# server answers at most 255 KiB), -R the requests in flight; it fetches files one after
# another whatever the flags. rclone (docs of its sftp backend): --transfers files at once,
# --checkers listings and comparisons at once, --sftp-chunk-size 255k "works well" with
# OpenSSH, --sftp-disable-hashcheck skips the SSH commands it would run to hash files
# (internal-sftp has no shell; our own SHA-256 is of the bytes written, not the server's).
OPENSSH_FLAGS = {"large": ["-B", "261120", "-R", "64"], "small": ["-R", "64"]}
RCLONE_FLAGS = {
    "large": ["--transfers", "4", "--checkers", "8"],
    "small": ["--transfers", "16", "--checkers", "16"],
}
RCLONE_COMMON = ["--sftp-chunk-size", "255k", "--sftp-disable-hashcheck"]


def flags_note(tool: str, shape: str) -> str:
    if tool == "openssh sftp":
        return "sftp " + " ".join(OPENSSH_FLAGS[shape]) + " get -r"
    if tool == "rclone copy":
        return "rclone " + " ".join(RCLONE_FLAGS[shape] + RCLONE_COMMON)
    if tool == "asyncssh mget":
        return "SFTPClient.mget, library defaults"
    return "product defaults"


def sftp_cmd(peer: Peer, batch: Path, flags: list[str] | None = None) -> list[str]:
    return [
        "sftp",
        *(flags or []),
        "-q",
        "-b",
        str(batch),
        "-F",
        "/dev/null",
        "-i",
        str(peer.key_path),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={peer.known_hosts_file()}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-P",
        str(peer.port),
        f"{peer.login}@{peer.host}",
    ]


def run_sftp_get(peer: Peer, remote: str, dest: Path, shape: str = "large") -> Proc:
    """``get -r`` of a remote folder into ``dest`` (created by sftp itself)."""
    batch = peer.work / "sftp_batch"
    batch.write_text(f'get -r "{remote}" "{dest}"\n')
    proc = run_measured(sftp_cmd(peer, batch, OPENSSH_FLAGS[shape]))
    if proc.rc != 0:
        raise BenchError(f"sftp get -r {remote} failed ({proc.rc}): {proc.stderr.strip()}")
    return proc


def run_rclone(peer: Peer, remote: str, dest: Path, shape: str = "large") -> Proc:
    cmd = [
        "rclone",
        "copy",
        *RCLONE_FLAGS[shape],
        *RCLONE_COMMON,
        f":sftp:{remote}",
        str(dest),
        "--config",
        "/dev/null",
        "--sftp-host",
        peer.host,
        "--sftp-port",
        str(peer.port),
        "--sftp-user",
        peer.login,
        "--sftp-key-file",
        str(peer.key_path),
        "--sftp-known-hosts-file",
        str(peer.known_hosts_file()),
    ]
    proc = run_measured(cmd)
    if proc.rc != 0:
        raise BenchError(f"rclone copy {remote} failed ({proc.rc}): {proc.stderr.strip()}")
    return proc


# ---------------------------------------------------------------------------------------------
# Our copy step in a subprocess (the worker)


def provider_for(
    folder_remote: str, *, max_parallel: int, max_bandwidth: str | None = None, connections: int = 0
) -> dict[str, Any]:
    """A provider whose ENTRANTS folder is ``folder_remote`` (SORTANTS absent)."""
    from tests.helpers import provider_dict

    data = provider_dict(id="bench_provider")
    data["recordings"]["directions"] = {
        "ENTRANTS": folder_remote,
        "SORTANTS": folder_remote.rstrip("/") + "_absent",
    }
    data["recordings"]["max_parallel"] = max_parallel
    if connections:
        data["recordings"]["connections"] = connections
    if max_bandwidth:
        data["recordings"]["max_bandwidth"] = max_bandwidth
    return data


def landed_folder(root: Path) -> Path:
    return root / "recordings" / "bench_provider" / DAY.isoformat() / "ENTRANTS"


def run_ours(
    peer: Peer,
    folder: Path,
    root: Path,
    *,
    sizes: Sizes,
    mode: str = "copy_day",
    encryption: str | None = None,
    max_bandwidth: str | None = None,
) -> tuple[Proc, dict[str, Any]]:
    spec: dict[str, Any] = {
        "mode": mode,
        "host": peer.host,
        "port": peer.port,
        "login": peer.login,
        "key": str(peer.key_path),
        "known_hosts": peer.known_hosts_line,
        "provider": provider_for(
            peer.remote(folder),
            max_parallel=sizes.max_parallel,
            max_bandwidth=max_bandwidth,
            connections=sizes.connections,
        ),
        "root": str(root),
        "encryption": encryption,
        "remote": peer.remote(folder),
    }
    spec_path = peer.work / f"worker_{mode}_{threading.get_ident()}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_transfer", "--worker", str(spec_path)]
    proc = run_measured(cmd, env=_env())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.rc != 0 or line is None:
        raise BenchError(f"copy worker failed ({proc.rc}):\n{proc.stderr[-3000:]}")
    result = json.loads(line.removeprefix("RESULT "))
    # The worker's own high-water mark, exact: it starts no process of its own, and the tree
    # sampled from /proc may catch a library's short-lived fork (e.g. ctypes' find_library
    # running ldconfig) that briefly counts the whole interpreter a second time.
    proc.peak_rss_mb = result["vm_hwm_mb"]
    if result.get("failures"):
        raise BenchError(f"copy_day reported failures: {result['failures'][:3]}")
    return proc, result


def worker_main(spec_path: Path) -> None:
    """The copy task's body, alone in its process: connect, copy_day, report."""
    import asyncssh

    from include.cc_intake import eventloop
    from include.cc_intake.config import parse_provider
    from include.cc_intake.layout import DayLayout
    from include.cc_intake.recordings import SftpSource, copy_day, list_day

    spec = json.loads(spec_path.read_text())
    cfg = parse_provider(spec["provider"], source=spec_path)
    from include.cc_intake.ssh_setup import preferred_ciphers, quick_auth_client

    # The ciphers and auth the DAG's hook uses (airflow/sftp.py), unless a row forces a cipher.
    options: dict[str, Any] = {
        "encryption_algs": preferred_ciphers(),
        "client_factory": quick_auth_client(),
    }
    if spec.get("encryption"):
        options["encryption_algs"] = [spec["encryption"]]

    def connect() -> Any:
        return asyncssh.connect(
            spec["host"],
            spec["port"],
            username=spec["login"],
            client_keys=[asyncssh.read_private_key(spec["key"])],
            known_hosts=asyncssh.import_known_hosts(spec["known_hosts"]),
            **options,
        )

    @contextlib.asynccontextmanager
    async def open_session() -> AsyncIterator[Any]:
        """A further session, as the task's ``open_sftp`` opens one (copy_day's open_session)."""
        async with connect() as conn, conn.start_sftp_client() as sftp:
            yield sftp

    async def go() -> dict[str, Any]:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        manifest_at: float | None = None
        async with connect() as conn, conn.start_sftp_client() as sftp:
            cipher = conn.get_extra_info("recv_cipher")
            if spec["mode"] == "idle":
                # An idle task: same imports, same session, nothing listed or copied.
                result: dict[str, Any] = {"failures": []}
            elif spec["mode"] == "mget":
                # asyncssh's own bulk copy, as documented: files one after another, each
                # with parallel block requests; no hash, no fsync, no manifest.
                dest = Path(spec["root"]) / "files"
                dest.mkdir(parents=True)
                await sftp.mget(spec["remote"] + "/*", str(dest))
                manifest_at = time.perf_counter()
                result = {"failures": []}
            elif spec["mode"] == "list":
                listing = await list_day(sftp, cfg.recordings, DAY)
                result = {"failures": [], "entries": len(listing["ENTRANTS"] or [])}
            else:
                layout = DayLayout(Path(spec["root"]), cfg.id, DAY)
                lines: list[str] = []
                # As the task's open_remote hands it over: the session, further ones to the
                # same server, closed after the copy step (their goodbyes are not part of it).
                source = SftpSource(sftp, open_session=open_session)
                summary = await copy_day(
                    source,
                    cfg,
                    DAY,
                    layout=layout,
                    token=TOKEN,
                    on_progress=lines.append,
                )
                manifest_at = time.perf_counter()  # the copy step ends here (contract §8.1)
                await source.aclose()
                result = summary.as_dict()
                result["progress"] = lines[-1] if lines else ""
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        # From connect to the manifest written (copy_day), or to the last file (mget); the
        # session's close after it is not part of the copy step.
        result["seconds"] = (manifest_at or time.perf_counter()) - t0
        result["cpu_s"] = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        result["cipher"] = cipher
        return result

    result = eventloop.run(go())  # the loop the task runs the copy on (airflow/tasks.py)
    # Exact, where the parent's sampling may miss the last 20 ms.
    result["vm_hwm_mb"] = (_vm_hwm_kb("self") or 0) / 1024
    print("RESULT " + json.dumps(result), flush=True)


def manifest_hashes(root: Path) -> dict[str, str]:
    from include.cc_intake.manifest import read_manifest

    path = root / "manifests" / "bench_provider" / f"{DAY.isoformat()}.csv"
    return {r.file_name: r.sha256 for r in read_manifest(path) if r.status == "copied"}


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Ctx:
    peer: Peer
    handle: Any  # the ServerHandle (drop() cuts the line)
    sizes: Sizes
    work: Path
    report: Report

    @property
    def data(self) -> Path:
        return self.peer.data / "bench"

    @property
    def out(self) -> Path:
        return self.work / "out"


@dataclass
class Run:
    seconds: float
    rss: float
    cpu: float
    cipher: str = ""
    flush: float = 0.0  # openssh: the ``sync`` after it, for the "+ sync" row


def run_tool(
    tool: str,
    peer: Peer,
    folder: Path,
    source: dict[str, tuple[int, str]],
    out: Path,
    *,
    sizes: Sizes,
    shape: str,
    full: bool,
    max_bandwidth: str | None = None,
) -> tuple[Run, Path]:
    """One run of ``tool`` fetching ``folder`` into ``out`` (emptied first), checked."""
    remote = peer.remote(folder)
    if tool in ("cc-intake copy_day", "asyncssh mget"):
        root = fresh(out)
        mode = "copy_day" if tool == "cc-intake copy_day" else "mget"
        proc, result = run_ours(
            peer, folder, root, sizes=sizes, mode=mode, max_bandwidth=max_bandwidth
        )
        landed = landed_folder(root) if mode == "copy_day" else root / "files"
        check_tree(source, landed, full=full)
        if mode == "copy_day" and {n: h for n, (_, h) in source.items()} != manifest_hashes(root):
            raise BenchError(f"{folder}: manifest SHA-256 differs from the source files")
        return Run(result["seconds"], proc.peak_rss_mb, result["cpu_s"], result["cipher"]), landed
    if tool == "openssh sftp":
        dest = fresh(out) / "files"  # sftp creates it
        proc = run_sftp_get(peer, remote, dest, shape)
        t0 = time.perf_counter()
        os.sync()  # what our durable landing costs, paid by OpenSSH after the fact
        flush = time.perf_counter() - t0
        check_tree(source, dest, full=full)
        return Run(proc.seconds, proc.peak_rss_mb, proc.cpu_s, flush=flush), dest
    if tool == "rclone copy":
        dest = fresh(out)
        proc = run_rclone(peer, remote, dest, shape)
        check_tree(source, dest, full=full)
        return Run(proc.seconds, proc.peak_rss_mb, proc.cpu_s), dest
    raise ValueError(tool)


def rclone_missing() -> str:
    if shutil.which("rclone") is None:
        return "not installed (make bench installs it when run as root): skipped"
    return "left out by --tools"


# --tools: the peers to run (all by default); our copy always runs.
CHOSEN_TOOLS: set[str] = set(TOOLS)


def available_tools() -> list[str]:
    return [
        t
        for t in TOOLS
        if (t in CHOSEN_TOOLS or t == "cc-intake copy_day")
        and (t != "rclone copy" or shutil.which("rclone"))
    ]


def repeated_runs(
    ctx: Ctx,
    case: str,
    folder: Path,
    source: dict[str, tuple[int, str]],
    *,
    shape: str,
    peer: Peer | None = None,
    tools: list[str] | None = None,
    repeats: int | None = None,
) -> dict[str, list[Run]]:
    """Every tool in turn within each repetition; a tool slower than SLOW_S runs once."""
    peer = peer or ctx.peer
    tools = tools if tools is not None else available_tools()
    runs: dict[str, list[Run]] = {}
    slow: set[str] = set()
    repeats = max(1, ctx.sizes.repeats if repeats is None else repeats)
    for rep in range(repeats):
        for tool in tools:
            if tool in slow:
                continue
            say(f"{case}: {tool} run {rep + 1}/{repeats}")
            run, landed = run_tool(
                tool,
                peer,
                folder,
                source,
                ctx.out / case / tool.replace(" ", "_"),
                sizes=ctx.sizes,
                shape=shape,
                full=rep == 0,
            )
            runs.setdefault(tool, []).append(run)
            ctx.report.outputs[f"{case}/{tool}"] = landed
            if run.seconds > SLOW_S:
                slow.add(tool)
    return runs


def spread(runs: list[Run]) -> str:
    seconds = [r.seconds for r in runs]
    if len(seconds) == 1:
        return "one run"
    return f"median of {len(seconds)} ({min(seconds):.2f}-{max(seconds):.2f})"


def compare_tools(
    ctx: Ctx, case: str, folder: Path, source: dict[str, tuple[int, str]], *, shape: str
) -> dict[str, float]:
    """Interleaved runs of every tool on ``folder``; rows with medians; medians by tool."""
    total = sum(size for size, _ in source.values())
    runs = repeated_runs(ctx, case, folder, source, shape=shape)
    medians = {tool: statistics.median(r.seconds for r in rs) for tool, rs in runs.items()}
    if "openssh sftp" in runs:
        rs = runs["openssh sftp"]
        runs["openssh sftp + sync"] = [
            dataclasses.replace(r, seconds=r.seconds + r.flush) for r in rs
        ]
        medians["openssh sftp + sync"] = statistics.median(
            r.seconds for r in runs["openssh sftp + sync"]
        )
    reference = medians.get("openssh sftp")
    order = [
        "cc-intake copy_day",
        "asyncssh mget",
        "openssh sftp",
        "openssh sftp + sync",
        "rclone copy",
    ]
    for tool in order:
        if tool not in runs:
            continue
        rs = runs[tool]
        med = medians[tool]
        if tool == "openssh sftp + sync":
            note = "sftp, then sync: the durability our copy has when it returns"
        else:
            note = f"{flags_note(tool, shape)}; {spread(rs)}"
            if rs[0].cipher:
                note += f"; {rs[0].cipher}"
        ctx.report.rows.append(
            Row(
                case=case,
                tool=tool,
                seconds=med,
                nbytes=total,
                peak_rss_mb=max(r.rss for r in rs),
                cpu_s=statistics.median(r.cpu for r in rs),
                ratio=reference / med if reference else None,
                note=note,
            )
        )
    if "rclone copy" not in runs:
        ctx.report.rows.append(Row(case=case, tool="rclone copy", note=rclone_missing()))
    return medians


def versus_peers(ctx: Ctx, label: str, medians: dict[str, float]) -> float | None:
    """The target row "ours >= 1.0 x every peer" for one loopback shape; ratio vs OpenSSH."""
    ours = medians.get("cc-intake copy_day")
    if not ours:
        return None
    ratios = {
        peer: medians[peer] / ours
        for peer in ("openssh sftp", "rclone copy", "asyncssh mget")
        if peer in medians
    }
    ctx.report.targets.append(
        Target(
            f"loopback, {label}: ours with SHA-256, fsync and manifest",
            ">= 1.0 x OpenSSH sftp and >= 1.0 x rclone",
            "; ".join(f"{r:.2f} x {p}" for p, r in ratios.items()),
            all(r >= 1.0 for p, r in ratios.items() if p != "asyncssh mget")
            and "rclone copy" in ratios,
        )
    )
    return ratios.get("openssh sftp")


def case_day(ctx: Ctx) -> None:
    s = ctx.sizes
    count = max(1, s.day_mb // s.day_file_mb)
    folder = ctx.data / "day" / f"{DAY:%Y%m%d}"
    source = ensure_dataset(folder, count, s.day_file_mb * MB)
    medians = compare_tools(ctx, "day", folder, source, shape="large")
    label = f"{count * s.day_file_mb / 1000:g} GB day of {s.day_file_mb} MB files"
    ctx.report.day_ratio = versus_peers(ctx, label, medians)


def case_small(ctx: Ctx) -> None:
    s = ctx.sizes
    folder = ctx.data / "small" / f"{DAY:%Y%m%d}"
    source = ensure_dataset(folder, s.small_files, s.small_kb * 1000)
    medians = compare_tools(ctx, "small", folder, source, shape="small")
    versus_peers(ctx, f"{s.small_files} files of {s.small_kb} KB", medians)


def many_dataset(ctx: Ctx) -> tuple[Path, dict[str, tuple[int, str]]]:
    s = ctx.sizes
    folder = ctx.data / "many" / f"{DAY:%Y%m%d}"
    return folder, ensure_dataset(folder, s.listing_entries, s.listing_kb * 1000)


# What a listing may ask the server; anything else (stat, open...) would be a call per entry.
# The path helpers (compose_path, decode) make no request and are not counted.
LISTING_REQUESTS = {"readdir", "opendir", "close", "scandir"}


class CountingSFTP:
    """The asyncssh client, counting the requests made through it (the listing's proof of one
    directory read: one opendir, its pipelined readdirs, no call per entry). The private
    request layer the listing pipelines on (``listing.dir_requests``) is counted as well."""

    def __init__(self, sftp: Any, calls: dict[str, int] | None = None) -> None:
        self._sftp = sftp
        self.calls: dict[str, int] = {} if calls is None else calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._sftp, name)
        if name == "_handler":
            return CountingSFTP(attr, self.calls)
        if not callable(attr) or name in ("compose_path", "decode", "encode"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def case_listing(ctx: Ctx) -> None:
    folder, source = many_dataset(ctx)
    remote = ctx.peer.remote(folder)
    best: tuple[float, float] | None = None
    calls: dict[str, int] = {}
    for _ in range(max(1, ctx.sizes.repeats)):
        seconds, cpu, entries, calls = asyncio.run(_timed_listing(ctx.peer, remote))
        if entries != len(source):
            raise BenchError(f"list_folder({remote}) saw {entries} entries, expected {len(source)}")
        best = (seconds, cpu) if best is None or seconds < best[0] else best
    assert best is not None
    # One folder read: the public readdir once, or one opendir and its pipelined readdirs.
    one_read = set(calls) <= LISTING_REQUESTS and (
        calls == {"readdir": 1} or calls.get("opendir") == 1
    )
    ctx.report.rows.append(
        Row(
            case="listing",
            tool="cc-intake list_folder",
            seconds=best[0],
            cpu_s=best[1],
            note=f"{len(source)} entries, best of {max(1, ctx.sizes.repeats)}; "
            f"client calls {calls} (no stat per entry)",
        )
    )
    batch = ctx.work / "sftp_ls_batch"
    batch.write_text(f'ls -l "{remote}"\n')
    proc = run_measured(sftp_cmd(ctx.peer, batch))
    if proc.rc != 0:
        raise BenchError(f"sftp ls -l {remote} failed ({proc.rc}): {proc.stderr.strip()}")
    ctx.report.rows.append(
        Row(
            case="listing",
            tool="openssh sftp ls -l",
            seconds=proc.seconds,
            peak_rss_mb=proc.peak_rss_mb,
            cpu_s=proc.cpu_s,
            ratio=proc.seconds / best[0],
            note="for reference",
        )
    )
    ctx.report.targets.append(
        Target(
            f"listing a folder of {len(source)} entries",
            "< 5 s on loopback, one directory read",
            f"{best[0]:.2f} s, {calls}",
            best[0] < 5 and one_read,
        )
    )


async def _timed_listing(peer: Peer, remote: str) -> tuple[float, float, int, dict[str, int]]:
    from include.cc_intake.listing import list_folder

    async with peer.connect() as sftp:
        counting = CountingSFTP(sftp)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        entries = await list_folder(counting, remote, "ENTRANTS")  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return seconds, cpu, len(entries or []), counting.calls


def big_dataset(ctx: Ctx) -> tuple[Path, dict[str, tuple[int, str]]]:
    folder = ctx.data / "big" / f"{DAY:%Y%m%d}"
    return folder, ensure_dataset(folder, 1, ctx.sizes.big_mb * MIB)


def case_memory(ctx: Ctx) -> None:
    s = ctx.sizes
    big, big_src = big_dataset(ctx)
    many, many_src = many_dataset(ctx)
    say("memory: idle task")
    idle, _ = run_ours(ctx.peer, big, fresh(ctx.out / "memory_idle"), sizes=s, mode="idle")
    ctx.report.rows.append(
        Row(
            case="memory",
            tool="idle task (imports + session)",
            peak_rss_mb=idle.peak_rss_mb,
            note="baseline",
        )
    )
    shapes = (
        (f"1 file of {mib(s.big_mb * MIB)}", big, big_src, "large", ["openssh sftp"]),
        # asyncssh mget fetches one file after another: about a minute here for 20 000 files,
        # a tenth of the bench's budget; its rows on the day and small cases tell enough.
        (
            f"{len(many_src)} files of {s.listing_kb} KB",
            many,
            many_src,
            "small",
            [t for t in available_tools() if t != "asyncssh mget"],
        ),
    )
    for label, folder, source, shape, peers in shapes:
        # The 2 GiB file runs once (a memory target, and the bench's longest run); the 20 000
        # files, a speed target too, get the medians of 3 every other loopback shape gets.
        runs = repeated_runs(
            ctx,
            "memory",
            folder,
            source,
            shape=shape,
            tools=["cc-intake copy_day", *[p for p in peers if p != "cc-intake copy_day"]],
            repeats=None if shape == "small" else 1,
        )
        total = sum(size for size, _ in source.values())
        medians = {tool: statistics.median(r.seconds for r in rs) for tool, rs in runs.items()}
        ours_rss = max(r.rss for r in runs["cc-intake copy_day"])
        above = ours_rss - idle.peak_rss_mb
        reference = medians["openssh sftp"]
        for tool, rs in runs.items():
            note = f"{flags_note(tool, shape)}; {spread(rs)}"
            if tool == "cc-intake copy_day":
                note = f"{above:.0f} MB above the idle task (highest run); {spread(rs)}"
                note += f"; {rs[0].cipher}"
            ctx.report.rows.append(
                Row(
                    case="memory",
                    tool=f"{tool}, {label}",
                    seconds=medians[tool],
                    nbytes=total,
                    peak_rss_mb=max(r.rss for r in rs),
                    cpu_s=statistics.median(r.cpu for r in rs),
                    ratio=reference / medians[tool],
                    note=note,
                )
            )
        ctx.report.targets.append(
            Target(
                f"peak memory of the copy, {label}",
                "< 100 MB above an idle task",
                f"{above:.0f} MB ({ours_rss:.0f} MB peak)",
                above < 100,
            )
        )
        if shape == "small":
            versus_peers(ctx, label, medians)
        shutil.rmtree(ctx.out / "memory", ignore_errors=True)


def case_resume(ctx: Ctx) -> None:
    """Cut the line mid-file, retry with the same run token: the retry reads only the rest."""
    from include.cc_intake.naming import RemoteEntry
    from include.cc_intake.transfer import CopyJob, copy_all

    big, source = big_dataset(ctx)
    [(name, (size, sha))] = source.items()
    root = fresh(ctx.out / "resume")
    final = root / name
    stat = (big / name).stat()
    entry = RemoteEntry(
        "ENTRANTS", name, f"{ctx.peer.remote(big)}/{name}", size, int(stat.st_mtime), "file"
    )
    job = CopyJob(entry=entry, final=final)
    tmp = job.tmp(TOKEN)
    cut_at: list[int] = []

    def cutter() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not cut_at:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_size >= size // 2:
                    cut_at.append(tmp.stat().st_size)
                    ctx.handle.drop()
                    return
            time.sleep(0.005)

    async def attempt(lines: list[str], cap: int | None) -> tuple[float, Any]:
        async with ctx.peer.connect() as sftp:
            t0 = time.perf_counter()
            outcomes = await copy_all(
                sftp,
                [job],
                token=TOKEN,
                root=root,
                max_parallel=1,
                bytes_per_s=cap,
                on_progress=lines.append,
            )
            return time.perf_counter() - t0, outcomes[0]

    say("resume: first attempt, cut at half")
    thread = threading.Thread(target=cutter, daemon=True)
    thread.start()
    first_lines: list[str] = []
    try:
        # A cap of half the file per second: at least two seconds, so the cut lands mid-file
        # even for a small file (no throttling at all for 2 GiB on loopback).
        first_s, first = asyncio.run(attempt(first_lines, max(size // 2, MIB)))
    except Exception as exc:  # the cut may surface while the session closes
        first_s, first = float("nan"), None
        say(f"resume: first attempt raised {type(exc).__name__}: {exc}")
    thread.join(5)
    kept = tmp.stat().st_size if tmp.exists() else 0
    if first is not None and first.ok:
        raise BenchError("resume: the copy finished before the line could be cut")
    say("resume: retry")
    retry_lines: list[str] = []
    retry_s, retry = asyncio.run(attempt(retry_lines, None))
    if not retry.ok:
        raise BenchError(f"resume: retry failed: {retry.error}")
    if retry.sha256 != sha or _sha256(final) != sha:
        raise BenchError("resume: the resumed file differs from the source")
    reread = size - retry.resumed_from
    ctx.report.rows.append(
        Row(
            case="resume",
            tool="cc-intake copy_all, cut",
            seconds=first_s,
            nbytes=kept,
            note=f"line cut at {cut_at[0] / MIB:.0f} MiB of {size / MIB:.0f} MiB; "
            f"{kept / MIB:.0f} MiB kept in the temporary file"
            if cut_at
            else "not cut",
        )
    )
    ctx.report.rows.append(
        Row(
            case="resume",
            tool="cc-intake copy_all, retry",
            seconds=retry_s,
            nbytes=reread,
            note=f"resumed from byte {retry.resumed_from}; re-read {reread / MIB:.0f} MiB of "
            f"{size / MIB:.0f} MiB, SHA-256 of the whole file checked; "
            f"{retry_lines[-1] if retry_lines else ''}",
        )
    )
    ctx.report.targets.append(
        Target(
            f"interrupted {mib(size)} transfer",
            "resumes, no restart from byte 0",
            f"retry re-read {reread / MIB:.0f} of {size / MIB:.0f} MiB",
            retry.resumed_from > 0 and reread < size,
        )
    )
    shutil.rmtree(root, ignore_errors=True)


PARSE_PROBE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import airflow  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    t1 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    t2 = time.perf_counter()
    print("RESULT " + json.dumps({"import_s": t1 - t0, "fill_s": t2 - t1,
                                  "dags": len(bag.dags),
                                  "provider_dags": sum(d.startswith("ingest_") for d in bag.dags),
                                  "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
    """
)


def case_parse(ctx: Ctx) -> None:
    import yaml

    from tests.helpers import provider_dict

    folder = ctx.work / "providers"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(ctx.sizes.providers):
        pid = f"bench_p{i:03d}"
        data = provider_dict(id=pid, name=f"Bench provider {i}")
        data["recordings"]["sftp_conn_id"] = f"sftp_{pid}"
        (folder / f"{pid}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    home = fresh(ctx.work / "airflow_home")
    env = _env()
    env.update(
        {
            "CC_INTAKE_PROVIDERS_DIR": str(folder),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    env.pop("CC_INTAKE_SANDBOX", None)
    fills = []
    result: dict[str, Any] = {}
    for _ in range(max(1, ctx.sizes.repeats)):
        proc = run_measured([sys.executable, "-c", PARSE_PROBE, str(ROOT / "dags")], env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise BenchError(f"DagBag probe failed ({proc.rc}):\n{proc.stderr[-3000:]}")
        result = json.loads(line.removeprefix("RESULT "))
        fills.append(result["fill_s"])
    fill = statistics.median(fills)
    # One DAG per provider, plus the project-level ones (housekeeping, digest).
    ok = not result["errors"] and result["provider_dags"] == ctx.sizes.providers
    ctx.report.rows.append(
        Row(
            case="parse",
            tool="DagBag fill of dags/",
            seconds=fill,
            peak_rss_mb=proc.peak_rss_mb,
            note=f"{result['dags']} DAGs ({result['provider_dags']} providers'), "
            f"{len(result['errors'])} import errors; median of "
            f"{len(fills)}; importing Airflow first took {result['import_s']:.2f} s",
        )
    )
    ctx.report.targets.append(
        Target(
            f"parse of dags/ with {ctx.sizes.providers} provider YAMLs",
            "< 1 s, no import errors",
            f"{fill:.2f} s, {len(result['errors'])} errors",
            fill < 1 and ok,
        )
    )


# --- shaped link -------------------------------------------------------------------------------


def shaped_blocker() -> str | None:
    """Why the shaped-link case cannot run here, or None."""
    from tests.integration.servers import SSHD

    if os.geteuid() != 0:
        return "not root (a network namespace and a qdisc need CAP_NET_ADMIN)"
    missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (iproute2)"
    if not SSHD.exists():
        return f"{SSHD} not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise BenchError(f"{' '.join(args)}: {out.stderr.strip()}")
    return out


@dataclass
class ShapedLink:
    ns: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


@contextlib.contextmanager
def shaped_link(mbit: float, lane: int = 0) -> Iterator[ShapedLink]:
    """A veth pair into a fresh network namespace, both ends shaped by ``tbf`` at ``mbit``."""
    tag = f"{os.getpid() % 100000}l{lane}"
    taken = _ip("ip", "-o", "-4", "addr", "show", check=False).stdout
    # A /30 of our own in 169.254/16 that no other interface (another run's) uses.
    octet = next(
        (n for n in range(os.getpid() % 250 + 1, 251) if f" 169.254.{n}." not in taken),
        next(n for n in range(1, 251) if f" 169.254.{n}." not in taken),
    )
    link = ShapedLink(
        ns=f"ccbench{tag}",
        host_if=f"ccb{tag}h",
        ns_if=f"ccb{tag}n",
        host_ip=f"169.254.{octet}.1",
        ns_ip=f"169.254.{octet}.2",
    )
    rate = f"{mbit:g}mbit"
    try:
        _ip("ip", "netns", "add", link.ns)
        _ip("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if)
        _ip("ip", "link", "set", link.ns_if, "netns", link.ns)
        _ip("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        _ip("ip", "link", "set", link.host_if, "up")
        _ip("ip", "-n", link.ns, "addr", "add", f"{link.ns_ip}/30", "dev", link.ns_if)
        _ip("ip", "-n", link.ns, "link", "set", link.ns_if, "up")
        _ip("ip", "-n", link.ns, "link", "set", "lo", "up")
        tbf = ["root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
        _ip("tc", "qdisc", "add", "dev", link.host_if, *tbf)
        _ip("ip", "netns", "exec", link.ns, "tc", "qdisc", "add", "dev", link.ns_if, *tbf)
        yield link
    finally:
        _ip("ip", "link", "del", link.host_if, check=False)
        _ip("ip", "netns", "del", link.ns, check=False)


def qdisc_sent_bytes(link: ShapedLink) -> int:
    out = _ip("ip", "netns", "exec", link.ns, "tc", "-s", "qdisc", "show", "dev", link.ns_if)
    words = out.stdout.split()
    return int(words[words.index("Sent") + 1])


@contextlib.contextmanager
def sshd_in_namespace(link: ShapedLink, work: Path, data: Path) -> Iterator[Peer]:
    from include.cc_intake.sandbox.keys import ensure_keys
    from tests.integration.servers import SSHD, sshd_config

    keys = ensure_keys(work / "server" / "keys")
    base = work / "shaped_sshd"
    base.mkdir(parents=True, exist_ok=True)
    authorized = base / "authorized_keys"
    authorized.write_text(keys.client_public_line + "\n")
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = 2222
    config = base / "sshd_config"
    config.write_text(sshd_config(port, link.ns_ip, keys, base, authorized))
    proc = subprocess.Popen(
        ["ip", "netns", "exec", link.ns, str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((link.ns_ip, port), 0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise BenchError(f"sshd in namespace {link.ns} did not start: {err}")
            time.sleep(0.05)
        login = (
            os.environ.get("USER")
            or subprocess.run(
                ["id", "-un"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        yield Peer(
            host=link.ns_ip,
            port=port,
            login=login,
            key_path=keys.client_key_path,
            known_hosts_line=keys.known_hosts_line(link.ns_ip, port),
            prefix=str(data),
            data=data,
            work=work,
        )
    finally:
        _kill_group(proc.pid)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


# --- WAN: a shaped link with a long round trip ---------------------------------------------


@contextlib.contextmanager
def delay_proxy(host: str, port: int, rtt_ms: float) -> Iterator[int]:
    """``delay_proxy`` in its own process, relaying 127.0.0.1:<port> to ``host:port``."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.delay_proxy",
            "0",
            host,
            str(port),
            f"{rtt_ms / 2:g}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("READY "):
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise BenchError(f"delay proxy did not start: {line!r} {err[-2000:]}")
        yield int(line.split()[1])
    finally:
        _kill_group(proc.pid)
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


_LINK_LOCK = threading.Lock()


@contextlib.contextmanager
def wan_lane(ctx: Ctx, lane: int) -> Iterator[Peer]:
    """A link of its own: namespace, ``tbf`` both ways, sshd inside, the delay proxy in front."""
    s = ctx.sizes
    work = ctx.work / "wan" / f"lane{lane}"
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        with _LINK_LOCK:  # the /30 is picked among the addresses in use: one at a time
            link = stack.enter_context(shaped_link(s.shaped_mbit, lane))
        direct = stack.enter_context(sshd_in_namespace(link, work, ctx.peer.data))
        port = stack.enter_context(delay_proxy(direct.host, direct.port, s.wan_rtt_ms))
        key = direct.known_hosts_line.split(None, 1)[1]
        yield dataclasses.replace(
            direct, host="127.0.0.1", port=port, known_hosts_line=f"[127.0.0.1]:{port} {key}"
        )


def case_shaped(ctx: Ctx) -> None:
    """The WAN case: 8 Mbit/s ``tbf`` plus 100 ms of round trip, every tool, two day shapes.

    Each (data set, tool) pair gets a lane of its own, all alike (namespace, ``tbf``, sshd,
    delay proxy), and the lanes run side by side: the same link for every tool, and the
    whole case in the time of its slowest peer instead of the sum (at 1 MB/s a lane needs
    a few % of a core). Share of the link = file bytes / (seconds x tbf rate); seconds run
    from connect to manifest written for us, over the whole process for the CLIs.
    """
    s = ctx.sizes
    rtt = f"{s.shaped_mbit:g} Mbit/s, {s.wan_rtt_ms:g} ms RTT"
    blocker = shaped_blocker()
    if blocker:
        ctx.report.rows.append(
            Row(case="wan", tool="cc-intake copy_day", note=f"cannot run: {blocker}")
        )
        ctx.report.targets.append(
            Target(f"WAN ({rtt})", ">= 90 % of the link", f"not measured: {blocker}", None)
        )
        return
    link_bytes_s = s.shaped_mbit * 1e6 / 8
    sets = []
    for name, count, kb, shape in (
        ("wan_small", s.wan_small_files, s.wan_small_kb, "small"),
        ("wan_big", s.wan_big_files, s.wan_big_kb, "large"),
    ):
        folder = ctx.data / name / f"{DAY:%Y%m%d}"
        source = ensure_dataset(folder, count, kb * 1000)
        sets.append(
            (
                f"{count} x {kb / 1000:g} MB" if kb >= 1000 else f"{count} x {kb} KB",
                folder,
                source,
                shape,
            )
        )
    tools = [t for t in available_tools()]
    lanes = [
        (label, folder, source, shape, tool)
        for label, folder, source, shape in sets
        for tool in tools
    ]
    results: dict[tuple[str, str], list[Run]] = {}
    errors: list[BaseException] = []
    capped: list[Run] = []

    def run_lane(index: int, label: str, folder: Path, source: Any, shape: str, tool: str) -> None:
        try:
            with wan_lane(ctx, index) as peer:
                if tool == "capped":
                    say(f"wan {label}: copy_day under max_bandwidth {s.shaped_cap_mbit:g}Mbit")
                    run, _ = run_tool(
                        "cc-intake copy_day",
                        peer,
                        folder,
                        source,
                        ctx.out / "wan" / f"lane{index}",
                        sizes=s,
                        shape=shape,
                        full=True,
                        max_bandwidth=f"{s.shaped_cap_mbit:g}Mbit",
                    )
                    capped.append(run)
                    return
                results[(label, tool)] = repeated_runs(
                    ctx, f"wan/lane{index}", folder, source, shape=shape, peer=peer, tools=[tool]
                )[tool]
        except BaseException as exc:  # re-raised by the main thread
            errors.append(exc)

    jobs = list(lanes)
    if s.shaped_cap_mbit:
        label, folder, source, shape = sets[1]
        jobs.append((label, folder, source, shape, "capped"))
    say(f"wan: {len(jobs)} lanes side by side at {rtt}")
    threads = [
        threading.Thread(target=run_lane, args=(i, *job), daemon=True) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    for label, _, source, shape in sets:
        total = sum(size for size, _ in source.values())
        ours_share: float | None = None
        shares: dict[str, float] = {}
        for tool in tools:
            runs = results[(label, tool)]
            med = statistics.median(r.seconds for r in runs)
            share = total / (med * link_bytes_s)
            shares[tool] = share
            note = f"{share:.1%} of the link; {flags_note(tool, shape)}; {spread(runs)}"
            if runs[0].cipher:
                note += f"; {runs[0].cipher}"
            ctx.report.rows.append(
                Row(
                    case="wan",
                    tool=f"{tool}, {label}",
                    seconds=med,
                    nbytes=total,
                    peak_rss_mb=max(r.rss for r in runs),
                    cpu_s=statistics.median(r.cpu for r in runs),
                    note=note,
                )
            )
        ours_share = shares.get("cc-intake copy_day")
        ctx.report.targets.append(
            Target(
                f"WAN {label} ({rtt})",
                ">= 90 % of the link (file bytes / (seconds x rate))",
                "; ".join(f"{t} {v:.1%}" for t, v in shares.items()),
                ours_share is not None and ours_share >= 0.9,
            )
        )
        if "rclone copy" not in tools:
            ctx.report.rows.append(
                Row(case="wan", tool=f"rclone copy, {label}", note=rclone_missing())
            )
    if capped:
        [run] = capped
        label, _, source, _ = sets[1]
        total = sum(size for size, _ in source.values())
        mbit = total * 8 / run.seconds / 1e6
        ctx.report.rows.append(
            Row(
                case="wan",
                tool=f"cc-intake copy_day, {label}, max_bandwidth {s.shaped_cap_mbit:g}Mbit",
                seconds=run.seconds,
                nbytes=total,
                cpu_s=run.cpu,
                note=f"file bytes at {mbit:.2f} Mbit/s under a {s.shaped_cap_mbit:g} Mbit/s cap",
            )
        )
        ctx.report.targets.append(
            Target(
                f"max_bandwidth {s.shaped_cap_mbit:g}Mbit on that link",
                "the cap holds",
                f"{mbit:.2f} Mbit/s of file bytes",
                mbit <= s.shaped_cap_mbit * 1.02,
            )
        )


CASE_FUNCS: dict[str, Callable[[Ctx], None]] = {
    "day": case_day,
    "small": case_small,
    "listing": case_listing,
    "memory": case_memory,
    "resume": case_resume,
    "parse": case_parse,
    "shaped": case_shaped,
}


# ---------------------------------------------------------------------------------------------
# Entry points


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]


def machine() -> str:
    """Everything docs/benchmarks.md states about the run: date, machine, versions, load."""
    import asyncssh
    import cryptography

    from include.cc_intake.eventloop import loop_factory
    from include.cc_intake.ssh_setup import cpu_has_aes

    loop = "asyncio's own loop (uvloop not installed)"
    if loop_factory() is not None:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024**2:.1f} GiB"
    fs = _version(["df", "-T", str(ROOT)]).split()
    disk = _version(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(ROOT)])
    return "\n".join(
        [
            f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
            f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            f"machine: {os.cpu_count()} CPUs ({cpu}, AES instructions: "
            f"{'yes' if cpu_has_aes() else 'no'}); {mem} RAM; kernel {platform.release()}; "
            f"landing disk {disk or ' '.join(fs[:2])}",
            f"software: Python {platform.python_version()}; asyncssh {asyncssh.__version__}; "
            f"cryptography {cryptography.__version__}; event loop: {loop}; "
            f"{_version(['ssh', '-V'])}; "
            f"{_version(['rclone', 'version'])}",
        ]
    )


def ensure_rclone() -> None:
    """Install rclone from Debian when it is missing and we are root (as .ci/run does)."""
    if shutil.which("rclone") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    say("installing rclone (apt-get install rclone)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rclone"]):
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            say(f"{' '.join(cmd)} failed: rclone rows will say it is not installed")
            return


def run_bench(
    sizes: Sizes,
    work: Path,
    cases: list[str],
    out: IO[str] = sys.stdout,
    *,
    server: str = "auto",
) -> Report:
    """Run ``cases`` at ``sizes`` with data under ``work``; print and return the report."""
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    report = Report()
    with loopback_server(work, server) as (peer, handle):
        peer_data = peer.data / "bench"
        peer_data.mkdir(parents=True, exist_ok=True)
        ctx = Ctx(peer=peer, handle=handle, sizes=sizes, work=work, report=report)
        say(f"server: {handle.kind} on 127.0.0.1:{peer.port}; cases: {', '.join(cases)}")
        for case in cases:
            t0 = time.perf_counter()
            CASE_FUNCS[case](ctx)
            say(f"{case}: done in {time.perf_counter() - t0:.0f} s")
    what = "OpenSSH sshd" if handle.kind == "openssh" else "the sandbox's asyncssh server"
    knobs = ", ".join(f"{f.name}={getattr(sizes, f.name)}" for f in dataclasses.fields(Sizes))
    header = f"{machine()}\nserver: {what} on 127.0.0.1; sizes: {knobs}"
    report.text = render(report, header=header + "\n")
    print(report.text, file=out, flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    cases = [c.strip() for c in args.only.split(",") if c.strip()] or list(CASES)
    if args.tools:
        short = {"ours": TOOLS[0], "openssh": TOOLS[1], "rclone": TOOLS[2], "mget": TOOLS[3]}
        CHOSEN_TOOLS.clear()
        CHOSEN_TOOLS.update(short[t.strip()] for t in args.tools.split(",") if t.strip())
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        print(f"unknown case(s) {unknown}; choose among {CASES}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanups (namespace, sshd)

    signal.signal(signal.SIGTERM, stop)
    ensure_rclone()
    t0 = time.perf_counter()
    report = run_bench(sizes, args.work, cases, server=args.server)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [dataclasses.asdict(r) | {"mb_per_s": r.mb_per_s} for r in report.rows],
                    "targets": [dataclasses.asdict(t) for t in report.targets],
                    "day_ratio": report.day_ratio,
                },
                indent=2,
            )
        )
    shutil.rmtree(args.work / "out", ignore_errors=True)
    took = f"bench took {time.perf_counter() - t0:.0f} s (command: {' '.join(sys.argv)})"
    print(took, flush=True)
    # What docs/benchmarks.md is written from, kept after the run.
    (args.work / "last-run.md").write_text(report.text + "\n" + took + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
