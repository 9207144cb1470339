"""One DAG per provider YAML, built by a single factory.

YAML carries the parameters, this module carries the graph:

    wait_for_recordings >> copy_recordings >> fetch_report >> validate_recordings
    export_digital >> validate_digital            (providers with a `digital` section)

Parsing stays cheap: nothing here touches the network, the database or a Variable.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from airflow.sdk import DAG, CronTriggerTimetable, Param

from include.cc_intake import constants as C
from include.cc_intake.airflow.tasks import (
    ConfigErrorOperator,
    CopyRecordingsOperator,
    FetchReportOperator,
    NoRetryWhenRetryCannotHelp,
    ValidateRecordingsOperator,
    WaitForRecordingsSensor,
)
from include.cc_intake.config import BrokenProvider, ProviderConfig, load_providers
from include.cc_intake.docs import provider_doc_md

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROVIDERS_DIR = PROJECT_ROOT / "include" / "providers"
SANDBOX_PROVIDERS_DIR = PROJECT_ROOT / "include" / "cc_intake" / "sandbox" / "providers"
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def provider_folders() -> list[Path]:
    """Real providers always; the sandbox's only when ``CC_INTAKE_SANDBOX=1``.

    ``CC_INTAKE_PROVIDERS_DIR`` replaces the real folder (tests, benchmarks).
    """
    folders = [Path(os.environ.get("CC_INTAKE_PROVIDERS_DIR") or PROVIDERS_DIR)]
    if os.environ.get("CC_INTAKE_SANDBOX") == "1":
        folders.append(SANDBOX_PROVIDERS_DIR)
    return folders


def default_args(cfg: ProviderConfig) -> dict[str, object]:
    from include.cc_intake.airflow.notify import IntakeFailureNotifier

    notifier = IntakeFailureNotifier(
        provider_id=cfg.id,
        provider_name=cfg.name,
        timezone=cfg.timezone,
        alert_emails=cfg.alert_emails,
    )
    return {
        "owner": cfg.owner,
        "retries": 3,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
        # A wrong host key, a config error, an unsafe path: fail at once, retries cannot help.
        "retry_policy": NoRetryWhenRetryCannotHelp(),
        "on_failure_callback": [notifier],
    }


def build_provider_dag(cfg: ProviderConfig, *, sandbox: bool = False) -> DAG:
    """The provider's daily DAG: one run per processed day."""
    from include.cc_intake.airflow.notify import build_deadline_alert

    tags = [C.TAG_INTAKE, f"provider:{cfg.id}"]
    if sandbox:
        tags.append(C.TAG_SANDBOX)
    if cfg.digital is not None:
        tags.append(C.TAG_DIGITAL)
    deadline = build_deadline_alert(cfg)
    with DAG(
        dag_id=cfg.dag_id,
        description=f"{cfg.name}: J-1 recordings, report and CRM export, due {cfg.deadline}",
        schedule=CronTriggerTimetable(cfg.schedule, timezone=cfg.timezone),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=C.MAX_ACTIVE_RUNS,
        tags=tags,
        doc_md=provider_doc_md(cfg),
        default_args=default_args(cfg),
        params={
            # `format: date` is checked (Airflow validates with a jsonschema FormatChecker)
            # when the run is created: a trigger with anything but YYYY-MM-DD is refused
            # before any task runs, and never reaches a path or a mail header.
            "target_date": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Processed day YYYY-MM-DD to (re)process instead of J-1",
            )
        },
        deadline=deadline,
    ) as dag:
        # One copy step per provider at a time keeps its bandwidth cap honest across runs.
        wait = WaitForRecordingsSensor(task_id=C.TASK_WAIT, provider=cfg)
        copy = CopyRecordingsOperator(task_id=C.TASK_COPY, provider=cfg, max_active_tis_per_dag=1)
        report = FetchReportOperator(task_id=C.TASK_REPORT, provider=cfg, max_active_tis_per_dag=1)
        validate = ValidateRecordingsOperator(task_id=C.TASK_VALIDATE, provider=cfg)
        wait >> copy >> report >> validate
        if cfg.digital is not None:
            from include.cc_intake.airflow.tasks import (
                ExportDigitalOperator,
                ValidateDigitalOperator,
            )

            export = ExportDigitalOperator(task_id=C.TASK_EXPORT, provider=cfg)
            export >> ValidateDigitalOperator(task_id=C.TASK_VALIDATE_DIGITAL, provider=cfg)
    return dag


def build_config_error_dag(broken: BrokenProvider) -> DAG:
    """A visible placeholder for a broken YAML: its only task fails with the error."""
    first_line = broken.error.splitlines()[0]
    with DAG(
        dag_id=broken.dag_id,
        description=f"CONFIG ERROR: {first_line}"[:200],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=[C.TAG_INTAKE, C.TAG_CONFIG_ERROR],
        doc_md=f"# Configuration error\n\n```\n{broken.error}\n```\n\nFix `{broken.path.name}`.",
        default_args={"owner": C.DEFAULT_OWNER, "retries": 0},
    ) as dag:
        ConfigErrorOperator(task_id=C.TASK_CONFIG_ERROR, error=broken.error)
    return dag


def build_all() -> list[DAG]:
    """Every provider's DAG, in sorted order, plus a placeholder for each broken file."""
    dags: list[DAG] = []
    seen: set[str] = set()
    sandbox_dir = SANDBOX_PROVIDERS_DIR.resolve()
    for folder in provider_folders():
        good, broken = load_providers(folder)
        sandbox = folder.resolve() == sandbox_dir
        for cfg in good:
            if cfg.dag_id in seen:
                broken.append(
                    BrokenProvider(
                        key=f"{cfg.id}_duplicate",
                        path=folder / f"{cfg.id}.yaml",
                        error=f"{folder / (cfg.id + '.yaml')}: provider id {cfg.id!r} "
                        "is defined twice",
                    )
                )
                continue
            seen.add(cfg.dag_id)
            dags.append(build_provider_dag(cfg, sandbox=sandbox))
        for item in broken:
            if item.dag_id not in seen:
                seen.add(item.dag_id)
                dags.append(build_config_error_dag(item))
    return dags
