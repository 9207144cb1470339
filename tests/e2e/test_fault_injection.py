"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_good_day_runs_green_and_sends_no_mail(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")
    assert layout.manifest.is_file()
    assert sandbox_days.mails() == []


# --- items 1, 3, 4 (voice manifest integrity)


def _manifest(sandbox_days: SandboxDays, provider: str) -> dict[tuple[str, str], dict[str, str]]:
    import csv

    path = sandbox_days.layout(provider).manifest
    with path.open(encoding="utf-8", newline="") as handle:
        return {(r["direction"], r["file_name"]): r for r in csv.DictReader(handle)}


def test_item1_provider_purge_keeps_the_proof_through_the_dag(sandbox_days: SandboxDays) -> None:
    """Run D, the provider archives some of D's files, re-run D: the proof stays whole."""
    import json
    import shutil
    from pathlib import Path

    provider = "acme_abidjan"
    first_run = sandbox_days.run_day(provider)
    assert first_run.returncode == 0, (first_run.stdout + first_run.stderr)[-4000:]
    layout = sandbox_days.layout(provider)
    first = _manifest(sandbox_days, provider)
    first_summary = json.loads((layout.quality_dir / "summary.json").read_text())

    # Two inbound recordings and one outbound move to the provider's archive; each direction
    # keeps at least one file, so the wait step still sees a settled day.
    copied = sorted(k for k, r in first.items() if r["status"] == "copied")
    purged = [k for k in copied if k[0] == "ENTRANTS"][:2] + [
        k for k in copied if k[0] == "SORTANTS"
    ][:1]
    assert len(purged) == 3
    server = sandbox_days.server_root(provider)
    archive = server / "archive"
    archive.mkdir()
    for key in purged:
        remote = server / first[key]["remote_path"].lstrip("/")
        shutil.move(remote, archive / Path(key[1]).name)

    again = sandbox_days.run_day(provider)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    rows = _manifest(sandbox_days, provider)
    assert set(rows) == set(first)  # no row lost
    for key in purged:
        row = rows[key]
        assert (row["status"], row["reason"]) == ("kept", "gone_from_remote")
        assert (row["sha256"], row["copied_at"]) == (first[key]["sha256"], first[key]["copied_at"])
        assert layout.recording(*key).is_file()

    # Reconciliation still counts them: summary.json's got is unchanged, the day still green.
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert summary["recordings"] == first_summary["recordings"]
    assert summary["status"] == first_summary["status"]
    assert summary["kept"] == 3
    assert sandbox_days.mails() == []  # no "écart" e-mail for files we hold
    # The proof page lists them as held here, no longer on the server.
    page = (layout.quality_dir / "recordings.html").read_text(encoding="utf-8")
    section = page[page.index('id="kept"') :]
    assert "Conservés ici, plus sur le serveur (3)" in section
    for _, name in purged:
        assert f"<code>{name}</code>" in section
