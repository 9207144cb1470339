"""Onboarding check, the Airflow side: connections, hooks and the command line.

    make check PROVIDER=<id> [DATE=YYYY-MM-DD]
    python -m include.cc_intake.airflow.check <id> [--date YYYY-MM-DD]

It validates the provider's YAML, opens an SFTP session the way the DAG does (host key verified
by the sftp provider's hook), lists each direction's folder for the day, reads and parses the
end-of-day report, asks the CRM for its first page only, and estimates the copy time. On an
unknown host key it reads the server's key (key exchange only, nothing listed) and prints its
fingerprint and the exact connection extra to set once the operator has verified it out of band.

Connections come from Airflow: ``AIRFLOW_CONN_*`` variables work without a metadata DB.
Exit codes: 0 ready, 1 problems found, 2 usage or configuration error. This module only
gathers what the servers show; the verdict and the report are
:mod:`include.cc_intake.onboarding`'s (pure, unit-tested without Airflow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ftplib
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake import eventloop
from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.days import parse_day, processed_day
from include.cc_intake.errors import (
    CertificateError,
    ConfigError,
    HostKeyError,
    RemoteError,
    ReportError,
)
from include.cc_intake.naming import render_folder
from include.cc_intake.onboarding import (
    EXIT_PROBLEMS,
    EXIT_READY,
    EXIT_USAGE,
    CheckResult,
    CrmLook,
    HostKeyLook,
    ReportLook,
    SftpLook,
    assess,
    look_directions,
    render,
)
from include.cc_intake.redact import sanitize

if TYPE_CHECKING:
    import asyncssh
    from airflow.sdk import Connection

    from include.cc_intake.recordings import Listing

__all__ = ["EXIT_PROBLEMS", "EXIT_READY", "EXIT_USAGE", "UsageError", "main", "run_check"]

CONNECT_TIMEOUT_S = 30.0
"""An unreachable server answers nothing: give up after this instead of the OS's minutes."""
CRM_MAX_RETRIES = 2
CRM_MAX_WAIT_S = 10.0
"""A check should answer in seconds: Retry-After and back-off waits are capped to this."""

_AUTH_HEADER = re.compile(r"auth|token|key|secret|pass|cookie|session", re.IGNORECASE)


class UsageError(Exception):
    """The command cannot run as asked (bad arguments, unknown provider, invalid YAML)."""


# --------------------------------------------------------------------------- provider lookup


def find_provider(provider_id: str) -> tuple[ProviderConfig, Path, bool]:
    """The provider's validated config, its file, and whether it is a sandbox provider.

    Looks in the folders the DAG factory loads (``factory.provider_folders()``).
    """
    from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR, provider_folders

    folders = provider_folders()
    if not re.fullmatch(r"[a-z0-9_]+", provider_id):
        raise UsageError(f"provider id {provider_id!r} must match [a-z0-9_]+ (the YAML's stem)")
    sandbox_dir = SANDBOX_PROVIDERS_DIR.resolve()
    for folder in folders:
        path = folder / f"{provider_id}.yaml"
        if path.is_file():
            try:
                cfg = load_provider(path)
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
            return cfg, path, folder.resolve() == sandbox_dir
    known = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
    where = ", ".join(str(f) for f in folders)
    lines = [
        f"provider inconnu / unknown provider {provider_id!r}: no {provider_id}.yaml in {where}",
        "prestataires connus / known providers: " + (", ".join(known) or "(none)"),
    ]
    if (SANDBOX_PROVIDERS_DIR / f"{provider_id}.yaml").is_file():  # not loaded: sandbox off
        lines.append(f"{provider_id} is a sandbox provider: set CC_INTAKE_SANDBOX=1 to check it")
    raise UsageError("\n".join(lines))


# --------------------------------------------------------------------------- SFTP


def _get_connection(conn_id: str) -> Connection:
    """The Airflow connection (env var first, then the metadata DB), or a clear ConfigError."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a metadata DB that is not there
        env = f"AIRFLOW_CONN_{conn_id.upper()}"
        # airflow.sdk's or airflow's own class, depending on the process context.
        if type(exc).__name__ == "AirflowNotFoundException":
            raise ConfigError(
                f"connection {conn_id!r} is not defined: set {env} or create it "
                "(Admin > Connections, or `airflow connections add`)"
            ) from None
        raise ConfigError(
            f"cannot read connection {conn_id!r} ({type(exc).__name__}: {sanitize(exc)}); "
            f"set {env} or check the metadata DB"
        ) from None


def _fingerprint_of(line: str) -> str:
    import asyncssh

    parts = line.strip().split()
    text = " ".join(parts[:2]) if len(parts) >= 2 else f"ssh-rsa {line.strip()}"
    try:
        return str(asyncssh.import_public_key(text).get_fingerprint("sha256"))
    except (asyncssh.KeyImportError, ValueError):
        return "(unreadable key)"


async def _server_key(conn: Connection) -> HostKeyLook:
    """Read the key the server presents: a key exchange only, no login, nothing listed."""
    import asyncssh

    look = HostKeyLook()
    extra = conn.extra_dejson
    if extra.get("host_key"):
        look.pinned = _fingerprint_of(str(extra["host_key"]))
    elif extra.get("known_hosts"):
        look.known_hosts = str(extra["known_hosts"])
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(conn.host or "", conn.port or 22), CONNECT_TIMEOUT_S
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        look.error = f"{type(exc).__name__}: {exc}"
        return look
    if key is None:
        look.error = "the server presented no host key"
        return look
    look.fingerprint = str(key.get_fingerprint("sha256"))
    look.algorithm = key.get_algorithm()
    look.public_line = " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])
    return look


async def _look_remote(
    provider: ProviderConfig, day: dt.date, conn: Connection, now: float
) -> SftpLook:
    import asyncssh

    from include.cc_intake.airflow.sftp import open_sftp
    from include.cc_intake.handshake import fold_listing
    from include.cc_intake.listing import list_folder

    cfg = provider.recordings
    look = SftpLook(cfg.conn_id)
    look.address = f"{conn.login or '?'}@{conn.host}:{conn.port or 22}"
    extra = conn.extra_dejson
    look.check_disabled = str(extra.get("no_host_key_check", "")).lower() == "true"
    if look.check_disabled:
        look.host_key_note = "host key NOT checked (no_host_key_check)"
    elif extra.get("host_key"):
        look.host_key_note = f"host key verified ({_fingerprint_of(str(extra['host_key']))})"
    else:
        known = extra.get("known_hosts") or "~/.ssh/known_hosts"
        look.host_key_note = f"host key verified (known_hosts {known})"

    async with contextlib.AsyncExitStack() as stack:
        try:
            sftp = await asyncio.wait_for(
                stack.enter_async_context(open_sftp(provider, day)), CONNECT_TIMEOUT_S
            )
        except HostKeyError:
            look.host_key = await _server_key(conn)
            look.error = "unknown host key"
            return look
        except RemoteError as exc:
            look.error, look.unreachable = sanitize(exc), True
            return look
        except TimeoutError:
            look.error = (
                f"no SSH answer from {conn.host}:{conn.port or 22} in {CONNECT_TIMEOUT_S:.0f} s"
            )
            look.unreachable = True
            return look
        except ValueError as exc:  # the hook refuses e.g. host_key together with no_host_key_check
            look.error = f"connection {cfg.conn_id!r} is inconsistent: {exc}"
            return look
        look.connected = True
        if look.check_disabled:
            look.host_key = await _server_key(conn)

        # The same reads as recordings.list_day, one folder at a time to name a failing one.
        listing: Listing = {}
        errors: dict[str, str] = {}
        for direction, template in cfg.directions.items():
            folder = render_folder(template, day)
            try:
                # Our own completion marker is never a file of the provider's (#12).
                listing[direction] = fold_listing(
                    await list_folder(sftp, folder, direction, recursive=cfg.recursive), cfg
                )
            except (OSError, asyncssh.Error) as exc:
                listing[direction] = None
                errors[direction] = f"cannot list {folder}: {type(exc).__name__}: {sanitize(exc)}"
        look.report = await _look_report(sftp, provider, day)
    look.directions = look_directions(
        listing, provider, day, now=now, expected=look.report.counts, errors=errors
    )
    return look


async def _look_report(
    sftp: asyncssh.SFTPClient, provider: ProviderConfig, day: dt.date
) -> ReportLook:
    """Read and parse the day's report the way the report step does."""
    import asyncssh

    from include.cc_intake.airflow.sftp import read_remote_report

    report = ReportLook(render_folder(provider.daily_report.path, day))
    try:
        content = await read_remote_report(sftp, provider, day)
    except (OSError, asyncssh.Error) as exc:
        report.error = f"cannot read {report.path}: {type(exc).__name__}: {sanitize(exc)}"
        return report
    return _parsed_report(report, content, provider, day)


def _parsed_report(
    report: ReportLook, content: bytes | None, provider: ProviderConfig, day: dt.date
) -> ReportLook:
    """The report look once its bytes are read (None: not on the server)."""
    from include.cc_intake.airflow.sftp import parse_report_bytes

    if content is None:
        return report
    report.found = True
    try:
        parsed = parse_report_bytes(content, provider, day)
    except ReportError as exc:
        report.error = sanitize(exc)
        return report
    report.kind = parsed.kind
    report.counts = dict(parsed.counts)
    report.warnings = [sanitize(w) for w in parsed.warnings]
    return report


def look_ftps(provider: ProviderConfig, day: dt.date, *, now: float) -> SftpLook:
    """The FTPS twin of :func:`look_sftp`: certificate checked like the DAG does, the day's
    folders listed, the report read; on an untrusted certificate, its SHA-256 to pin."""
    from include.cc_intake import ftps
    from include.cc_intake.airflow.remote import ftps_endpoint

    cfg = provider.recordings
    look = SftpLook(cfg.conn_id, protocol="ftps")
    try:
        endpoint = ftps_endpoint(cfg.conn_id, connect_timeout=CONNECT_TIMEOUT_S)
    except ConfigError as exc:
        look.error = str(exc)
        return look
    look.address = f"{endpoint.login}@{endpoint.host}:{endpoint.port}"
    pin = ftps.normalise_fingerprint(endpoint.cert_sha256 or "")
    try:
        session = ftps.connect(endpoint, where=f"{provider.id} {day}")
    except CertificateError:
        hk = HostKeyLook(extra_key="cert_sha256", pinned=pin or None)
        try:
            hk.fingerprint, subject = ftps.peek_certificate(endpoint)
            hk.public_line, hk.algorithm = hk.fingerprint, subject or "X.509"
        except Exception as exc:  # the handshake itself failed: say so, pin nothing
            hk.error = f"{type(exc).__name__}: {sanitize(exc)}"
        look.host_key = hk
        look.error = "unknown certificate"
        return look
    except RemoteError as exc:
        look.error, look.unreachable = sanitize(exc), True
        return look
    look.connected = True
    trust = f"pinned ({pin})" if pin else f"CA file {endpoint.ca_file or '(system authorities)'}"
    look.host_key_note = f"certificate SHA-256 {session.fingerprint}, verified by {trust}"
    try:
        listing: Listing = {}
        errors: dict[str, str] = {}
        for direction, template in cfg.directions.items():
            folder = render_folder(template, day)
            try:
                listing[direction] = session.list_folder(folder, direction, recursive=cfg.recursive)
            except (OSError, EOFError, RemoteError, ftplib.Error) as exc:
                listing[direction] = None
                errors[direction] = f"cannot list {folder}: {type(exc).__name__}: {sanitize(exc)}"
        listing = session.settle_listing(listing, cfg, day, now=now)
        report = ReportLook(render_folder(provider.daily_report.path, day))
        try:
            content = session.read_file(report.path)
        except (OSError, EOFError, RemoteError, ftplib.Error) as exc:
            report.error = f"cannot read {report.path}: {type(exc).__name__}: {sanitize(exc)}"
        else:
            report = _parsed_report(report, content, provider, day)
        look.report = report
    finally:
        session.close()
    look.directions = look_directions(
        listing, provider, day, now=now, expected=look.report.counts, errors=errors
    )
    return look


def look_sftp(provider: ProviderConfig, day: dt.date, *, now: float) -> SftpLook:
    """Connect like the DAG does, list the day's folders, read the report; copy nothing."""
    try:
        conn = _get_connection(provider.recordings.conn_id)
    except ConfigError as exc:
        return SftpLook(provider.recordings.conn_id, error=str(exc))
    return eventloop.run(_look_remote(provider, day, conn, now))


# --------------------------------------------------------------------------- CRM


def _describe_auth(session: Any) -> str:
    """Which credentials the session carries, by name only."""
    names = [str(n) for n in session.headers if _AUTH_HEADER.search(str(n))]
    parts = [f"{n} header" for n in names]
    if session.auth is not None:
        parts.append("basic auth (login/password)")
    return ", ".join(parts) or "none"


def look_crm(provider: ProviderConfig, day: dt.date) -> CrmLook | None:
    """Ask the CRM for the day's first page only, the way the export task asks (no body shown)."""
    digital = provider.digital
    if digital is None:
        return None
    from airflow.providers.http.hooks.http import HttpHook

    from include.cc_intake import crm
    from include.cc_intake.errors import ExportError

    look = CrmLook(digital.http_conn_id)
    try:
        _get_connection(digital.http_conn_id)
    except ConfigError as exc:
        look.error = str(exc)
        return look
    hook = HttpHook(method="GET", http_conn_id=digital.http_conn_id)
    # Never HttpHook.run: its check_response logs whole bodies (conversations are personal data).
    try:
        session = hook.get_conn()
    except Exception as exc:  # a malformed connection: say so, never a bare traceback
        look.error = f"connection {digital.http_conn_id!r} unusable: {sanitize(exc)}"
        return look
    look.url = crm.join_url(hook.base_url, digital.endpoint)
    look.auth = _describe_auth(session)

    cfg = digital.model_copy(update={"max_retries": min(digital.max_retries, CRM_MAX_RETRIES)})
    try:
        first = crm.first_page(
            session,
            hook.base_url,
            cfg,
            provider=provider.id,
            day=day,
            tz=provider.tz,
            sleep=lambda seconds: time.sleep(min(seconds, CRM_MAX_WAIT_S)),
        )
    except (ExportError, ConfigError) as exc:
        look.error = sanitize(exc)
        return look
    look.records = first.records
    look.stated_total = first.stated_total
    return look


# --------------------------------------------------------------------------- the run


def run_check(
    provider_id: str, day: dt.date | None = None, *, now: dt.datetime | None = None
) -> CheckResult:
    """Look at everything the provider's day depends on, copying and writing nothing.

    :param provider_id: the YAML's id (its file stem).
    :param day: the processed day; default J-1 in the provider's time zone.
    :param now: the clock (J-1 and file ages are computed from it).
    :raises UsageError: unknown provider or invalid YAML.
    """
    provider, source, sandbox = find_provider(provider_id)
    clock = now or dt.datetime.now(dt.UTC)
    target = day or processed_day(tz=provider.tz, logical_date=clock)
    look_remote = look_ftps if provider.recordings.protocol == "ftps" else look_sftp
    sftp = look_remote(provider, target, now=clock.timestamp())
    crm_look = look_crm(provider, target)
    result = CheckResult(
        provider, source, target, day is not None, sandbox, sftp, crm_look, checked_at=clock
    )
    assess(result)
    return result


# --------------------------------------------------------------------------- command line


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Keep stdout for the report; warnings (e.g. a disabled host key check) go to stderr.

    Airflow prints every INFO line on stdout twice over: a stdlib handler on the root logger
    (asyncssh, our modules) and structlog loggers (hooks) that write to ``sys.stdout``.
    """
    import airflow  # noqa: F401  -- importing it installs that handler: do it before the swap

    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        root.handlers = saved


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m include.cc_intake.airflow.check",
        epilog="Usually run as: make check PROVIDER=<id> [DATE=YYYY-MM-DD]",
        description="Onboarding dry run: YAML, SFTP (host key), the day's files and report, "
        "the CRM's first page, the copy time. Copies nothing, writes nothing. "
        "Exit 0 ready, 1 problems found, 2 usage or configuration error.",
    )
    cli.add_argument("provider", help="provider id (include/providers/<id>.yaml)")
    cli.add_argument("--date", help="processed day YYYY-MM-DD (default: J-1 in its time zone)")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check and print the report; return the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage
        return EXIT_READY if exc.code == 0 else EXIT_USAGE
    try:
        day = parse_day(args.date, what="--date") if args.date else None
        with _logs_to_stderr():
            result = run_check(args.provider, day)
    except (UsageError, ConfigError) as exc:
        print(f"make check: {exc}", file=sys.stderr)
        print(
            f"Verdict : erreur d'usage ou de configuration / usage or config error — exit "
            f"{EXIT_USAGE}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    sys.stdout.write(render(result))
    sys.stdout.flush()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
