"""The delivery-deadline alert: the DAG's ``DeadlineAlert`` and its triggerer callback.

:func:`build_deadline_alert` gives the DAG factory the provider's ``deadline``. When a scheduled
run misses it, the scheduler hands :func:`deadline_missed_callback` to the triggerer, which
e-mails that the day is late (docs/alerts.md says what it receives and why it filters runs).

Serialized DAGs store the callback by its import path,
``include.cc_intake.airflow.deadline.deadline_missed_callback``: renaming or moving it breaks
the deadlines of DAGs already serialized until they are parsed again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from include.cc_intake import messages
from include.cc_intake.airflow.delivery import DEFAULT_SMTP_CONN_ID, adeliver
from include.cc_intake.airflow.links import run_link
from include.cc_intake.airflow.runs import day_of_run
from include.cc_intake.constants import dag_id_of

if TYPE_CHECKING:
    from include.cc_intake.config import ProviderConfig

log = logging.getLogger(__name__)

DEADLINES_ENV = "CC_INTAKE_DEADLINES"


def _state_name(state: object) -> str:
    """``"running"`` whether Airflow hands over a string or a state enum (``DagRunState``)."""
    return str(getattr(state, "value", state) or "")


def deadlines_enabled() -> bool:
    """False when ``CC_INTAKE_DEADLINES`` is ``off`` (``airflow dags test`` crashes on them)."""
    value = os.environ.get(DEADLINES_ENV, "on").strip().lower()
    return value not in {"off", "0", "false", "no"}


def deadline_callback_kwargs(
    cfg: ProviderConfig, *, smtp_conn_id: str | None = None
) -> dict[str, Any]:
    """Everything the triggerer-side callback needs, JSON-serialisable (no config lookup there)."""
    return {
        "provider_id": cfg.id,
        "provider_name": cfg.name,
        "timezone": cfg.timezone,
        "deadline": cfg.deadline,
        "alert_emails": list(cfg.alert_emails),
        "smtp_conn_id": smtp_conn_id or DEFAULT_SMTP_CONN_ID,
    }


def build_deadline_alert(
    cfg: ProviderConfig, *, smtp_conn_id: str | None = None
) -> DeadlineAlert | None:
    """The provider's delivery deadline: ``deadline`` (local, day J) for the run processing J-1.

    The reference is the run's logical date (the scheduled tick, day J at ``schedule``), so the
    interval is ``deadline - schedule time``. ``None`` when deadlines are off.
    """
    if not deadlines_enabled():
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=cfg.deadline_offset,
        callback=AsyncCallback(
            deadline_missed_callback,
            kwargs=deadline_callback_kwargs(cfg, smtp_conn_id=smtp_conn_id),
        ),
        name=f"livraison avant {cfg.deadline} ({cfg.timezone})",
    )


async def _ask_airflow(what: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call a Task SDK lookup from a worker thread; ``None`` if unavailable (outside Airflow)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, **kwargs), timeout=30)
    except Exception as exc:  # outside the triggerer there is no supervisor to ask
        log.info(
            "could not read the %s from Airflow (%s): using the deadline's snapshot", what, exc
        )
        return None


async def deadline_missed_callback(
    *,
    provider_id: str,
    provider_name: str,
    timezone: str,
    deadline: str,
    alert_emails: list[str],
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    context: Mapping[str, Any] | None = None,
    **_: Any,
) -> str:
    """Deadline Alert callback (triggerer): e-mail that the day is late, for scheduled runs only.

    ``context`` is what the scheduler attaches when the deadline is missed:
    ``{"dag_run": <DAGRunResponse as JSON>, "deadline": {"id", "deadline_time"}}``. Re-runs and
    backfills of a past day, and runs that already failed (their failure e-mail went out), are
    skipped. Returns a short outcome, which Airflow stores as the callback's output.
    """
    dag_run: Mapping[str, Any] = (context or {}).get("dag_run") or {}
    dag_id = str(dag_run.get("dag_id") or dag_id_of(provider_id))
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "")
    run_type = str(dag_run.get("run_type") or "")
    if run_type != "scheduled":
        log.info("deadline of %s/%s ignored: run type %r", dag_id, run_id, run_type or None)
        return f"skipped: run type {run_type or 'unknown'}"

    # The snapshot was taken when the scheduler noticed the miss; ask for the current state,
    # since a run that fails before its deadline still fires it (apache/airflow#60927).
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    state = await _ask_airflow(
        "run state", RuntimeTaskInstance.get_dagrun_state, dag_id=dag_id, run_id=run_id
    )
    state = _state_name(state) or _state_name(dag_run.get("state"))
    if state in ("failed", "success"):
        log.info("deadline of %s/%s ignored: the run is already %s", dag_id, run_id, state)
        return f"skipped: run {state}"

    found = await _ask_airflow(
        "task states", RuntimeTaskInstance.get_task_states, dag_id=dag_id, run_ids=[run_id]
    )
    steps = found.get(run_id) if isinstance(found, Mapping) else None
    if isinstance(steps, Mapping):
        steps = {str(task): (_state_name(ti_state) or None) for task, ti_state in steps.items()}

    day = day_of_run(
        tz=timezone,
        logical_date=dag_run.get("logical_date"),
        run_after=dag_run.get("run_after"),
        conf=dag_run.get("conf"),
    )
    email = messages.deadline_missed(
        provider_id=provider_id,
        provider_name=provider_name,
        day=day,
        run_link=run_link(dag_id, run_id),
        deadline=deadline,
        timezone=timezone,
        run_state=state or None,
        steps=steps or None,
    )
    if not alert_emails:
        log.warning("no alert_emails for %s: deadline e-mail not sent", provider_id)
        return "skipped: no recipients"
    kept = await adeliver(email, alert_emails, dag_id=dag_id, day=day, smtp_conn_id=smtp_conn_id)
    if kept is not None:
        return f"undelivered: kept in {kept}"
    log.info("deadline alert sent to %d recipient(s): %s", len(alert_emails), email.subject)
    return f"sent: {email.subject}"
