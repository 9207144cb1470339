"""The proof files: the JSON and HTML proofs and summary.json, written atomically."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from include.cc_intake.gx_suites import validate_digital
from include.cc_intake.proof import write_proof, write_summary
from include.cc_intake.reconcile import reconcile
from include.cc_intake.status import verdict
from tests.unit.quality_data import (
    DAY,
    DIGITAL,
    _cfg,
    _day_rows,
    _detail,
    _digital,
    _jsonl,
    _records,
    _row,
    _summary,
    _validate,
)

# --- proof files -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_proof_red_page(tmp_path: Path) -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]
    rows += [
        _row("SORTANTS", "S1", hhmmss="120000", agent="0707123456"),
        _row("ENTRANTS", "E8", status="rejected", reason="empty", size=0),
        _row("SORTANTS", "", name="<script>x.txt", status="rejected", reason="pattern_mismatch"),
    ]
    result = _validate(tmp_path, rows, _detail(sortants=("S1", "S2")))
    quality = tmp_path / "quality" / "acme_abidjan" / "2026-11-20"
    json_path, html_path = write_proof(quality, "recordings", result)

    assert (json_path.name, html_path.name) == ("recordings.json", "recordings.html")
    assert json.loads(json_path.read_text(encoding="utf-8"))["success"] is False
    assert _mode(json_path) == _mode(html_path) == 0o640
    assert _mode(quality) == _mode(quality.parent) == _mode(quality.parent.parent) == 0o750
    assert sorted(p.name for p in quality.iterdir()) == ["recordings.html", "recordings.json"]

    page = html_path.read_text(encoding="utf-8")
    assert page.index("NON CONFORME") < page.index("Attendu et reçu par sens")
    assert page.index("Attendu et reçu par sens") < page.index("Appels manquants")
    assert "<code>E2</code> (ENTRANTS)" in page  # missing, by call id
    assert "20261120_120000_******56_S1.wav" in page  # duplicate, phone masked
    assert "0707123456" not in page
    assert "20261120_101500_ag01_E8.wav" in page and "fichier vide" in page
    assert "&lt;script&gt;x.txt" in page and "<script>" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_write_proof_green_page_and_rewrite(tmp_path: Path) -> None:
    result = _validate(tmp_path, _day_rows(), _summary())
    quality = tmp_path / "q"
    write_proof(quality, "recordings", result)
    _, html_path = write_proof(quality, "recordings", result)  # a re-run replaces it
    page = html_path.read_text(encoding="utf-8")
    assert 'data-status="green"' in page and ">CONFORME<" in page
    assert sorted(p.name for p in quality.iterdir()) == ["recordings.html", "recordings.json"]


def test_write_proof_digital_page(tmp_path: Path) -> None:
    records = _records()
    records[2]["id"] = "I1"
    result = _digital(tmp_path, records)
    _, html_path = write_proof(tmp_path / "q", "digital", result)
    page = html_path.read_text(encoding="utf-8")
    assert page.index("NON CONFORME") < page.index("Identifiants en double")
    assert "<code>I1</code> (lignes 2, 3)" in page


def test_write_proof_refuses_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proof kind"):
        write_proof(tmp_path, "voice", {})  # type: ignore[arg-type]


def test_summary_shape_and_status(tmp_path: Path) -> None:
    quality = tmp_path / "q"
    rows = [*_day_rows(), _row("ENTRANTS", "X", status="rejected", reason="pattern_mismatch")]
    recordings = _validate(tmp_path, rows, _summary())
    path = write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings)
    summary = json.loads(path.read_text(encoding="utf-8"))
    assert set(summary) == {
        "provider",
        "day",
        "status",
        "recordings",
        "digital",
        "rejected",
        "updated_at",
    }
    assert summary["provider"] == "acme_abidjan" and summary["day"] == "2026-11-20"
    assert summary["recordings"] == {
        "ENTRANTS": {"expected": 3, "got": 3},
        "SORTANTS": {"expected": 2, "got": 2},
    }
    assert summary["digital"] is None
    assert summary["rejected"] == 1
    assert summary["status"] == "amber"  # passed, but a file was rejected
    assert dt.datetime.strptime(summary["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert _mode(path) == 0o640


def test_summary_merges_the_two_tasks(tmp_path: Path) -> None:
    quality = tmp_path / "q"
    recordings = _validate(tmp_path, _day_rows(), _summary())
    write_proof(quality, "recordings", recordings)
    write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings)
    assert json.loads((quality / "summary.json").read_text())["status"] == "green"

    digital = _digital(tmp_path, _records(), total=12)  # the digital task, later, fails
    write_proof(quality, "digital", digital)
    write_summary(quality, provider="acme_abidjan", day=DAY, digital=digital)
    summary = json.loads((quality / "summary.json").read_text())
    assert summary["digital"] == {"expected": 12, "got": 10, "conflicting_ids": 0}
    assert summary["recordings"]["ENTRANTS"] == {"expected": 3, "got": 3}  # kept from the proof
    assert summary["status"] == "red"

    digital = _digital(tmp_path, _records(), total=10)  # re-run after the CRM fixed it
    write_proof(quality, "digital", digital)
    write_summary(quality, provider="acme_abidjan", day=DAY, digital=digital)
    assert json.loads((quality / "summary.json").read_text())["status"] == "green"


def test_summary_without_recordings_is_amber(tmp_path: Path) -> None:
    digital = _digital(tmp_path, _records())
    path = write_summary(tmp_path / "q", provider="acme_abidjan", day=DAY, digital=digital)
    summary = json.loads(path.read_text())
    assert summary["status"] == "amber"
    assert summary["recordings"]["SORTANTS"] == {"expected": None, "got": None}
    assert summary["rejected"] == 0


def test_summary_optional_run_keys(tmp_path: Path) -> None:
    recordings = _validate(tmp_path, _day_rows(), _summary())
    path = write_summary(
        tmp_path / "q",
        provider="acme_abidjan",
        day=DAY,
        recordings=recordings,
        run_id="manual__2026-11-21",
        timezone="Africa/Abidjan",
    )
    summary = json.loads(path.read_text())
    assert (summary["run_id"], summary["timezone"]) == ("manual__2026-11-21", "Africa/Abidjan")
    assert summary["status"] == "green"


def test_item11_conflicting_crm_ids_are_counted_in_the_proof_and_turn_the_day_amber(
    tmp_path: Path,
) -> None:
    quality = tmp_path / "q"
    recordings = _validate(tmp_path, _day_rows(), _summary())
    write_proof(quality, "recordings", recordings)
    exported = {"duplicates_dropped": 3, "conflicting_ids": 7, "conflicting_examples": ["I1", "I4"]}
    result = validate_digital(
        _jsonl(tmp_path, _records()), 10, _cfg(digital=DIGITAL), DAY, export=exported
    )
    assert result["success"] is True  # every line passed: a conflict is a reserve, not a fault
    assert result["checks"]["conflicting_ids"] == 7
    assert result["checks"]["conflicting_examples"] == ["I1", "I4"]
    assert result["checks"]["duplicates_dropped"] == 3
    assert result["warnings"] == [
        "7 id received with conflicting contents, the last version of each kept: I1, I4 and 5 more"
    ]
    assert verdict(result) == "amber"
    _, page = write_proof(quality, "digital", result)
    write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings, digital=result)
    summary = json.loads((quality / "summary.json").read_text())
    assert summary["digital"] == {"expected": 10, "got": 10, "conflicting_ids": 7}
    assert summary["status"] == "amber"
    text = page.read_text(encoding="utf-8")
    assert 'data-status="amber"' in text
    assert "Identifiants reçus avec des contenus différents (7)" in text
    assert "<code>I4</code>" in text and "… et 5 autre(s)" in text

    clean = validate_digital(_jsonl(tmp_path, _records()), 10, _cfg(digital=DIGITAL), DAY)
    assert clean["checks"]["conflicting_ids"] == 0 and verdict(clean) == "green"


# --- issue #10, items 1 and 3: kept and failed rows in the reconciliation, proof and summary


def test_item1_kept_rows_count_as_received_and_are_listed_as_held(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[0].update(status="kept", reason="gone_from_remote", copied_at="2026-11-21T02:31:00Z")
    rows[3].update(status="kept", reason="gone_from_remote")
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert rec.ok and rec.warnings == ()
    assert [(d.direction, d.got) for d in rec.directions] == [("ENTRANTS", 3), ("SORTANTS", 2)]
    assert [(e.file_name, e.detail) for e in rec.kept] == [
        (rows[0]["file_name"], "2026-11-21T02:31:00Z"),
        (rows[3]["file_name"], "2026-11-21T02:31:00Z"),
    ]

    quality = tmp_path / "q"
    recordings = _validate(tmp_path, rows, _summary())
    assert recordings["success"]
    _, page = write_proof(quality, "recordings", recordings)
    html = page.read_text(encoding="utf-8")
    assert 'id="kept">Conservés ici, plus sur le serveur (2)' in html
    assert f"<code>{rows[0]['file_name']}</code> (ENTRANTS) — copié le 2026-11-21T02:31:00Z" in html
    summary = json.loads(
        write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings).read_text()
    )
    assert summary["recordings"]["ENTRANTS"] == {"expected": 3, "got": 3}
    assert (summary["kept"], summary["status"]) == (2, "green")
    assert "failed" not in summary


def test_item3_failed_rows_are_not_received_and_warn(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[2].update(status="failed", reason="OSError: [Errno 28] No space left", sha256="")
    rec = reconcile(rows, _summary(), _cfg(1), DAY)
    assert rec.direction("ENTRANTS").got == 2
    assert [e.file_name for e in rec.failed] == [rows[2]["file_name"]]
    assert any(
        "1 recording(s) whose copy failed" in w and "No space left" in w for w in rec.warnings
    )
    assert not any("unknown status" in w for w in rec.warnings)

    quality = tmp_path / "q"
    recordings = _validate(tmp_path, rows, _summary(), _cfg(1))
    _, page = write_proof(quality, "recordings", recordings)
    assert 'id="failed">Copies en échec (1)' in page.read_text(encoding="utf-8")
    summary = json.loads(
        write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings).read_text()
    )
    # Within the tolerance, but a copy failed: never green.
    assert (summary["failed"], summary["status"]) == (1, "amber")
