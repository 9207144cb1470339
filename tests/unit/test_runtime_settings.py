"""Run-time settings: the environment first, then the Airflow Variable of the same name in lower
case (contract §8.1). The Variable is read through Airflow's own lookup; here its environment
secrets backend (``AIRFLOW_VAR_<NAME>``) answers, the e2e test uses the metadata DB."""

from __future__ import annotations

import pytest

from include.cc_intake.airflow.runtime_settings import OPS_EMAILS, ops_emails, runtime_setting


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (OPS_EMAILS, f"AIRFLOW_VAR_{OPS_EMAILS}"):
        monkeypatch.delenv(name, raising=False)


def test_item13_ops_list_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPS_EMAILS, "ops@example.com, oncall@example.com")
    monkeypatch.setenv(f"AIRFLOW_VAR_{OPS_EMAILS}", "variable@example.com")

    assert ops_emails() == ["ops@example.com", "oncall@example.com"]


def test_item13_ops_list_from_the_airflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPS_EMAILS, "  ")  # blank counts as unset
    monkeypatch.setenv(f"AIRFLOW_VAR_{OPS_EMAILS}", "variable@example.com,not-an-address")

    assert runtime_setting(OPS_EMAILS) == "variable@example.com,not-an-address"
    assert ops_emails() == ["variable@example.com"]


def test_item13_no_ops_list_is_empty_not_an_error() -> None:
    assert runtime_setting(OPS_EMAILS) is None
    assert runtime_setting(OPS_EMAILS, "fallback") == "fallback"
    assert ops_emails() == []
