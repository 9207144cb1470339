"""Retention of personal data: which days go, what stays, the journal, purged days' re-runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from include.cc_intake import retention
from include.cc_intake.config import RetentionConfig
from include.cc_intake.errors import ConfigError
from include.cc_intake.layout import DayLayout
from include.cc_intake.retention import RetentionSettings

PROVIDER = "acme_abidjan"
TODAY = dt.date(2027, 3, 1)


def land_day(root: Path, day: dt.date, *, status: str | None = "green") -> DayLayout:
    """A landed day as the pipeline leaves it: recordings, CRM content, manifest, report, proof."""
    layout = DayLayout(root, PROVIDER, day)
    for direction, name in (("ENTRANTS", "a.wav"), ("ENTRANTS", "b.wav"), ("SORTANTS", "c.wav")):
        path = layout.recording(direction, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    layout.digital_dir.mkdir(parents=True, exist_ok=True)
    (layout.digital_dir / "interactions.jsonl").write_text('{"id": 1}\n')
    layout.manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.manifest.write_text("direction,file_name\n")
    layout.reports_dir.mkdir(parents=True, exist_ok=True)
    (layout.reports_dir / "calls.csv").write_text("date,direction,calls\n")
    layout.quality_dir.mkdir(parents=True, exist_ok=True)
    for name in ("recordings.json", "recordings.html", "digital.json", "digital.html"):
        (layout.quality_dir / name).write_text("{}")
    if status is not None:
        summary = {"provider": PROVIDER, "day": day.isoformat(), "status": status}
        (layout.quality_dir / "summary.json").write_text(json.dumps(summary))
    return layout


def proof_files(layout: DayLayout) -> list[Path]:
    return [
        layout.manifest,
        layout.reports_dir / "calls.csv",
        *(layout.quality_dir / n for n in ("recordings.json", "recordings.html", "digital.json")),
    ]


def test_only_days_older_than_the_retention_are_planned(tmp_path: Path) -> None:
    for age in (89, 90, 91, 200):
        land_day(tmp_path, TODAY - dt.timedelta(days=age))
    planned = retention.plan(tmp_path, PROVIDER, TODAY, RetentionSettings(recordings=90))
    assert [p.day for p in planned] == [TODAY - dt.timedelta(days=200), TODAY - dt.timedelta(91)]
    assert all(p.kinds == ("recordings",) and p.goes for p in planned)
    # Recordings only: three files a day, and the CRM content stays.
    assert all(len(p.files) == 3 and p.bytes == 300 for p in planned)
    assert all(not any("digital" in str(f) for f in p.files) for p in planned)


def test_each_kind_has_its_own_retention(tmp_path: Path) -> None:
    land_day(tmp_path, TODAY - dt.timedelta(days=40))
    land_day(tmp_path, TODAY - dt.timedelta(days=100))
    settings = RetentionSettings(recordings=90, digital=30)
    planned = {p.day: p for p in retention.plan(tmp_path, PROVIDER, TODAY, settings)}
    assert planned[TODAY - dt.timedelta(days=40)].kinds == ("digital",)
    assert planned[TODAY - dt.timedelta(days=100)].kinds == ("recordings", "digital")
    files = [f.name for f in planned[TODAY - dt.timedelta(days=40)].files]
    assert files == ["interactions.jsonl"]


def test_no_retention_keeps_everything(tmp_path: Path) -> None:
    land_day(tmp_path, TODAY - dt.timedelta(days=3000))
    assert retention.plan(tmp_path, PROVIDER, TODAY, RetentionSettings()) == []
    assert not RetentionSettings().active


def test_a_day_that_is_not_green_is_refused_unless_purge_incomplete(tmp_path: Path) -> None:
    land_day(tmp_path, TODAY - dt.timedelta(days=100), status="amber")
    land_day(tmp_path, TODAY - dt.timedelta(days=101), status=None)  # no verdict at all
    planned = retention.plan(tmp_path, PROVIDER, TODAY, RetentionSettings(recordings=90))
    assert [p.goes for p in planned] == [False, False]
    assert "without a verdict" in str(planned[0].refused)
    assert "amber, not green" in str(planned[1].refused)
    assert f"{PROVIDER} {TODAY - dt.timedelta(days=100)}" in str(planned[1].refused)

    outcome = retention.execute(tmp_path, planned, dry_run=False)
    assert [d["action"] for d in outcome.days] == ["refused", "refused"]
    assert all(f.exists() for p in planned for f in p.files)  # nothing deleted

    forced = RetentionSettings(recordings=90, purge_incomplete=True)
    assert all(p.goes for p in retention.plan(tmp_path, PROVIDER, TODAY, forced))


def test_dry_run_deletes_nothing_and_journals_what_would_go(tmp_path: Path) -> None:
    layout = land_day(tmp_path, TODAY - dt.timedelta(days=100))
    planned = retention.plan(tmp_path, PROVIDER, TODAY, RetentionSettings(recordings=90))
    outcome = retention.execute(tmp_path, planned, dry_run=True)

    assert outcome.days[0]["action"] == "would_delete"
    assert all(f.exists() for f in planned[0].files)
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert "purged_at" not in summary
    (line,) = (tmp_path / "audit" / "retention.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["dry_run"] is True and record["action"] == "would_delete"
    assert record["provider"] == PROVIDER and record["bytes"] == 300
    assert "recordings/acme_abidjan/2026-11-21/ENTRANTS/a.wav" in record["files"]


def test_purge_deletes_personal_data_keeps_the_proof_and_marks_the_day(tmp_path: Path) -> None:
    layout = land_day(tmp_path, TODAY - dt.timedelta(days=100))
    settings = RetentionSettings(recordings=90, digital=90, dry_run=False)
    planned = retention.plan(tmp_path, PROVIDER, TODAY, settings)
    outcome = retention.execute(tmp_path, planned, dry_run=False)

    assert outcome.days[0]["action"] == "deleted" and outcome.days[0]["files"] == 4
    assert not (tmp_path / "recordings" / PROVIDER / layout.day.isoformat()).exists()
    assert not (layout.digital_dir / "interactions.jsonl").exists()
    for kept in proof_files(layout):
        assert kept.is_file(), kept
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert summary["status"] == "green"  # the verdict stays: the proof is still true
    assert summary["purged_at"] and set(summary["purged"]) == {"recordings", "digital"}
    journal = tmp_path / "audit" / "retention.jsonl"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o640
    record = json.loads(journal.read_text().splitlines()[-1])
    assert record["action"] == "deleted" and record["dry_run"] is False
    assert record["purged_at"] == summary["purged_at"]
    assert len(record["files"]) == 4

    # Nothing left to purge: a second pass plans nothing and journals nothing more.
    assert retention.plan(tmp_path, PROVIDER, TODAY, settings) == []


def test_the_provider_override_wins_key_by_key() -> None:
    project = RetentionSettings(recordings=90, digital=90, dry_run=False)
    mine = retention.for_provider(project, RetentionConfig.model_validate({"recordings": "30d"}))
    assert (mine.recordings, mine.digital, mine.dry_run) == (30, 90, False)
    assert retention.for_provider(project, RetentionConfig(purge_incomplete=True)).purge_incomplete


def test_project_settings_parse_and_default_to_a_dry_run() -> None:
    def read(values: dict[str, str]):
        return lambda name: values.get(name)

    assert retention.project_settings(read({})) == RetentionSettings()
    parsed = retention.project_settings(
        read(
            {
                "CC_INTAKE_RETENTION_RECORDINGS": "90d",
                "CC_INTAKE_RETENTION_DIGITAL": "keep",
                "CC_INTAKE_RETENTION_DRY_RUN": "0",
                "CC_INTAKE_RETENTION_PURGE_INCOMPLETE": "true",
            }
        )
    )
    assert parsed == RetentionSettings(90, None, dry_run=False, purge_incomplete=True)
    with pytest.raises(ConfigError, match=r"CC_INTAKE_RETENTION_RECORDINGS.*90d"):
        retention.project_settings(read({"CC_INTAKE_RETENTION_RECORDINGS": "three months"}))
    with pytest.raises(ConfigError, match="CC_INTAKE_RETENTION_DRY_RUN must be 1 or 0"):
        retention.project_settings(read({"CC_INTAKE_RETENTION_DRY_RUN": "maybe"}))


def test_a_purged_day_refuses_a_rerun_unless_restore(tmp_path: Path) -> None:
    layout = land_day(tmp_path, TODAY - dt.timedelta(days=100))
    settings = RetentionSettings(recordings=90)
    retention.execute(tmp_path, retention.plan(tmp_path, PROVIDER, TODAY, settings), dry_run=False)
    logged: list[str] = []

    retention.refuse_purged(layout, "digital", restore=False, log=logged.append)  # not purged
    with pytest.raises(retention.PurgedDayError) as info:
        retention.refuse_purged(layout, "recordings", restore=False, log=logged.append)
    message = str(info.value)
    assert message.startswith(f"{PROVIDER} {layout.day}: this day's recordings were purged at")
    assert '"restore": true' in message and "Journée purgée" in message
    assert info.value.retryable is False
    assert info.value.details["kinds"] == ("recordings",)

    retention.refuse_purged(layout, "recordings", restore=True, log=logged.append)
    assert logged and "restore requested" in logged[0]


def test_journal_lines_are_appended_never_rewritten(tmp_path: Path) -> None:
    retention.append_journal(tmp_path, {"n": 1})
    before = os.stat(tmp_path / "audit" / "retention.jsonl").st_ino
    retention.append_journal(tmp_path, {"n": 2})
    lines = (tmp_path / "audit" / "retention.jsonl").read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines] == [1, 2]
    assert os.stat(tmp_path / "audit" / "retention.jsonl").st_ino == before


def test_the_overview_marks_a_purged_day(tmp_path: Path) -> None:
    from include.cc_intake import overview

    purged_day, kept_day = TODAY - dt.timedelta(days=100), TODAY - dt.timedelta(days=10)
    land_day(tmp_path, purged_day)
    land_day(tmp_path, kept_day)
    settings = RetentionSettings(recordings=90)
    retention.execute(tmp_path, retention.plan(tmp_path, PROVIDER, TODAY, settings), dry_run=False)

    page = overview.render_overview(
        overview.build_overview(tmp_path, end_day=TODAY, days=120, providers=[PROVIDER])
    )
    cells = {
        m.split('data-day="')[1].split('"')[0]: m.split("</td>")[0]
        for m in page.split('<td class="cell ')[1:]
    }
    assert 'data-purged="1"' in cells[purged_day.isoformat()]
    assert "purgé" in cells[purged_day.isoformat()]
    assert "Données personnelles purgées" in cells[purged_day.isoformat()]
    assert "purg" not in cells[kept_day.isoformat()]


def test_settings_are_read_from_the_environment_then_the_airflow_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from include.cc_intake.airflow.runtime_settings import RETENTION_SETTINGS, runtime_setting

    for name in RETENTION_SETTINGS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"AIRFLOW_VAR_{name}", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_CC_INTAKE_RETENTION_RECORDINGS", "30d")
    monkeypatch.setenv("AIRFLOW_VAR_CC_INTAKE_RETENTION_DRY_RUN", "0")
    monkeypatch.setenv("CC_INTAKE_RETENTION_RECORDINGS", "60d")  # the environment wins
    settings = retention.project_settings(runtime_setting)
    assert settings == RetentionSettings(recordings=60, dry_run=False)


def test_a_revalidation_keeps_the_purge_mark_only_restore_lifts_it(tmp_path: Path) -> None:
    from include.cc_intake.proof import write_summary

    layout = land_day(tmp_path, TODAY - dt.timedelta(days=100))
    settings = RetentionSettings(recordings=90, digital=30)
    retention.execute(tmp_path, retention.plan(tmp_path, PROVIDER, TODAY, settings), dry_run=False)
    purged = json.loads((layout.quality_dir / "summary.json").read_text())["purged"]
    assert set(purged) == {"recordings", "digital"}

    # Clearing a validation alone re-reads the kept manifest and report: still purged.
    write_summary(layout.quality_dir, provider=PROVIDER, day=layout.day)
    again = json.loads((layout.quality_dir / "summary.json").read_text())
    assert again["purged"] == purged and again["purged_at"]

    # A restore run landed the recordings again: their mark goes, the CRM content's stays.
    assert retention.lift_purged(layout, "recordings") is True
    lifted = json.loads((layout.quality_dir / "summary.json").read_text())
    assert lifted["purged"] == {"digital": purged["digital"]}
    assert lifted["purged_at"] == purged["digital"]
    retention.refuse_purged(layout, "recordings", restore=False, log=print)
    with pytest.raises(retention.PurgedDayError):
        retention.refuse_purged(layout, "digital", restore=False, log=print)
    assert retention.lift_purged(layout, "digital") is True
    final = json.loads((layout.quality_dir / "summary.json").read_text())
    assert "purged" not in final and "purged_at" not in final
    assert retention.lift_purged(layout, "digital") is False
