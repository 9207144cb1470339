"""The day statuses and the rules that pick one (contract §7 *Proof files*, §8.1).

A leaf module: it imports nothing from the project, so the validators, the proof writer, the
pages and the overview all read the statuses from here.

- ``red``: a validation failed (recordings or digital);
- ``amber``: everything present passed, but something deserves a look: rejected files,
  warnings (a gap within the tolerance, a report line counted twice, CRM ids received with
  conflicting contents, …), or the recordings have not been validated yet;
- ``green``: every validation present passed with nothing rejected and no warning;
- ``config_error``: the provider's YAML was broken when the day was due, nothing was fetched
  (written by the config-error placeholder, never over a verdict);
- ``running``: a run has started and not yet reached its verdict (contract §8.1
  *Evaluators*): the first step of a run attempt writes it, keeping the day's counts and its
  earlier verdict (``previous``); the recordings validation (or the end of the run) replaces it.

Rejected files never fail a day by themselves (the count does, if the report counted them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

Status = Literal["green", "amber", "red"]
ProofKind = Literal["recordings", "digital"]  # the two validations a day can have

GREEN: Status = "green"
AMBER: Status = "amber"
RED: Status = "red"
VERDICTS: tuple[Status, ...] = (GREEN, AMBER, RED)
CONFIG_ERROR = "config_error"
RUNNING = "running"
# What the overview and the digest accept in ``summary.json`` (anything else is unreadable).
SUMMARY_STATUSES = (*VERDICTS, CONFIG_ERROR, RUNNING)


def verdict(result: Mapping[str, Any]) -> Status:
    """The status of one validation result (recordings or digital)."""
    if not result.get("success"):
        return RED
    rejected = (result.get("reconciliation") or {}).get("rejected") or []
    if result.get("warnings") or rejected:
        return AMBER
    return GREEN


def day_status(verdicts: Iterable[Status], *, recordings_validated: bool, rejected: int) -> Status:
    """The day's status from the verdicts of its validations so far.

    :param recordings_validated: whether the recordings have a verdict yet (a day proven by
        its digital export alone is not green).
    :param rejected: the day's rejected manifest rows.
    """
    seen = set(verdicts)
    if RED in seen:
        return RED
    if not recordings_validated or rejected or AMBER in seen:
        return AMBER
    return GREEN


def keeps_verdict(earlier: str | None) -> bool:
    """Whether a day whose summary says ``earlier`` keeps it over a config-error placeholder.

    A run made before the file broke proved that day; a placeholder run proves nothing.
    """
    return earlier in VERDICTS
