"""Project settings read at run time: the environment first, then an Airflow Variable.

contract §8.1: parse-time settings are environment variables only (a DAG file never reads a
Variable); run-time settings may also come from an Airflow Variable of the same name in lower
case. This is the one place that lookup lives (``CC_INTAKE_OPS_EMAILS`` today; the other
run-time settings of §8.1 belong here too). Only task bodies, notifiers and callbacks call
:func:`runtime_setting`, never module-level code or DAG construction.
"""

from __future__ import annotations

import logging
import os

from include.cc_intake.config import split_emails

log = logging.getLogger(__name__)

OPS_EMAILS = "CC_INTAKE_OPS_EMAILS"
# Retention of personal data (contract §8.1, §10.3, #12): read by the housekeeping DAG's tasks.
RETENTION_SETTINGS = (
    "CC_INTAKE_RETENTION_RECORDINGS",
    "CC_INTAKE_RETENTION_DIGITAL",
    "CC_INTAKE_RETENTION_DRY_RUN",
    "CC_INTAKE_RETENTION_PURGE_INCOMPLETE",
)


def runtime_setting(name: str, default: str | None = None) -> str | None:
    """``$NAME`` when set and not blank, else the Airflow Variable ``name.lower()``, else
    ``default``. A Variable that cannot be read (no metadata DB, no supervisor) counts as unset.
    """
    value = os.environ.get(name, "").strip()
    if value:
        return value
    try:
        from airflow.sdk import Variable

        found = Variable.get(name.lower(), default=None)
    except Exception as exc:  # any backend failure: the caller falls back, and we say why
        log.warning("cannot read the Airflow Variable %s (%s)", name.lower(), exc)
        return default
    text = str(found).strip() if found is not None else ""
    return text or default


def ops_emails() -> list[str]:
    """The project-wide operations list (``CC_INTAKE_OPS_EMAILS``), invalid entries dropped."""
    valid, invalid = split_emails(runtime_setting(OPS_EMAILS) or "")
    if invalid:
        log.warning("%s: ignoring what is not an e-mail address: %s", OPS_EMAILS, invalid)
    return valid
