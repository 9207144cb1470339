"""The daily housekeeping DAG: retention of personal data (contract §10.3, #12).

One task per provider, ``purge_<provider id>``, applies :mod:`include.cc_intake.retention`
with the run-time settings (``CC_INTAKE_RETENTION_*``, environment first, then the Airflow
Variable in lower case) and the provider's YAML ``retention:`` override. A dry run
(``CC_INTAKE_RETENTION_DRY_RUN``, the default) only journals what would go.

Parsing stays cheap: the provider files are read as the ingest factory reads them, nothing
else; the settings are read inside the tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable

from include.cc_intake import constants as C
from include.cc_intake import messages
from include.cc_intake.airflow.factory import START_DATE, provider_folders
from include.cc_intake.airflow.notify import IntakeFailureNotifier
from include.cc_intake.config import ProviderConfig, load_providers

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

DAG_ID = "cc_intake_housekeeping"
TAG_HOUSEKEEPING = "housekeeping"
SCHEDULE = "0 5 * * *"  # UTC, after the night's intake and before the working day
TASK_PREFIX = "purge_"

DOC_MD = """# Retention of personal data

Deletes the landed recordings (`recordings/<provider>/<day>/`) and CRM content
(`digital/<provider>/<day>/interactions.jsonl`) of days older than the retention; keeps the
manifests, reports and proof files; marks each purged day in its `summary.json` (`purged_at`)
and appends every deletion to `<data_root>/audit/retention.jsonl`.

Settings (environment variable, or Airflow Variable in lower case):
`CC_INTAKE_RETENTION_RECORDINGS`,
`CC_INTAKE_RETENTION_DIGITAL` (e.g. `90d`; unset = keep), `CC_INTAKE_RETENTION_DRY_RUN`
(default `1`: only lists what would go), `CC_INTAKE_RETENTION_PURGE_INCOMPLETE` (default `0`:
a day that is not green is kept). A provider's YAML `retention:` overrides them.
"""


class RetentionFailureNotifier(IntakeFailureNotifier):
    """E-mails the provider's ``alert_emails`` when its purge fails for good (not a processed
    day's failure: its own e-mail, dated by the housekeeping run)."""

    def build_email(self, context: Mapping[str, Any]) -> messages.Email:
        from include.cc_intake.airflow.delivery import error_text
        from include.cc_intake.airflow.links import base_url, run_link, task_link

        ti = context.get("ti") or context.get("task_instance")
        run = context.get("dag_run")
        task_id = str(getattr(ti, "task_id", "") or "")
        run_id = str(getattr(run, "run_id", "") or getattr(ti, "run_id", ""))
        moment = getattr(run, "logical_date", None) or getattr(run, "run_after", None)
        day = moment.astimezone(ZoneInfo(self.timezone)).date() if moment else "inconnue"
        try_number = getattr(ti, "try_number", None)
        base = base_url()
        return messages.retention_failed(
            messages.Failure(
                provider_id=self.provider_id,
                provider_name=self.provider_name,
                day=day,
                run_link=run_link(DAG_ID, run_id, base=base),
                task_link=task_link(DAG_ID, run_id, task_id, base=base),
                task_id=task_id,
                error=error_text(context.get("exception")),
                try_number=try_number if isinstance(try_number, int) else None,
            )
        )


class ApplyRetentionOperator(BaseOperator):
    """Purge (or, in a dry run, list) one provider's days past their retention.

    :param provider: the provider's validated configuration.
    """

    ui_color = "#eaeded"

    def __init__(self, *, provider: ProviderConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.provider = provider

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake import retention
        from include.cc_intake.airflow.locks import day_lock
        from include.cc_intake.airflow.runtime_settings import runtime_setting
        from include.cc_intake.layout import data_root

        settings = retention.for_provider(
            retention.project_settings(runtime_setting), self.provider.retention
        )
        if not settings.active:
            self.log.info("%s: no retention set, everything is kept", self.provider.id)
            return {"provider": self.provider.id, "dry_run": settings.dry_run, "days": []}
        run = context["dag_run"]
        # The run's own date, not the wall clock: a re-run of an old housekeeping run purges
        # what it would have purged then (a manual trigger has no logical date: run_after).
        moment = run.logical_date or getattr(run, "run_after", None) or dt.datetime.now(dt.UTC)
        today = moment.astimezone(self.provider.tz).date()
        root = data_root()
        planned = retention.plan(root, self.provider.id, today, settings)
        outcome = retention.execute(root, planned, dry_run=settings.dry_run, lock=day_lock)
        verb = "would delete" if settings.dry_run else "deleted"
        for day in outcome.days:
            if day["action"] == "refused":
                self.log.warning("%s", day["reason"])
            else:
                self.log.info(
                    "%s %s: %s %s (%d files, %d bytes)",
                    self.provider.id,
                    day["day"],
                    verb,
                    "+".join(day["kinds"]),
                    day["files"],
                    day["bytes"],
                )
        self.log.info(
            "%s: retention recordings=%s digital=%s (days), today %s, %d day(s) past it%s; "
            "journal %s",
            self.provider.id,
            settings.recordings,
            settings.digital,
            today,
            len(outcome.days),
            " (DRY RUN: nothing deleted, set CC_INTAKE_RETENTION_DRY_RUN=0)"
            if settings.dry_run
            else "",
            root / retention.JOURNAL,
        )
        return outcome.as_dict()


def build_housekeeping_dag() -> DAG:
    """The daily housekeeping DAG over every valid provider file (broken ones are skipped:
    their own placeholder DAG reports them)."""
    providers: list[ProviderConfig] = []
    seen: set[str] = set()
    for folder in provider_folders():
        if not folder.is_dir():
            continue
        good, _ = load_providers(folder)
        for cfg in good:
            if cfg.id not in seen:
                seen.add(cfg.id)
                providers.append(cfg)
    with DAG(
        dag_id=DAG_ID,
        description="Retention of personal data: purge landed days past their retention",
        schedule=CronTriggerTimetable(SCHEDULE, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[C.TAG_INTAKE, TAG_HOUSEKEEPING],
        doc_md=DOC_MD,
        default_args={
            "owner": C.DEFAULT_OWNER,
            "retries": 1,
            "retry_delay": dt.timedelta(minutes=10),
        },
    ) as dag:
        for cfg in sorted(providers, key=lambda c: c.id):
            ApplyRetentionOperator(
                task_id=f"{TASK_PREFIX}{cfg.id}",
                provider=cfg,
                on_failure_callback=[RetentionFailureNotifier.for_provider(cfg)],
            )
    return dag
