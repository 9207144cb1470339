"""The shared link (#11): the copy/report steps' pool and queue, and each copy's rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.cc_intake.airflow.link_budget import (
    LINK_BUDGET,
    LINK_POOL,
    LINK_SLOTS,
    copy_rate,
    lower_cap,
    share_of_budget,
    task_kwargs,
    with_rate,
)
from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.errors import ConfigError

SANDBOX = Path(__file__).resolve().parents[2] / "include" / "cc_intake" / "sandbox" / "providers"


@pytest.fixture
def cfg() -> ProviderConfig:
    return load_provider(SANDBOX / "acme_abidjan.yaml")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (LINK_POOL, LINK_BUDGET, LINK_SLOTS):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"AIRFLOW_VAR_{name}", raising=False)


def test_no_pool_unless_the_parse_time_variable_names_it(cfg: ProviderConfig) -> None:
    assert task_kwargs(cfg, {}) == {"queue": "default"}
    assert task_kwargs(cfg, {LINK_POOL: "  "}) == {"queue": "default"}
    assert task_kwargs(cfg, {LINK_POOL: "cc_intake_link"}) == {
        "queue": "default",
        "pool": "cc_intake_link",
    }


def test_the_provider_queue_routes_the_link_steps(cfg: ProviderConfig) -> None:
    routed = cfg.model_copy(
        update={"recordings": cfg.recordings.model_copy(update={"queue": "storage"})}
    )
    assert task_kwargs(routed, {})["queue"] == "storage"


def test_the_budget_is_split_among_the_slots() -> None:
    assert share_of_budget(None, "4") is None
    assert share_of_budget("", "4") is None
    # 5.6 Mbit/s = 700 000 B/s; four copies at once get 175 000 B/s each.
    assert share_of_budget("5.6Mbit", "4") == 175_000
    assert share_of_budget("5.6Mbit", None) == 700_000  # unknown slots: the whole budget


@pytest.mark.parametrize(
    ("budget", "slots", "message"),
    [
        ("fast", "4", r"CC_INTAKE_LINK_BUDGET='fast': expected a bandwidth like 6Mbit"),
        ("5.6Mbit", "0", r"CC_INTAKE_LINK_SLOTS='0': expected .* integer >= 1"),
        ("5.6Mbit", "four", r"CC_INTAKE_LINK_SLOTS='four'"),
    ],
)
def test_bad_settings_are_named(budget: str, slots: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        share_of_budget(budget, slots)


def test_the_lower_cap_wins() -> None:
    assert lower_cap(None, None) is None
    assert lower_cap(500_000, None) == 500_000
    assert lower_cap(None, 175_000) == 175_000
    assert lower_cap(100_000, 175_000) == 100_000
    assert lower_cap(500_000, 175_000) == 175_000


def test_copy_rate_reads_the_run_time_settings(
    cfg: ProviderConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cfg.recordings.max_bandwidth is None
    assert copy_rate(cfg) is None
    monkeypatch.setenv(LINK_BUDGET, "5.6Mbit")
    # The slots from the Airflow Variable (here its environment backend), as `make settings`
    # writes it.
    monkeypatch.setenv(f"AIRFLOW_VAR_{LINK_SLOTS}", "2")
    assert copy_rate(cfg) == 350_000
    capped = with_rate(cfg, 100_000)
    assert capped.recordings.max_bandwidth == 100_000
    assert copy_rate(capped) == 100_000
    assert cfg.recordings.max_bandwidth is None  # the original is untouched
    assert with_rate(cfg, None) is cfg
