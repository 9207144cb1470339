"""Listing and copying the day's recordings from an FTPS server (explicit TLS).

The FTPS counterpart of ``transfer.py``: the same listing entries (``RemoteEntry``), so names,
classification, readiness and the manifest are the SFTP path's; the same landing machinery
(``transfer.Sink``/``transfer.Lander``: SHA-256 of the bytes written, ``.part`` + rename, batch
durability) and the same resume rule (``transfer.resume_check_ranges``).

What the standard library's ``ftplib.FTP_TLS`` lacks, added here:

* **TLS session reuse on the data channel** (:class:`ReusingFTP_TLS`): servers configured as
  recommended (vsftpd's ``require_ssl_reuse=YES``, ProFTPD's ``mod_tls`` by default, Titan's
  "require SSL session reuse") refuse a data connection that does not resume the control
  channel's session (``522``);
* certificate trust by a CA file or a pinned SHA-256 of the server's certificate, checked
  before the password is sent (a mismatch is a :class:`CertificateError`, never retried);
* TLS 1.2 or later, timeouts on every socket.

ftplib is blocking: a :class:`FtpsSession` is used by one thread at a time, and the async
:class:`FtpsSource` runs its calls on worker threads, one control connection per parallel
transfer. Nothing here knows about Airflow.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime as dt
import ftplib
import hashlib
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.errors import CertificateError, RemoteError, TransferError
from include.cc_intake.layout import make_dirs
from include.cc_intake.naming import EntryKind, RemoteEntry, classify_listing, folder_is_dated
from include.cc_intake.redact import mask_phone
from include.cc_intake.transfer import (
    HANDOFF,
    PROGRESS_EVERY,
    CopyJob,
    CopyOutcome,
    Lander,
    Progress,
    RateLimiter,
    Sink,
    first_difference,
    read_local,
    resume_check_ranges,
)

if TYPE_CHECKING:
    from include.cc_intake.config import RecordingsConfig

log = logging.getLogger(__name__)

DEFAULT_PORT = 21
# Seconds a socket operation may block once connected (a stalled server fails the file).
TIMEOUT = 60.0
# Seconds to open the control connection and finish the TLS handshake.
CONNECT_TIMEOUT = 15.0
_SPOTS = random.SystemRandom()

Listing = dict[str, list[RemoteEntry] | None]


@dataclass(frozen=True)
class FtpsEndpoint:
    """Where and how to reach one FTPS server (from an Airflow FTP connection).

    ``cert_sha256`` is the lower-case hex SHA-256 of the server certificate (DER), no colons;
    ``ca_file`` a PEM file of the authorities to trust (the host name is then checked too).
    With neither, the system's authorities are trusted.
    """

    host: str
    port: int = DEFAULT_PORT
    login: str = "anonymous"
    password: str = field(default="", repr=False)
    ca_file: str | None = None
    cert_sha256: str | None = None
    name: str = ""  # the connection id, for messages
    timeout: float = TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT


def normalise_fingerprint(text: str) -> str:
    """``AB:cd:…`` or ``abcd…`` → ``abcd…`` (what a pin is compared as)."""
    return text.replace(":", "").strip().lower()


def certificate_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def tls_context(endpoint: FtpsEndpoint) -> ssl.SSLContext:
    """TLS 1.2 or later; the CA file (host name checked), else none when a pin decides."""
    if endpoint.cert_sha256 and not endpoint.ca_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the pin is checked right after the handshake
    else:
        context = ssl.create_default_context(cafile=endpoint.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """``FTP_TLS`` whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, Any]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            control = self.sock
            assert isinstance(control, ssl.SSLSocket)
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=control.session
            )
        return conn, size


# --- listings -----------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_LIST_LINE = re.compile(
    r"^(?P<type>[-dlpscbD])(?P<perms>[-rwxsStTl]{9})[+.@]?\s+\d+\s+\S+\s+\S+\s+"
    r"(?P<size>\d+)\s+(?P<month>[A-Z][a-z]{2})\s+(?P<mday>\d{1,2})\s+"
    r"(?P<when>\d{1,2}:\d{2}|\d{4}) (?P<name>.+)$"
)
_LIST_KINDS: dict[str, EntryKind] = {"-": "file", "d": "dir", "l": "symlink"}


@dataclass(frozen=True)
class ListedLine:
    """One parsed ``ls -l`` line: ``step`` is its time's precision (60 s, or a day)."""

    name: str
    kind: EntryKind
    size: int
    mtime: int
    step: int


def parse_list_line(line: str, now: float) -> ListedLine | None:
    """Parse one Unix ``ls -l`` line as vsftpd sends it (times in UTC); None for ``total N``.

    A line of another shape raises ``ValueError`` naming it: never a silently skipped file.
    The year of a ``Mon DD HH:MM`` time is the one that puts it at most a day ahead of now.
    """
    if re.fullmatch(r"total \d+", line):
        return None
    match = _LIST_LINE.match(line)
    if not match or match["month"] not in _MONTHS:
        raise ValueError(f"not a Unix `ls -l` line: {line!r}")
    month, mday = _MONTHS[match["month"]], int(match["mday"])
    when = match["when"]
    try:
        if ":" in when:
            hour, minute = (int(x) for x in when.split(":"))
            today = dt.datetime.fromtimestamp(now, dt.UTC)
            stamp = dt.datetime(today.year, month, mday, hour, minute, tzinfo=dt.UTC)
            if stamp.timestamp() > now + 86400:
                stamp = stamp.replace(year=today.year - 1)
            step = 60
        else:
            stamp = dt.datetime(int(when), month, mday, tzinfo=dt.UTC)
            step = 86400
    except ValueError:
        raise ValueError(f"not a valid date in `ls -l` line: {line!r}") from None
    kind = _LIST_KINDS.get(match["type"], "other")
    name = match["name"]
    if kind == "symlink":
        name = name.split(" -> ", 1)[0]
    return ListedLine(name, kind, int(match["size"]), int(stamp.timestamp()), step)


def parse_mlsd_time(value: str) -> int:
    """``YYYYMMDDHHMMSS[.sss]`` (UTC, RFC 3659) → seconds since the epoch."""
    stamp = dt.datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    return int(stamp.timestamp())


def _mlsd_kind(facts: Mapping[str, str]) -> EntryKind | None:
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir"):
        return None
    if kind == "file":
        return "file"
    if kind == "dir":
        return "dir"
    if kind.startswith("os.unix=slink") or kind.startswith("os.unix=symlink"):
        return "symlink"
    return "other"


def same_time(listed: int, exact: int) -> bool:
    """Whether a listed time (maybe truncated to the minute or the day) is ``exact``'s."""
    return listed in (exact, exact - exact % 60, exact - exact % 86400)


# --- one control connection -----------------------------------------------------------------


class FtpsSession:
    """One logged-in FTPS control connection (TLS verified, ``PROT P``, passive, binary).

    Not thread-safe: one caller at a time. ``broken`` is set when a transfer failed half-way
    (the control channel may still owe a reply): such a session is closed, not reused.
    """

    def __init__(
        self,
        ftp: ReusingFTP_TLS,
        endpoint: FtpsEndpoint,
        where: str,
        fingerprint: str,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        self.ftp = ftp
        self.endpoint = endpoint
        self.where = where
        self.facts = dict(facts or {})  # provider, day: the errors' attributes
        self.fingerprint = fingerprint
        self.broken = False
        self.features = self._features()
        self.home = ftp.pwd()
        self._coarse: dict[str, int] = {}  # remote path -> precision of its listed time

    def _features(self) -> set[str]:
        try:
            reply = self.ftp.sendcmd("FEAT")
        except ftplib.Error:
            return set()
        return {
            line.strip().split(" ", 1)[0].upper()
            for line in reply.splitlines()[1:-1]
            if line.startswith(" ")
        }

    @property
    def has_mlsd(self) -> bool:
        return "MLST" in self.features

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error, ValueError):
            self.ftp.close()

    def _fail(self, message: str) -> RemoteError:
        return RemoteError(message, **self.facts)

    def _remote_error(self, what: str, exc: BaseException) -> RemoteError:
        return self._fail(
            f"{self.where}: {what} on the FTPS server of connection "
            f"{self.endpoint.name or self.endpoint.host!r}: {type(exc).__name__}: {exc}"
        )

    # listing -------------------------------------------------------------------------------

    def list_folder(
        self, folder: str, direction: str, *, recursive: bool = False, now: float | None = None
    ) -> list[RemoteEntry] | None:
        """One listing per folder (MLSD, else strict LIST); None when the folder is missing."""
        now = time.time() if now is None else now
        entries: list[RemoteEntry] = []
        pending: list[tuple[str, str]] = [(folder.rstrip("/") or "/", "")]
        while pending:
            path, prefix = pending.pop()
            try:
                self.ftp.cwd(path)
            except ftplib.error_perm as exc:
                if str(exc).startswith("550"):
                    if not prefix:
                        return None
                    continue
                raise self._remote_error(f"cannot open folder {path}", exc) from None
            try:
                rows = self._mlsd(path) if self.has_mlsd else self._list(path, now)
            except UnicodeDecodeError:
                self.broken = True
                raise self._fail(
                    f"{self.where}: the listing of {path} has a name that is not UTF-8; ask the "
                    "provider to rename it (or to enable UTF-8 on its server)"
                ) from None
            except (OSError, EOFError, ftplib.Error) as exc:
                self.broken = True
                raise self._remote_error(f"cannot list {path}", exc) from None
            finally:
                if not self.broken:
                    with contextlib.suppress(ftplib.Error):
                        self.ftp.cwd(self.home)
                    # ftplib lists in ASCII mode (TYPE A): back to binary for RETR and SIZE.
                    self.ftp.voidcmd("TYPE I")
            for name, kind, size, mtime, step in rows:
                if name in (".", ".."):
                    continue
                rel = f"{prefix}{name}"
                remote = f"{path.rstrip('/')}/{name}"
                if kind == "dir" and recursive:
                    pending.append((remote, f"{rel}/"))
                    continue
                if step > 1:
                    self._coarse[remote] = step
                else:
                    self._coarse.pop(remote, None)
                entries.append(RemoteEntry(direction, rel, remote, size, mtime, kind))
        return entries

    def _mlsd(self, path: str) -> list[tuple[str, EntryKind, int, int, int]]:
        rows = []
        for name, facts in self.ftp.mlsd():
            kind = _mlsd_kind({k.lower(): v for k, v in facts.items()})
            if kind is None:
                continue
            lowered = {k.lower(): v for k, v in facts.items()}
            try:
                size = int(lowered.get("size") or lowered.get("sizd") or 0)
                mtime = parse_mlsd_time(lowered["modify"]) if "modify" in lowered else 0
            except ValueError:
                raise self._fail(
                    f"{self.where}: MLSD of {path} gave an unreadable entry {name!r}: {facts}"
                ) from None
            if kind == "file" and ("size" not in lowered or "modify" not in lowered):
                raise self._fail(
                    f"{self.where}: MLSD of {path} gave no size or modify time for {name!r}"
                )
            rows.append((name, kind, size, mtime, 1))
        return rows

    def _list(self, path: str, now: float) -> list[tuple[str, EntryKind, int, int, int]]:
        lines: list[str] = []
        self.ftp.retrlines("LIST -a", lines.append)
        rows = []
        for line in lines:
            try:
                parsed = parse_list_line(line, now)
            except ValueError as exc:
                raise self._fail(
                    f"{self.where}: cannot read the listing of {path}: {exc}. Expected the "
                    "Unix `ls -l` format (or MLSD)"
                ) from None
            if parsed is not None:
                rows.append((parsed.name, parsed.kind, parsed.size, parsed.mtime, parsed.step))
        return rows

    def mdtm(self, path: str) -> int:
        reply = self.ftp.sendcmd(f"MDTM {path}")
        return parse_mlsd_time(reply.split()[-1])

    def settle_listing(
        self, listing: Listing, cfg: RecordingsConfig, day: dt.date, *, now: float | None = None
    ) -> Listing:
        """Exact times (``MDTM``) for the in-scope files whose listed minute is too coarse.

        A minute-precision time can hide a file younger than ``min_file_age``: those in scope
        listed less than ``min_file_age`` + one step ago are asked; one found too young keeps
        its exact time (readiness sees it moving), the others keep the listed time, so the
        manifest's ``remote_mtime`` stays the same from one run to the next.
        """
        now = time.time() if now is None else now
        if not self._coarse:
            return listing
        min_age = cfg.min_file_age.total_seconds()
        settled: Listing = {}
        for direction, entries in listing.items():
            if not entries:
                settled[direction] = entries
                continue
            dated = folder_is_dated(cfg.directions[direction])  # type: ignore[index]
            scope = {
                v.entry.remote_path
                for v in classify_listing(entries, cfg, day, dated_folder=dated)
                if v.accepted
            }
            out = []
            for entry in entries:
                step = self._coarse.get(entry.remote_path, 0)
                if step and entry.remote_path in scope and now - entry.mtime < min_age + step:
                    try:
                        exact = self.mdtm(entry.remote_path)
                    except (ftplib.Error, ValueError) as exc:
                        raise self._remote_error(f"MDTM {entry.remote_path}", exc) from None
                    if now - exact < min_age:
                        entry = replace(entry, mtime=exact)
                out.append(entry)
            settled[direction] = out
        return settled

    # reading -------------------------------------------------------------------------------

    def read_file(self, path: str) -> bytes | None:
        """A small file's bytes (the daily report), or None when the server has no such file."""
        parts: list[bytes] = []
        try:
            self.ftp.retrbinary(f"RETR {path}", parts.append)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise self._remote_error(f"cannot read {path}", exc) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            self.broken = True
            raise self._remote_error(f"cannot read {path}", exc) from None
        return b"".join(parts)

    def _read_range(self, entry: RemoteEntry, start: int, n: int) -> bytes:
        """Bytes ``[start, start + n)`` of a remote file: ``REST`` + ``RETR``, then abandon."""
        conn = self.ftp.transfercmd(f"RETR {entry.remote_path}", rest=start)
        parts: list[bytes] = []
        got = 0
        try:
            while got < n:
                data = conn.recv(min(n - got, 256 * 1024))
                if not data:
                    break
                parts.append(data)
                got += len(data)
        finally:
            conn.close()
        with contextlib.suppress(ftplib.error_temp):
            self.ftp.voidresp()  # 226 if it was all sent, else 426/451 for the cut transfer
        if got < n:
            raise TransferError(
                f"{entry.remote_path}: remote file ended at byte {start + got}, "
                f"listed as {entry.size} bytes",
                files=[entry.remote_path],
            )
        return b"".join(parts)

    def _prefix_matches(
        self,
        entry: RemoteEntry,
        tmp: Path,
        offset: int,
        *,
        limiter: BlockingRateLimiter,
        rng: random.Random,
    ) -> bool:
        """The SFTP path's resume rule (contract §9): sampled ranges compared with the remote."""
        ranges = resume_check_ranges(offset, rng)
        mine = read_local(tmp, ranges)
        for (start, end), kept in zip(ranges, mine, strict=True):
            limiter.consume_blocking(end - start)
            served = self._read_range(entry, start, end - start)
            if kept != served:
                log.warning(
                    "%s: restarting from byte 0 instead of resuming at byte %d of %d: the "
                    "partial copy differs from the remote file in bytes %d-%d (first at byte "
                    "%d): a new version with the same size and mtime, or a damaged partial copy",
                    mask_phone(entry.remote_path),
                    offset,
                    entry.size,
                    start,
                    end - 1,
                    start + first_difference(kept, served),
                )
                return False
        return True

    def fetch(
        self,
        job: CopyJob,
        *,
        token: str,
        root: Path,
        limiter: BlockingRateLimiter,
        progress: Progress | None,
        rng: random.Random | None = None,
    ) -> Sink:
        """Bring one file's bytes into its temporary file (resumed with ``REST`` when it
        verifies); the caller lands the returned sink. Runs on a worker thread."""
        entry = job.entry
        tmp = job.tmp(token)
        make_dirs(job.final.parent, stop_at=root)
        start = 0
        with contextlib.suppress(FileNotFoundError):
            have = tmp.stat().st_size
            start = have if have <= entry.size else 0
        sink = _ThreadSink(tmp, start)
        try:
            try:
                if start and not self._prefix_matches(
                    entry, tmp, start, limiter=limiter, rng=rng or _SPOTS
                ):
                    start = 0
                    sink = _ThreadSink(tmp, 0)
                if start:
                    log.info(
                        "resuming %s at byte %d of %d",
                        mask_phone(entry.rel_name),
                        start,
                        entry.size,
                    )
                if start < entry.size:
                    self._retrieve(entry, start, sink, limiter=limiter, progress=progress)
                self._check_unchanged(entry)
            except (OSError, EOFError, ftplib.Error) as exc:
                self.broken = True
                raise TransferError(
                    f"{entry.remote_path}: {type(exc).__name__}: {exc}", files=[entry.remote_path]
                ) from None
            except TransferError:
                self.broken = True
                raise
            sink.finish()
        except BaseException:
            sink.close()
            raise
        return sink

    def _retrieve(
        self,
        entry: RemoteEntry,
        start: int,
        sink: _ThreadSink,
        *,
        limiter: BlockingRateLimiter,
        progress: Progress | None,
    ) -> None:
        conn = self.ftp.transfercmd(f"RETR {entry.remote_path}", rest=start or None)
        at = start
        try:
            batch: list[bytes] = []
            queued = 0
            while True:
                data = conn.recv(limiter.chunk)
                if not data:
                    break
                at += len(data)
                if at > entry.size:
                    raise TransferError(
                        f"{entry.remote_path}: grew during the copy (more than the "
                        f"{entry.size} bytes listed)",
                        files=[entry.remote_path],
                    )
                limiter.consume_blocking(len(data))
                batch.append(data)
                queued += len(data)
                if queued >= HANDOFF:
                    sink.write_blocks(batch)
                    batch, queued = [], 0
                if progress is not None:
                    progress.bytes_done += len(data)
            sink.write_blocks(batch)
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        finally:
            conn.close()
        self.ftp.voidresp()
        if at != entry.size:
            raise TransferError(
                f"{entry.remote_path}: remote file ended at byte {at}, listed as {entry.size} "
                "bytes",
                files=[entry.remote_path],
            )

    def _check_unchanged(self, entry: RemoteEntry) -> None:
        """Size and time once our last byte was read (``SIZE``, ``MDTM``), as SFTP's stat."""
        size = self.ftp.size(entry.remote_path)
        exact = self.mdtm(entry.remote_path)
        if size != entry.size or not same_time(entry.mtime, exact):
            raise TransferError(
                f"{entry.remote_path}: changed during the copy (size {entry.size} -> {size}, "
                f"mtime {entry.mtime} -> {exact})",
                files=[entry.remote_path],
            )


class _ThreadSink(Sink):
    """A :class:`transfer.Sink` written synchronously by the thread that reads the socket."""

    def write_blocks(self, blocks: list[bytes]) -> None:
        if blocks or self.fd is None:
            self._write(blocks)

    def finish(self) -> None:
        """Open (an empty file, too) so the lander has a descriptor to make durable."""
        if self.fd is None:
            self._write([])


class BlockingRateLimiter(RateLimiter):
    """The shared byte budget for threads: ``consume_blocking`` sleeps the calling thread."""

    def __init__(self, bytes_per_s: int | None) -> None:
        super().__init__(bytes_per_s)
        self._lock = threading.Lock()

    def consume_blocking(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + nbytes / self.rate
            delay = self._next - now
        if delay > 0:
            time.sleep(delay)


# --- connecting -----------------------------------------------------------------------------


def connect(
    endpoint: FtpsEndpoint,
    *,
    where: str,
    provider: str | None = None,
    day: dt.date | None = None,
) -> FtpsSession:
    """Open, verify and log in; ``where`` ("<provider> <day>") starts every error message, and
    ``provider`` and ``day`` are the errors' attributes.

    The certificate is checked before the login is sent: a wrong one is a
    :class:`CertificateError` (never retried, never a reason to try another endpoint); a
    server that cannot be reached or refuses us is a :class:`RemoteError`.
    """
    name = endpoint.name or endpoint.host
    ftp = ReusingFTP_TLS(context=tls_context(endpoint), timeout=endpoint.connect_timeout)
    fingerprint = ""
    try:
        ftp.connect(endpoint.host, endpoint.port, timeout=endpoint.connect_timeout)
        ftp.auth()
        assert isinstance(ftp.sock, ssl.SSLSocket)
        der = ftp.sock.getpeercert(binary_form=True) or b""
        fingerprint = certificate_sha256(der)
        pin = normalise_fingerprint(endpoint.cert_sha256 or "")
        if pin and fingerprint != pin:
            raise CertificateError(
                f"{where}: the FTPS server of connection {name!r} ({endpoint.host}:"
                f"{endpoint.port}) presented a certificate whose SHA-256 is {fingerprint}, "
                f"not the pinned {pin}. Verify it with the provider, then set the "
                "connection's `cert_sha256` extra; see `make check`.",
                provider=provider,
                day=day,
            )
        ftp.sock.settimeout(endpoint.timeout)
        ftp.timeout = endpoint.timeout
        ftp.login(endpoint.login, endpoint.password, secure=False)
        ftp.prot_p()
        ftp.set_pasv(True)
        ftp.voidcmd("TYPE I")
        session = FtpsSession(ftp, endpoint, where, fingerprint, {"provider": provider, "day": day})
        if "UTF8" in session.features:
            with contextlib.suppress(ftplib.Error):  # Windows servers (Titan) want it asked
                ftp.sendcmd("OPTS UTF8 ON")
        return session
    except CertificateError:
        ftp.close()
        raise
    except ssl.SSLCertVerificationError as exc:
        ftp.close()
        raise CertificateError(
            f"{where}: the FTPS server of connection {name!r} ({endpoint.host}:{endpoint.port}) "
            f"presented a certificate that is not trusted by {endpoint.ca_file or 'the system'}"
            f" ({exc.verify_message}). Verify it with the provider, then set the connection's "
            "`ca_file` or `cert_sha256` extra; see `make check`.",
            provider=provider,
            day=day,
        ) from None
    except (OSError, EOFError, ftplib.Error) as exc:
        ftp.close()
        raise RemoteError(
            f"{where}: cannot open an FTPS session with connection {name!r} "
            f"({endpoint.host}:{endpoint.port}): {type(exc).__name__}: {exc}",
            provider=provider,
            day=day,
        ) from None


def peek_certificate(endpoint: FtpsEndpoint) -> tuple[str, str]:
    """The server's certificate SHA-256 and subject, trusting nothing (for ``make check``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    ftp = ReusingFTP_TLS(context=context, timeout=endpoint.connect_timeout)
    try:
        ftp.connect(endpoint.host, endpoint.port, timeout=endpoint.connect_timeout)
        ftp.auth()
        assert isinstance(ftp.sock, ssl.SSLSocket)
        der = ftp.sock.getpeercert(binary_form=True) or b""
    finally:
        ftp.close()
    subject = ""
    with contextlib.suppress(Exception):
        pem = ssl.DER_cert_to_PEM_cert(der)
        from cryptography import x509

        subject = x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
    return certificate_sha256(der), subject


# --- the day's copy, several control connections ----------------------------------------------


async def copy_all(
    open_session: Callable[[], FtpsSession],
    jobs: Iterable[CopyJob],
    *,
    first: FtpsSession | None = None,
    token: str,
    root: Path,
    max_parallel: int = 4,
    bytes_per_s: int | None = None,
    on_progress: Callable[[str], None] = log.info,
    progress_every: float = PROGRESS_EVERY,
    rng: random.Random | None = None,
) -> list[CopyOutcome]:
    """Copy every job, ``max_parallel`` at a time, each on its own control connection.

    The FTPS twin of ``transfer.copy_all``: never raises per file (a failed file comes back
    with its error, its temporary file kept for the retry to resume); files land through the
    same ``Lander``. ``first`` (the session the caller already holds) serves one worker; the
    others open theirs with ``open_session`` (a server refusing more connections leaves the
    work to those that have one).
    """
    todo = list(jobs)
    progress = Progress(files_total=len(todo), bytes_total=sum(j.entry.size for j in todo))
    limiter = BlockingRateLimiter(bytes_per_s)
    queue: asyncio.Queue[CopyJob] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)
    outcomes: list[CopyOutcome] = []

    def done(outcome: CopyOutcome) -> None:
        outcomes.append(outcome)
        progress.files_done += 1

    lander = Lander(done)
    workers = max(1, min(max_parallel, len(todo)))

    async def worker(index: int) -> None:
        session = first if index == 0 else None
        try:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    if session is None or session.broken:
                        if session is not None and session is not first:
                            await asyncio.to_thread(session.close)
                        try:
                            session = await asyncio.to_thread(open_session)
                        except RemoteError as exc:
                            if index:  # an extra connection refused: others carry on
                                log.warning("FTPS connection %d not opened: %s", index + 1, exc)
                                queue.put_nowait(job)
                                session = None
                                return
                            raise
                    sink = await asyncio.to_thread(
                        session.fetch,
                        job,
                        token=token,
                        root=root,
                        limiter=limiter,
                        progress=progress,
                        rng=rng,
                    )
                except Exception as exc:  # recorded per file; the caller decides the task's fate
                    done(CopyOutcome(job=job, error=f"{type(exc).__name__}: {exc}"))
                    continue
                await lander.submit(job, sink)
        finally:
            if session is not None and session is not first:
                await asyncio.to_thread(session.close)

    ticker = asyncio.ensure_future(progress.report(progress_every, on_progress))
    landing = asyncio.ensure_future(lander.run())
    try:
        await asyncio.gather(*(worker(i) for i in range(workers)))
        # Jobs handed back by a worker that could not connect, after the others had finished.
        while not queue.empty():
            await worker(0)
        lander.close()
        await landing
    finally:
        for task in (ticker, landing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if todo:
        on_progress(progress.line())
    return outcomes


class FtpsSource:
    """An FTPS server as ``recordings`` uses a source: listing, copy and report reads.

    Holds one session (opened by the caller, e.g. after choosing the endpoint) and opens more
    with ``open_session`` for parallel transfers. Blocking calls run on worker threads.
    """

    def __init__(
        self, session: FtpsSession, open_session: Callable[[], FtpsSession], endpoint: str = ""
    ) -> None:
        self.session = session
        self.open_session = open_session
        self.endpoint = endpoint
        # One control connection answers one command at a time: listings of several folders
        # (read at once by ``recordings.list_day``) take turns on it.
        self._turn = asyncio.Lock()

    async def list_folder(
        self, folder: str, direction: str, *, recursive: bool = False
    ) -> list[RemoteEntry] | None:
        async with self._turn:
            return await asyncio.to_thread(
                self.session.list_folder, folder, direction, recursive=recursive
            )

    async def settle_listing(
        self, listing: Listing, cfg: RecordingsConfig, day: dt.date
    ) -> Listing:
        async with self._turn:
            return await asyncio.to_thread(self.session.settle_listing, listing, cfg, day)

    async def read_file(self, path: str) -> bytes | None:
        async with self._turn:
            return await asyncio.to_thread(self.session.read_file, path)

    async def copy(
        self,
        jobs: list[CopyJob],
        *,
        token: str,
        root: Path,
        max_parallel: int,
        bytes_per_s: int | None,
        on_progress: Callable[[str], None],
        connections: int = 1,
    ) -> list[CopyOutcome]:
        # ``connections`` is the SFTP lever (#15); FTPS already copies each of the
        # ``max_parallel`` files on its own control connection.
        del connections
        first = None if self.session.broken else self.session
        return await copy_all(
            self.open_session,
            jobs,
            first=first,
            token=token,
            root=root,
            max_parallel=max_parallel,
            bytes_per_s=bytes_per_s,
            on_progress=on_progress,
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self.session.close)
