"""The DAG's Docs tab is written from the provider's YAML (what an operator reads in the UI)."""

from __future__ import annotations

from include.cc_intake.docs import provider_doc_md
from tests.helpers import provider, with_recordings


def test_the_doc_tab_says_what_the_dag_does_for_this_provider() -> None:
    cfg = provider()
    doc = provider_doc_md(cfg)
    assert doc.startswith("# ACME Abidjan (`acme_abidjan`)")
    assert "`Africa/Abidjan`" in doc and "`30 2 * * *`" in doc and "07:00" in doc
    assert "ops@example.com" in doc
    assert "| ENTRANTS | `/exports/inbound/{date:%Y%m%d}` |" in doc
    assert "| SORTANTS | `/exports/outbound/{date:%Y%m%d}` |" in doc
    assert "no cap" in doc  # no max_bandwidth
    assert "No CRM export for this provider." in doc
    # The re-run recipes name this provider, with the processed-day conf.
    assert "make backfill PROVIDER=acme_abidjan" in doc
    assert '{"target_date": "YYYY-MM-DD"}' in doc


def test_the_doc_tab_shows_the_bandwidth_cap_in_megabits() -> None:
    assert "6.0 Mbit/s" in provider_doc_md(with_recordings(max_bandwidth="6Mbit"))
