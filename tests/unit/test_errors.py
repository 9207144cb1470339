"""The exceptions carry their facts: set where raised, shown by ``details``, kept when pickled."""

from __future__ import annotations

import copy
import datetime as dt
import pickle

import pytest

from include.cc_intake import errors

DAY = dt.date(2026, 11, 25)


def test_every_error_knows_provider_and_day_and_only_its_own_facts_are_details() -> None:
    error = errors.TransferError(
        "acme 2026-11-25: 1 recording(s) not copied",
        provider="acme",
        day=DAY,
        files=["/exports/inbound/20261125/a.wav: SFTPFailure: I/O error"],
    )

    assert (error.provider, error.day) == ("acme", DAY)
    assert error.details == {"files": ["/exports/inbound/20261125/a.wav: SFTPFailure: I/O error"]}
    assert str(error) == "acme 2026-11-25: 1 recording(s) not copied"


@pytest.mark.parametrize(
    ("error", "details"),
    [
        (errors.IntakeError("x", provider="acme", day=DAY), {}),
        (errors.ConfigError("x"), {}),
        (errors.TransferError("x"), {}),  # unknown facts are left out, not shown empty
        (
            errors.RecordingsNotReady(
                "x", directions={"ENTRANTS": {"ready": 4, "expected": 12}}, waited="0:00:05"
            ),
            {"directions": {"ENTRANTS": {"ready": 4, "expected": 12}}, "waited": "0:00:05"},
        ),
        (
            errors.ReconciliationError(
                "x",
                recordings={"ENTRANTS": {"expected": 12, "got": 11}},
                gaps={"missing": ["ENTRANTS : C42"], "extra": []},
                proof="http://x/p.html",
            ),
            {
                "recordings": {"ENTRANTS": {"expected": 12, "got": 11}},
                "gaps": {"missing": ["ENTRANTS : C42"]},
                "proof": "http://x/p.html",
            },
        ),
        (
            errors.ValidationError("x", failed_expectations=["call_id unique"]),
            {"failed_expectations": ["call_id unique"]},
        ),
        (errors.ManifestError("x", path="/data/m.csv"), {"path": "/data/m.csv"}),
        (
            errors.ExportError("x", url="/api", page=1, status=401),
            {"url": "/api", "page": 1, "status": 401},
        ),
        (
            errors.ShrunkExportError("x", url="/api", page=1, previous=240, got=0),
            {"url": "/api", "page": 1, "previous": 240, "got": 0},
        ),
        (
            errors.MalformedPageError("x", url="/api", page=2, attempts=3),
            {"url": "/api", "page": 2, "malformed": True, "attempts": 3},
        ),
    ],
)
def test_details_is_the_mapping_of_the_known_typed_facts(error, details) -> None:
    assert error.details == details


@pytest.mark.parametrize("clone", [copy.copy, lambda e: pickle.loads(pickle.dumps(e))])
def test_facts_survive_copies_and_pickling(clone) -> None:
    error = errors.ReconciliationError(
        "acme: gap", provider="acme", day=DAY, gaps={"missing": ["C1"]}, proof="http://x"
    )

    again = clone(error)

    assert type(again) is errors.ReconciliationError
    assert (str(again), again.provider, again.day) == ("acme: gap", "acme", DAY)
    assert again.details == error.details


def test_a_missing_manifest_is_its_own_error_and_no_retry_can_fix_it() -> None:
    assert not issubclass(errors.ManifestError, errors.ValidationError)
    assert errors.ManifestError.retryable is False
