"""The onboarding check's verdict and report, without Airflow or a server: the looks are built
by hand, as the Airflow adapter fills them from the real servers (tests/integration/test_check)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from include.cc_intake.config import ProviderConfig
from include.cc_intake.naming import RemoteEntry
from include.cc_intake.onboarding import (
    EXIT_PROBLEMS,
    EXIT_READY,
    CheckResult,
    CrmLook,
    HostKeyLook,
    ReportLook,
    SftpLook,
    assess,
    copy_estimate,
    human_bytes,
    human_duration,
    look_directions,
    reason_label,
    render,
)
from include.cc_intake.recordings import Listing
from tests.helpers import provider_dict, with_recordings

DAY = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
OLD = NOW.timestamp() - 3600
PROVIDER = with_recordings(min_file_age="5m")


def entry(direction: str, name: str, *, size: int = 100, mtime: float = OLD) -> RemoteEntry:
    return RemoteEntry(direction, name, f"/x/{name}", size, int(mtime), "file")


def wav(direction: str, n: int, *, size: int = 100) -> list[RemoteEntry]:
    return [entry(direction, f"20261125_09{i:04d}_AG1_C{i}.wav", size=size) for i in range(n)]


def result(
    listing: Listing,
    *,
    counts: dict[str, int] | None,
    provider: ProviderConfig = PROVIDER,
    errors: dict[str, str] | None = None,
    sandbox: bool = False,
    crm: CrmLook | None = None,
) -> CheckResult:
    report = ReportLook("/exports/reports/calls_20261125.csv")
    if counts is not None:
        report.found, report.kind, report.counts = True, "summary", counts
    sftp = SftpLook("sftp_acme", address="intake@sftp.example:22", connected=True)
    sftp.host_key_note = "host key verified (SHA256:abc)"
    sftp.report = report
    sftp.directions = look_directions(
        listing, provider, DAY, now=NOW.timestamp(), expected=counts, errors=errors
    )
    checked = CheckResult(
        provider, Path("/nowhere/acme_abidjan.yaml"), DAY, True, sandbox, sftp, crm, NOW
    )
    assess(checked)
    return checked


def test_a_complete_day_is_ready() -> None:
    listing: Listing = {"ENTRANTS": wav("ENTRANTS", 3), "SORTANTS": wav("SORTANTS", 2)}
    checked = result(listing, counts={"ENTRANTS": 3, "SORTANTS": 2})
    assert checked.exit_code == EXIT_READY
    assert checked.problems == checked.warnings == []
    assert (checked.valid_files, checked.valid_bytes) == (5, 500)
    out = render(checked)
    assert "ENTRANTS  /exports/inbound/20261125\n    [OK] 3 fichier(s) valide(s)" in out
    assert "[OK] ENTRANTS: 3 valid on the server / 3 reported" in out
    assert "PRÊT / READY — exit 0. Next: unpause ingest_acme_abidjan in the Airflow UI." in out
    assert "(DAG ingest_acme_abidjan)" in out


def test_rejected_names_are_labelled_escaped_and_masked() -> None:
    hostile = "20261125_093012_AG1_C1\x1b[2K.wav"
    phone = "20261125_093013_AG1_0712345678.xml"
    listing: Listing = {
        "ENTRANTS": [*wav("ENTRANTS", 1), entry("ENTRANTS", hostile), entry("ENTRANTS", phone)],
        "SORTANTS": wav("SORTANTS", 1),
    }
    checked = result(listing, counts={"ENTRANTS": 1, "SORTANTS": 1})
    out = render(checked)
    assert "\x1b" not in out
    assert "\\x1b[2K.wav — unsafe_name (nom dangereux / unsafe name)" in out
    assert "0712345678" not in out
    assert "— pattern_mismatch (nom non conforme au motif / name does not match" in out
    assert "ENTRANTS: 2 entry(ies) would be rejected" in checked.warnings
    assert checked.exit_code == EXIT_READY  # rejected entries are warnings


def test_young_files_are_the_waits_settling_files() -> None:
    young = entry("ENTRANTS", "20261125_093012_AG1_C9.wav", mtime=NOW.timestamp() - 60)
    listing: Listing = {"ENTRANTS": [*wav("ENTRANTS", 2), young], "SORTANTS": wav("SORTANTS", 1)}
    checked = result(listing, counts={"ENTRANTS": 3, "SORTANTS": 1})
    assert checked.sftp.directions[0].young == 1
    assert checked.sftp.directions[0].readiness.state == "moving"
    assert "ENTRANTS: 1 file(s) younger than min_file_age (0:05:00): still being written?" in (
        checked.warnings
    )
    assert "[!]  1 plus récent(s) que min_file_age" in render(checked)


def test_missing_folder_is_a_problem_unless_the_report_says_zero() -> None:
    listing: Listing = {"ENTRANTS": wav("ENTRANTS", 2), "SORTANTS": None}
    checked = result(listing, counts={"ENTRANTS": 2, "SORTANTS": 4})
    assert checked.problems == [
        "SORTANTS: folder /exports/outbound/20261125 missing (the report says 4)"
    ]
    assert "[KO] dossier absent / folder missing: /exports/outbound/20261125" in render(checked)

    sunday = result(listing, counts={"ENTRANTS": 2, "SORTANTS": 0})
    assert sunday.exit_code == EXIT_READY
    assert "SORTANTS: 0 valid on the server / 0 reported (folder absent)" in render(sunday)

    no_report = result(listing, counts=None)
    assert "SORTANTS: folder /exports/outbound/20261125 missing" in no_report.problems


@pytest.mark.parametrize(
    ("tolerance", "got", "warned"),
    [(0, 9, True), (0, 11, True), (1, 9, False), (1, 11, False), ("10%", 9, False), (1, 8, True)],
)
def test_count_warning_uses_the_reconciliation_tolerance(
    tolerance: object, got: int, warned: bool
) -> None:
    data = provider_dict()
    data["daily_report"]["tolerance"] = tolerance
    provider = ProviderConfig.model_validate(data)
    listing: Listing = {"ENTRANTS": wav("ENTRANTS", got), "SORTANTS": wav("SORTANTS", 1)}
    checked = result(listing, counts={"ENTRANTS": 10, "SORTANTS": 1}, provider=provider)
    allowed = provider.daily_report.allowed_gap(10)
    text = (
        f"ENTRANTS: {got} valid file(s) but the report says 10 (tolerance {allowed}): "
        "reconciliation would fail if the run were now"
    )
    assert (text in checked.warnings) == warned
    assert checked.exit_code == EXIT_READY


def test_undated_folder_counts_other_days_apart() -> None:
    data = provider_dict()
    data["recordings"]["directions"]["ENTRANTS"] = "/exports/inbound"
    provider = ProviderConfig.model_validate(data)
    other = entry("ENTRANTS", "20261124_093012_AG1_C7.wav")
    listing: Listing = {"ENTRANTS": [*wav("ENTRANTS", 2), other], "SORTANTS": wav("SORTANTS", 1)}
    checked = result(listing, counts={"ENTRANTS": 2, "SORTANTS": 1}, provider=provider)
    assert checked.sftp.directions[0].out_of_scope == 1
    assert "[i]  1 entrée(s) d'autres jours ignorée(s)" in render(checked)


def test_listing_error_and_report_error_are_problems() -> None:
    listing: Listing = {"ENTRANTS": None, "SORTANTS": wav("SORTANTS", 1)}
    errors = {"ENTRANTS": "cannot list /exports/inbound/20261125: SFTPError: denied"}
    checked = result(listing, counts=None, errors=errors)
    assert checked.sftp.report is not None
    checked.sftp.report.found = True
    checked.sftp.report.error = "no column 'direction'"
    checked.problems.clear()
    assess(checked)
    assert checked.problems == [
        "report /exports/reports/calls_20261125.csv unusable: no column 'direction'",
        "ENTRANTS: cannot list /exports/inbound/20261125: SFTPError: denied",
    ]
    assert checked.exit_code == EXIT_PROBLEMS


def test_unknown_host_key_says_what_to_do() -> None:
    sftp = SftpLook("sftp_acme", address="intake@sftp.example:22", error="unknown host key")
    sftp.host_key = HostKeyLook("SHA256:xyz", "ssh-ed25519", "ssh-ed25519 AAAA", pinned="SHA256:o")
    checked = CheckResult(PROVIDER, Path("p.yaml"), DAY, False, False, sftp, None, NOW)
    assess(checked)
    out = render(checked)
    assert checked.problems[0].startswith("SFTP sftp_acme: unknown host key: verify")
    assert "does NOT match" in out
    assert '{"host_key": "ssh-ed25519 AAAA"}' in out
    assert "Rien n'a été listé / nothing was listed." in out
    assert "not checked (no SFTP session)" in out


def test_disabled_host_key_check_is_a_problem_outside_the_sandbox() -> None:
    for sandbox, exit_code in ((True, EXIT_READY), (False, EXIT_PROBLEMS)):
        listing: Listing = {"ENTRANTS": wav("ENTRANTS", 1), "SORTANTS": wav("SORTANTS", 1)}
        checked = result(listing, counts=None, sandbox=sandbox)
        checked.sftp.report = None  # only the host key matters here
        checked.sftp.check_disabled = True
        checked.problems.clear()
        checked.warnings.clear()
        assess(checked)
        assert checked.exit_code == exit_code


def test_crm_look_is_rendered() -> None:
    listing: Listing = {"ENTRANTS": wav("ENTRANTS", 1), "SORTANTS": wav("SORTANTS", 1)}
    crm = CrmLook("crm_acme", url="https://crm/api", auth="none", records=5)
    out = render(result(listing, counts={"ENTRANTS": 1, "SORTANTS": 1}, crm=crm))
    assert "CRM  crm_acme → GET https://crm/api (auth: none)" in out
    assert "5 record(s) on the first page; no stated total" in out
    assert "aucun identifiant sur la connexion" in out
    failing = CrmLook("crm_acme", error="HTTP 401")
    checked = result(listing, counts={"ENTRANTS": 1, "SORTANTS": 1}, crm=failing)
    assert checked.problems == ["CRM crm_acme: HTTP 401"]


def test_a_day_not_over_is_a_warning() -> None:
    listing: Listing = {"ENTRANTS": wav("ENTRANTS", 1), "SORTANTS": wav("SORTANTS", 1)}
    checked = result(listing, counts={"ENTRANTS": 1, "SORTANTS": 1})
    checked.day = NOW.date()
    checked.warnings.clear()
    assess(checked)
    assert checked.warnings == [
        f"{NOW.date()} is not over yet in Africa/Abidjan: files may still arrive"
    ]


def test_sizes_durations_and_estimate() -> None:
    assert (human_bytes(999), human_bytes(16_496_696)) == ("999 B", "16.5 MB")
    assert [human_duration(s) for s in (0.5, 25, 125, 3725)] == [
        "< 1 s",
        "25 s",
        "2 min 05 s",
        "1 h 02 min",
    ]
    assert copy_estimate(25_000_000, None) == "link speed unknown: at 8 Mbit/s it would take 25 s"
    assert copy_estimate(6_000_000, 750_000) == "≈ 8 s at 6 Mbit/s (recordings.max_bandwidth)"
    assert reason_label("gone_from_remote") == "plus sur le serveur"
    assert reason_label("whatever") == "whatever"


def test_the_domain_module_imports_no_airflow() -> None:
    code = (
        "import sys, include.cc_intake.onboarding; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == "[]"
