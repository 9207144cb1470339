"""Onboarding check: what a provider's day would bring, copying and writing nothing.

    make check PROVIDER=<id> [DATE=YYYY-MM-DD]
    python -m include.cc_intake.airflow.check <id> [--date YYYY-MM-DD]

It validates the provider's YAML, opens an SFTP session the way the DAG does (host key verified
by the sftp provider's hook), lists each direction's folder for the day, reads and parses the
end-of-day report, asks the CRM for its first page only, and estimates the copy time. On an
unknown host key it reads the server's key (key exchange only, nothing listed) and prints its
fingerprint and the exact connection extra to set once the operator has verified it out of band.

Connections come from Airflow: ``AIRFLOW_CONN_*`` variables work without a metadata DB.
Exit codes: 0 ready, 1 problems found, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.days import parse_day, processed_day
from include.cc_intake.errors import ConfigError, HostKeyError, RemoteError, ReportError
from include.cc_intake.naming import escape_unsafe, render_folder
from include.cc_intake.redact import mask_phone, sanitize

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from include.cc_intake.recordings import Listing

EXIT_READY = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

CONNECT_TIMEOUT_S = 30.0
"""An unreachable server answers nothing: give up after this instead of the OS's minutes."""
ASSUMED_LINK_BYTES_PER_S = 1_000_000
"""8 Mbit/s: the yardstick used when the provider's YAML sets no max_bandwidth."""
CRM_MAX_RETRIES = 2
CRM_MAX_WAIT_S = 10.0
"""A check should answer in seconds: Retry-After and back-off waits are capped to this."""
MAX_NAMES_SHOWN = 10

_AUTH_HEADER = re.compile(r"auth|token|key|secret|pass|cookie|session", re.IGNORECASE)

REASONS = {
    "pattern_mismatch": "nom hors format / name does not match filename_pattern",
    "other_date": "autre jour / another day",
    "empty": "fichier vide / empty file",
    "not_regular_file": "pas un fichier (dossier, lien) / not a regular file",
    "unsafe_name": "nom dangereux / unsafe name",
    "name_too_long": "nom trop long pour le disque / name too long for the local disk",
    "duplicate_name": "nom en double (casse, Unicode) / duplicate name (case, Unicode)",
}


class UsageError(Exception):
    """The command cannot run as asked (bad arguments, unknown provider, invalid YAML)."""


# --------------------------------------------------------------------------- what was seen


@dataclass
class DirectionLook:
    """One direction's folder for the day, as the copy step would see it."""

    direction: str
    folder: str
    found: bool
    valid: int = 0
    valid_bytes: int = 0
    young: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    out_of_scope: int = 0
    error: str | None = None


@dataclass
class HostKeyLook:
    """The server's host key when the connection did not trust it."""

    fingerprint: str | None = None  # SHA256:…
    algorithm: str | None = None
    public_line: str | None = None  # "ssh-ed25519 AAAA…", what the host_key extra wants
    pinned: str | None = None  # fingerprint of the connection's host_key extra, if any
    known_hosts: str | None = None  # the connection's known_hosts file, if any
    error: str | None = None  # the key could not even be read

    @property
    def extra(self) -> str:
        return json.dumps({"host_key": self.public_line})


@dataclass
class ReportLook:
    path: str
    found: bool = False
    kind: str = ""
    counts: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class SftpLook:
    conn_id: str
    address: str = ""
    connected: bool = False
    error: str | None = None
    unreachable: bool = False  # else the error is the connection's own (undefined, inconsistent)
    host_key: HostKeyLook | None = None
    host_key_note: str = ""  # how the key was verified
    check_disabled: bool = False
    directions: list[DirectionLook] = field(default_factory=list)
    report: ReportLook | None = None


@dataclass
class CrmLook:
    conn_id: str
    url: str = ""
    auth: str = ""
    records: int | None = None
    stated_total: int | None = None
    error: str | None = None


@dataclass
class CheckResult:
    """Everything the check saw, and what it makes of it."""

    provider: ProviderConfig
    source: Path
    day: dt.date
    day_given: bool
    sandbox: bool
    sftp: SftpLook
    crm: CrmLook | None
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_PROBLEMS if self.problems else EXIT_READY

    @property
    def valid_files(self) -> int:
        return sum(d.valid for d in self.sftp.directions)

    @property
    def valid_bytes(self) -> int:
        return sum(d.valid_bytes for d in self.sftp.directions)


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


def _printable(name: str) -> str:
    """A remote name fit for a terminal: control and bidi-override characters escaped, phone
    numbers masked."""
    return mask_phone(escape_unsafe(name))


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

    from include.cc_intake.airflow.tasks import open_sftp, parse_report_bytes, read_remote_report
    from include.cc_intake.naming import folder_is_dated
    from include.cc_intake.recordings import classify_day
    from include.cc_intake.transfer import list_folder

    cfg = provider.recordings
    look = SftpLook(cfg.sftp_conn_id)
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
            look.error = f"connection {cfg.sftp_conn_id!r} is inconsistent: {exc}"
            return look
        look.connected = True
        if look.check_disabled:
            look.host_key = await _server_key(conn)

        # The same reads as recordings.list_day, one folder at a time to name a failing one.
        listing: Listing = {}
        for direction, template in cfg.directions.items():
            folder = render_folder(template, day)
            try:
                listing[direction] = await list_folder(
                    sftp, folder, direction, recursive=cfg.recursive
                )
                error = None
            except (OSError, asyncssh.Error) as exc:
                listing[direction] = None
                error = f"cannot list {folder}: {type(exc).__name__}: {sanitize(exc)}"
            look.directions.append(
                DirectionLook(direction, folder, listing[direction] is not None, error=error)
            )

        min_age = cfg.min_file_age.total_seconds()
        for state in look.directions:
            entries = listing[state.direction]
            for verdict in classify_day({state.direction: entries}, cfg, day):
                entry = verdict.entry
                if verdict.accepted:
                    state.valid += 1
                    state.valid_bytes += entry.size
                    state.young += int(now - entry.mtime < min_age)
                else:
                    state.rejected.append((entry.rel_name, verdict.reason or "?"))
            # An undated folder holds every day: say how much of it is not this day's.
            in_scope = state.valid + len(state.rejected)
            dated = folder_is_dated(cfg.directions[state.direction])  # type: ignore[index]
            state.out_of_scope = 0 if dated else len(entries or []) - in_scope

        report = ReportLook(render_folder(provider.daily_report.path, day))
        look.report = report
        try:
            content = await read_remote_report(sftp, provider, day)
        except (OSError, asyncssh.Error) as exc:
            report.error = f"cannot read {report.path}: {type(exc).__name__}: {sanitize(exc)}"
            return look
        if content is None:
            return look
        report.found = True
        try:
            parsed = parse_report_bytes(content, provider, day)
        except ReportError as exc:
            report.error = sanitize(exc)
            return look
        report.kind = parsed.kind
        report.counts = dict(parsed.counts)
        report.warnings = [sanitize(w) for w in parsed.warnings]
    return look


def look_sftp(provider: ProviderConfig, day: dt.date, *, now: float) -> SftpLook:
    """Connect like the DAG does, list the day's folders, read the report; copy nothing."""
    try:
        conn = _get_connection(provider.recordings.sftp_conn_id)
    except ConfigError as exc:
        return SftpLook(provider.recordings.sftp_conn_id, error=str(exc))
    return asyncio.run(_look_remote(provider, day, conn, now))


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


# --------------------------------------------------------------------------- verdict


def assess(result: CheckResult) -> None:
    """Fill ``problems`` (exit 1) and ``warnings`` (printed, exit unchanged) from what was seen."""
    problems, warnings = result.problems, result.warnings
    sftp = result.sftp
    if sftp.host_key is not None and not sftp.connected:
        problems.append(
            f"SFTP {sftp.conn_id}: unknown host key: verify the server's fingerprint out of band, "
            "then set the connection extra printed above"
        )
    elif sftp.error:
        what = "unreachable: " if sftp.unreachable else ""
        problems.append(f"SFTP {sftp.conn_id}: {what}{sftp.error}")
    if sftp.check_disabled:
        text = (
            f"SFTP {sftp.conn_id}: host key check disabled (no_host_key_check): sandboxes only; "
            "set the host_key extra printed above instead"
        )
        (warnings if result.sandbox else problems).append(text)

    report = sftp.report
    counts = report.counts if report is not None else None
    if sftp.connected and report is not None:
        if not report.found and report.error is None:
            problems.append(f"report {report.path} not found on the server")
        elif report.error:
            problems.append(f"report {report.path} unusable: {report.error}")
        warnings.extend(f"report {report.path}: {w}" for w in report.warnings)

    for d in sftp.directions:
        if d.error:
            problems.append(f"{d.direction}: {d.error}")
        elif not d.found and (counts is None or counts.get(d.direction, 0) != 0):
            # A direction the report says had no call needs no folder (no outbound on Sunday).
            says = "" if counts is None else f" (the report says {counts.get(d.direction)})"
            problems.append(f"{d.direction}: folder {d.folder} missing{says}")
        if d.young:
            warnings.append(
                f"{d.direction}: {d.young} file(s) younger than min_file_age "
                f"({result.provider.recordings.min_file_age}): still being written?"
            )
        if counts is not None and d.found:
            expected = counts.get(d.direction, 0)
            allowed = result.provider.daily_report.allowed_gap(expected)
            if abs(d.valid - expected) > allowed:
                warnings.append(
                    f"{d.direction}: {d.valid} valid file(s) but the report says {expected} "
                    f"(tolerance {allowed}): reconciliation would fail if the run were now"
                )
        if d.rejected:
            warnings.append(f"{d.direction}: {len(d.rejected)} entry(ies) would be rejected")

    if result.crm is not None and result.crm.error:
        problems.append(f"CRM {result.crm.conn_id}: {result.crm.error}")

    today = result.checked_at.astimezone(result.provider.tz).date()
    if result.day >= today:
        warnings.append(
            f"{result.day} is not over yet in {result.provider.timezone}: files may still arrive"
        )


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
    sftp = look_sftp(provider, target, now=clock.timestamp())
    crm_look = look_crm(provider, target)
    result = CheckResult(
        provider, source, target, day is not None, sandbox, sftp, crm_look, checked_at=clock
    )
    assess(result)
    return result


# --------------------------------------------------------------------------- rendering


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def mbit(bytes_per_s: int) -> str:
    return f"{bytes_per_s * 8 / 1_000_000:g} Mbit/s"


def copy_estimate(total_bytes: int, max_bandwidth: int | None) -> str:
    """Time to copy ``total_bytes`` at the configured cap, or at an assumed 8 Mbit/s."""
    if max_bandwidth:
        took = human_duration(total_bytes / max_bandwidth)
        return f"≈ {took} at {mbit(max_bandwidth)} (recordings.max_bandwidth)"
    took = human_duration(total_bytes / ASSUMED_LINK_BYTES_PER_S)
    return f"link speed unknown: at {mbit(ASSUMED_LINK_BYTES_PER_S)} it would take {took}"


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def render(result: CheckResult) -> str:
    """The operator's report (French / English), as printed on stdout."""
    p = result.provider
    out: list[str] = []
    add = out.append
    when = "given with --date" if result.day_given else f"J-1 in {p.timezone}"
    add(f"Contrôle d'intégration / onboarding check: {p.id} — {p.name}")
    add(f"  YAML   {_display_path(result.source)}: valide / valid (DAG ingest_{p.id})")
    add(f"  Jour / day  {result.day} ({when})")
    add("  Lecture seule : rien n'est copié ni écrit / read-only: nothing is copied or written")
    add("")

    sftp = result.sftp
    add(f"SFTP  {sftp.conn_id}" + (f" → {sftp.address}" if sftp.address else ""))
    if sftp.connected:
        add(f"  [OK] connecté / connected, {sftp.host_key_note}")
    elif sftp.host_key is None:
        what = "injoignable / unreachable" if sftp.unreachable else "connexion / connection"
        add(f"  [KO] {what}: {sftp.error}")
    hk = sftp.host_key
    if hk is not None:
        if not sftp.connected:
            add("  [KO] clé d'hôte inconnue / unknown host key: the server's key is not trusted")
            if hk.pinned:
                add(
                    f"       the connection's host_key is {hk.pinned}: it does NOT match the "
                    "server (key rotated by the provider, or someone in between?)"
                )
            elif hk.known_hosts:
                add(f"       no key for this server in the known_hosts file {hk.known_hosts}")
            else:
                add("       the connection has no host_key extra and no known_hosts entry")
        if hk.error:
            add(f"       server key unreadable: {hk.error}")
        else:
            add(
                f"       empreinte du serveur / server key fingerprint: {hk.fingerprint} "
                f"({hk.algorithm})"
            )
            add("       1. Vérifiez-la avec le prestataire par un autre canal (téléphone, ticket)")
            add("          / verify it with the provider out of band FIRST;")
            target = f"connection {sftp.conn_id!r}"
            add(f"       2. puis posez cet extra / then set this extra on {target}")
            add("          (keep its other keys, drop no_host_key_check):")
            add(f"            {hk.extra}")
        if not sftp.connected:
            add("       Rien n'a été listé / nothing was listed.")

    for d in sftp.directions:
        add(f"  {d.direction}  {d.folder}")
        if d.error:
            add(f"    [KO] {d.error}")
            continue
        if not d.found:
            add(f"    [KO] dossier absent / folder missing: {d.folder}")
            continue
        add(
            f"    [OK] {d.valid} fichier(s) valide(s) / valid file(s), "
            f"{human_bytes(d.valid_bytes)} ({d.valid_bytes} bytes)"
        )
        if d.young:
            add(f"    [!]  {d.young} plus récent(s) que min_file_age / younger than min_file_age")
        if d.rejected:
            reasons = Counter(reason for _, reason in d.rejected)
            summary = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
            add(f"    [!]  {len(d.rejected)} rejeté(s) / rejected ({summary}):")
            for name, reason in d.rejected[:MAX_NAMES_SHOWN]:
                add(f"           {_printable(name)} — {reason} ({REASONS.get(reason, reason)})")
            if len(d.rejected) > MAX_NAMES_SHOWN:
                add(f"           … (+{len(d.rejected) - MAX_NAMES_SHOWN} more)")
        if d.out_of_scope:
            add(
                f"    [i]  {d.out_of_scope} entrée(s) d'autres jours ignorée(s) / "
                "other days' entries ignored"
            )

    report = sftp.report
    if report is not None:
        add(f"Rapport / report  {report.path}")
        if report.error:
            add(f"  [KO] illisible / unusable: {report.error}")
        elif not report.found:
            add(f"  [KO] absent / report {report.path} not found on the server")
        else:
            counts = report.counts or {}
            said = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            add(f"  [OK] trouvé / found ({report.kind}): {said}")
            for d in sftp.directions:
                expected = counts.get(d.direction, 0)
                mark = "[OK]" if d.valid == expected else "[!] "
                where = "" if d.found else " (folder absent)"
                add(
                    f"  {mark} {d.direction}: {d.valid} valid on the server / "
                    f"{expected} reported{where}"
                )
    elif not sftp.connected:
        add("Rapport / report  non vérifié / not checked (no SFTP session)")

    crm_look = result.crm
    if crm_look is None:
        add("CRM  pas d'export CRM configuré / no digital section: nothing to check")
    else:
        url = f" → GET {crm_look.url}" if crm_look.url else ""
        auth = f" (auth: {crm_look.auth})" if crm_look.auth else ""
        add(f"CRM  {crm_look.conn_id}{url}{auth}")
        if crm_look.error:
            add(f"  [KO] {crm_look.error}")
        else:
            stated = (
                f"; the CRM states {crm_look.stated_total} for the day"
                if crm_look.stated_total is not None
                else "; no stated total (the run pages through the rest)"
            )
            add(f"  [OK] répond / answers: {crm_look.records} record(s) on the first page{stated}")
            if crm_look.auth == "none":
                add("  [!]  aucun identifiant sur la connexion / no credentials on the connection")

    if sftp.connected:
        size = f"{result.valid_files} file(s), {human_bytes(result.valid_bytes)}"
        add(f"Copie estimée / estimated copy  {size}")
        add(f"  [i]  {copy_estimate(result.valid_bytes, p.recordings.max_bandwidth)}")

    add("")
    if result.warnings:
        add(f"Attention / warnings ({len(result.warnings)}):")
        out.extend(f"  - {w}" for w in result.warnings)
    if result.problems:
        add(f"Verdict : PROBLÈMES / PROBLEMS FOUND ({len(result.problems)}) — exit 1")
        out.extend(f"  {i}. {text}" for i, text in enumerate(result.problems, 1))
    else:
        add(f"Verdict : PRÊT / READY — exit 0. Next: unpause ingest_{p.id} in the Airflow UI.")
    return "\n".join(out) + "\n"


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
