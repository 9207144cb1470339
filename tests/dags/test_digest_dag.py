"""The morning digest DAG in the real DagBag: schedule from CC_INTAKE_DIGEST_AT at parse time."""

from __future__ import annotations

from pathlib import Path

from include.cc_intake import constants as C
from tests.dags.test_dag_integrity import fill_dagbag


def test_the_digest_dag_runs_daily_at_the_default_time(tmp_path: Path) -> None:
    empty = tmp_path / "providers"
    empty.mkdir()
    bag = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(empty), CC_INTAKE_SANDBOX="0")
    assert bag["errors"] == {}
    digest = bag["digest"]
    assert digest is not None, "cc_intake_digest is missing from the DagBag"
    assert (digest["cron"], digest["timezone"]) == ("0 9 * * *", "Africa/Abidjan")
    assert digest["catchup"] is False and digest["timetable"] == "CronTriggerTimetable"
    assert list(digest["tasks"]) == [C.TASK_SEND_DIGEST]
    assert sorted(digest["tags"]) == sorted([C.TAG_INTAKE, C.TAG_DIGEST])
    task = digest["tasks"][C.TASK_SEND_DIGEST]
    assert task["owner"] and task["retries"] >= 1 and task["failure_callbacks"] >= 1


def test_the_digest_time_is_a_parse_time_setting(tmp_path: Path) -> None:
    empty = tmp_path / "providers"
    empty.mkdir()
    bag = fill_dagbag(
        tmp_path,
        CC_INTAKE_PROVIDERS_DIR=str(empty),
        CC_INTAKE_SANDBOX="0",
        CC_INTAKE_DIGEST_AT="07:45 Africa/Douala",
    )
    assert (bag["digest"]["cron"], bag["digest"]["timezone"]) == ("45 7 * * *", "Africa/Douala")


def test_a_bad_digest_time_is_an_import_error_that_says_what_is_expected(tmp_path: Path) -> None:
    empty = tmp_path / "providers"
    empty.mkdir()
    bag = fill_dagbag(
        tmp_path,
        CC_INTAKE_PROVIDERS_DIR=str(empty),
        CC_INTAKE_SANDBOX="0",
        CC_INTAKE_DIGEST_AT="9h Abidjan",
    )
    assert bag["digest"] is None
    (error,) = [e for path, e in bag["errors"].items() if path.endswith("digest.py")]
    assert "CC_INTAKE_DIGEST_AT" in error and "HH:MM <IANA zone>" in error
