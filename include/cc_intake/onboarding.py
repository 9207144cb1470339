"""The onboarding dry run (`make check`): what a provider's day would bring, and the verdict.

Pure: no Airflow, no network. The Airflow adapter (:mod:`include.cc_intake.airflow.check`)
opens the connections and gathers what the servers show into the looks below; this module
decides (:func:`look_directions`, :func:`assess`) and writes the operator's report
(:func:`render`). The rules are the pipeline's own, imported, never re-typed:

- what the copy would take or reject: :func:`recordings.classify_day`;
- which files are still being written, and which directions the day needs at all (one the
  report says had no call needs not even its folder): :func:`recordings.assess_readiness`;
- whether the counts would reconcile: the reconciliation's rule
  (:class:`quality.DirectionResult`) with the report's tolerance
  (``daily_report.allowed_gap``).

Exit codes: 0 ready, 1 problems found, 2 usage or configuration error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from include.cc_intake.config import ProviderConfig
from include.cc_intake.manifest import REASON_FR
from include.cc_intake.naming import escape_unsafe, folder_is_dated, render_folder
from include.cc_intake.reconcile import DirectionResult
from include.cc_intake.recordings import DirectionState, Listing, assess_readiness, classify_day
from include.cc_intake.redact import mask_phone

EXIT_READY = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

ASSUMED_LINK_BYTES_PER_S = 1_000_000
"""8 Mbit/s: the yardstick used when the provider's YAML sets no max_bandwidth."""
MAX_NAMES_SHOWN = 10

# The check speaks French and English; the French label is the manifest's (one home).
REASON_EN = {
    "pattern_mismatch": "name does not match filename_pattern",
    "other_date": "another day",
    "empty": "empty file",
    "not_regular_file": "not a regular file",
    "unsafe_name": "unsafe name",
    "name_too_long": "name too long for the local disk",
    "duplicate_name": "duplicate name (case, Unicode)",
}


# --------------------------------------------------------------------------- what was seen


@dataclass
class DirectionLook:
    """One direction's folder for the day, as the copy step would see it.

    ``readiness`` is the wait step's view of it (one listing: ``moving`` counts the files
    younger than ``min_file_age``), against the report's count when there is one.
    """

    direction: str
    folder: str
    found: bool
    readiness: DirectionState
    valid_bytes: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    out_of_scope: int = 0
    error: str | None = None

    @property
    def valid(self) -> int:
        return self.readiness.files

    @property
    def young(self) -> int:
        return self.readiness.moving


@dataclass
class HostKeyLook:
    """The server's host key when the connection did not trust it."""

    fingerprint: str | None = None  # SHA256:…
    algorithm: str | None = None
    public_line: str | None = None  # "ssh-ed25519 AAAA…", what the host_key extra wants
    pinned: str | None = None  # fingerprint of the connection's host_key extra, if any
    known_hosts: str | None = None  # the connection's known_hosts file, if any
    error: str | None = None  # the key could not even be read
    # FTPS: the certificate's SHA-256 (lower-case hex) goes in the ``cert_sha256`` extra.
    extra_key: str = "host_key"

    @property
    def extra(self) -> str:
        return json.dumps({self.extra_key: self.public_line})


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
    protocol: str = "sftp"  # or "ftps": the same look, a certificate instead of a host key

    @property
    def label(self) -> str:
        return self.protocol.upper()

    @property
    def key_name(self) -> str:
        return "certificate" if self.protocol == "ftps" else "host key"


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


def look_directions(
    listing: Listing,
    provider: ProviderConfig,
    day: dt.date,
    *,
    now: float,
    expected: Mapping[str, int] | None,
    errors: Mapping[str, str] | None = None,
) -> list[DirectionLook]:
    """Each direction's folder as the copy and the wait would see it, from one listing.

    :param listing: per direction, the folder's entries (None: missing or unreadable).
    :param now: our clock, in seconds since the epoch (file ages).
    :param expected: the report's counts, or None without a usable report.
    :param errors: per direction, why its folder could not be listed.
    """
    cfg = provider.recordings
    readiness = assess_readiness(
        listing,
        listing,
        cfg=cfg,
        day=day,
        now=now,
        expected=expected,
        allowed_gap=provider.daily_report.allowed_gap,
    )
    looks = []
    for state in readiness.directions:
        entries = listing.get(state.direction)
        look = DirectionLook(
            state.direction,
            render_folder(cfg.directions[state.direction], day),  # type: ignore[index]
            entries is not None,
            state,
            error=(errors or {}).get(state.direction),
        )
        for verdict in classify_day({state.direction: entries}, cfg, day):
            if verdict.accepted:
                look.valid_bytes += verdict.entry.size
            else:
                look.rejected.append((verdict.entry.rel_name, verdict.reason or "?"))
        # An undated folder holds every day: say how much of it is not this day's.
        if not folder_is_dated(cfg.directions[state.direction]):  # type: ignore[index]
            look.out_of_scope = len(entries or []) - look.valid - len(look.rejected)
        looks.append(look)
    return looks


# --------------------------------------------------------------------------- verdict


def assess(result: CheckResult) -> None:
    """Fill ``problems`` (exit 1) and ``warnings`` (printed, exit unchanged) from what was seen."""
    problems, warnings = result.problems, result.warnings
    sftp = result.sftp
    if sftp.host_key is not None and not sftp.connected:
        problems.append(
            f"{sftp.label} {sftp.conn_id}: unknown {sftp.key_name}: verify the server's "
            "fingerprint out of band, then set the connection extra printed above"
        )
    elif sftp.error:
        what = "unreachable: " if sftp.unreachable else ""
        problems.append(f"{sftp.label} {sftp.conn_id}: {what}{sftp.error}")
    if sftp.check_disabled:
        text = (
            f"SFTP {sftp.conn_id}: host key check disabled (no_host_key_check): sandboxes only; "
            "set the host_key extra printed above instead"
        )
        (warnings if result.sandbox else problems).append(text)

    report = sftp.report
    if sftp.connected and report is not None:
        if not report.found and report.error is None:
            problems.append(f"report {report.path} not found on the server")
        elif report.error:
            problems.append(f"report {report.path} unusable: {report.error}")
        warnings.extend(f"report {report.path}: {w}" for w in report.warnings)

    for d in sftp.directions:
        expected = d.readiness.expected
        if d.error:
            problems.append(f"{d.direction}: {d.error}")
        elif not d.found and d.readiness.needed:
            says = "" if expected is None else f" (the report says {expected})"
            problems.append(f"{d.direction}: folder {d.folder} missing{says}")
        if d.young:
            warnings.append(
                f"{d.direction}: {d.young} file(s) younger than min_file_age "
                f"({result.provider.recordings.min_file_age}): still being written?"
            )
        if expected is not None and d.found:
            allowed = d.readiness.allowed_gap
            if not DirectionResult(d.direction, expected, d.valid, allowed).ok:
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


def reason_label(reason: str) -> str:
    """``nom dangereux / unsafe name``: the manifest's French label and the English gloss."""
    french, english = REASON_FR.get(reason), REASON_EN.get(reason)
    return " / ".join(text for text in (french, english) if text) or reason


def printable(name: str) -> str:
    """A remote name fit for a terminal: control and bidi-override characters escaped, phone
    numbers masked."""
    return mask_phone(escape_unsafe(name))


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
    add(f"  YAML   {_display_path(result.source)}: valide / valid (DAG {p.dag_id})")
    add(f"  Jour / day  {result.day} ({when})")
    add("  Lecture seule : rien n'est copié ni écrit / read-only: nothing is copied or written")
    add("")

    sftp = result.sftp
    add(f"{sftp.label}  {sftp.conn_id}" + (f" → {sftp.address}" if sftp.address else ""))
    if sftp.connected:
        add(f"  [OK] connecté / connected, {sftp.host_key_note}")
    elif sftp.host_key is None:
        what = "injoignable / unreachable" if sftp.unreachable else "connexion / connection"
        add(f"  [KO] {what}: {sftp.error}")
    hk = sftp.host_key
    if hk is not None:
        if not sftp.connected:
            if sftp.protocol == "ftps":
                add("  [KO] certificat inconnu / unknown certificate: the server's is not trusted")
            else:
                add(
                    "  [KO] clé d'hôte inconnue / unknown host key: the server's key is not trusted"
                )
            if hk.pinned:
                add(
                    f"       the connection's {hk.extra_key} is {hk.pinned}: it does NOT match "
                    "the server (rotated by the provider, or someone in between?)"
                )
            elif hk.known_hosts:
                add(f"       no key for this server in the known_hosts file {hk.known_hosts}")
            else:
                add(
                    "       the connection has no cert_sha256 extra, and its ca_file (or the "
                    "system's authorities) does not vouch for it"
                    if sftp.protocol == "ftps"
                    else "       the connection has no host_key extra and no known_hosts entry"
                )
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
            add(
                "          (keep its other keys):"
                if sftp.protocol == "ftps"
                else "          (keep its other keys, drop no_host_key_check):"
            )
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
                add(f"           {printable(name)} — {reason} ({reason_label(reason)})")
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
        add(f"Rapport / report  non vérifié / not checked (no {sftp.label} session)")

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
        add(f"Verdict : PRÊT / READY — exit 0. Next: unpause {p.dag_id} in the Airflow UI.")
    return "\n".join(out) + "\n"
