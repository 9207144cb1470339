"""One DAG per provider YAML, built by a single factory.

YAML carries the parameters, this module carries the graph:

    wait_for_recordings >> copy_recordings >> fetch_report >> validate_recordings
    wait_for_recordings >> recordings_on_time
    export_digital >> validate_digital            (providers with a `digital` section)
    validate_* >> confirm_to_provider             (providers with `recordings.on_complete`)
    [validate_recordings, validate_digital] >> build_worklist   (with a `sampling` section)

The copy runs once the wait is over, whatever its outcome (trigger rule ``all_done``): at
``wait_timeout`` the wait fails with its e-mail, and what did arrive still lands and is
reconciled. ``recordings_on_time`` is the leaf that keeps such a run failed.

Parsing stays cheap: nothing here touches the network, the database or a Variable.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule

from include.cc_intake import constants as C
from include.cc_intake.airflow.link_budget import task_kwargs as link_task_kwargs
from include.cc_intake.airflow.tasks import (
    ConfigErrorOperator,
    CopyRecordingsOperator,
    EndRunningDay,
    FetchReportOperator,
    NoRetryWhenRetryCannotHelp,
    ProviderOperator,
    ValidateRecordingsOperator,
    WaitForRecordingsSensor,
)
from include.cc_intake.config import (
    BrokenProvider,
    ProviderConfig,
    broken_provider,
    load_providers,
)
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

    notifier = IntakeFailureNotifier.for_provider(cfg)
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
    from include.cc_intake.airflow.deadline import build_deadline_alert

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
            "replace_digital": Param(
                False,
                type="boolean",
                description="Let a CRM export with fewer interactions replace the landed one",
            ),
            "restore": Param(
                False,
                type="boolean",
                description="Land again a day whose personal data the retention purged",
            ),
            # `format: date` is checked (Airflow validates with a jsonschema FormatChecker)
            # when the run is created: a trigger with anything but YYYY-MM-DD is refused
            # before any task runs, and never reaches a path or a mail header.
            "target_date": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Processed day YYYY-MM-DD to (re)process instead of J-1",
            ),
        },
        deadline=deadline,
        # A run that ends before its verdict must not leave its day "running" (contract §8.1).
        on_success_callback=EndRunningDay(cfg, succeeded=True),
        on_failure_callback=EndRunningDay(cfg, succeeded=False),
    ) as dag:
        # One copy step per provider at a time keeps its bandwidth cap honest across runs.
        wait = WaitForRecordingsSensor(task_id=C.TASK_WAIT, provider=cfg)
        # all_done: a wait that gave up (wait_timeout) must not cost us the files that did
        # arrive; they land and the reconciliation names the gap (contract §8.1). After a
        # wait that failed otherwise (host key, no report) the next steps fail on their own.
        # The steps that use the link: the provider's Celery queue, and the link pool when
        # CC_INTAKE_LINK_POOL names it (contract §8.1; link_budget.py).
        link = link_task_kwargs(cfg)
        copy = CopyRecordingsOperator(
            task_id=C.TASK_COPY,
            provider=cfg,
            max_active_tis_per_dag=1,
            trigger_rule=TriggerRule.ALL_DONE,
            **link,
        )
        report = FetchReportOperator(
            task_id=C.TASK_REPORT, provider=cfg, max_active_tis_per_dag=1, **link
        )
        validate = ValidateRecordingsOperator(task_id=C.TASK_VALIDATE, provider=cfg)
        wait >> copy >> report >> validate
        # A run's state is its leaves' state: without this leaf, a run whose wait gave up but
        # whose late files reconciled would end green after a "not available" e-mail. It is
        # upstream_failed then (no e-mail of its own), and succeeds at once otherwise.
        wait >> EmptyOperator(task_id=C.TASK_ON_TIME)
        if cfg.digital is not None:
            from include.cc_intake.airflow.tasks import (
                ExportDigitalOperator,
                ValidateDigitalOperator,
            )

            export = ExportDigitalOperator(task_id=C.TASK_EXPORT, provider=cfg)
            validate_digital = ValidateDigitalOperator(
                task_id=C.TASK_VALIDATE_DIGITAL, provider=cfg
            )
            export >> validate_digital
        if cfg.recordings.on_complete != "none":
            from include.cc_intake.airflow.tasks import ConfirmToProviderOperator

            # After the day's verdict is final (both validations): only a green day is
            # confirmed to the provider, a red one leaves this step upstream_failed.
            confirm = ConfirmToProviderOperator(task_id=C.TASK_CONFIRM, provider=cfg)
            validate >> confirm
            if cfg.digital is not None:
                validate_digital >> confirm
        if cfg.sampling is not None:
            from include.cc_intake.airflow.tasks import BuildWorklistOperator

            # After both validations, whatever they concluded: a red day's landed files are
            # still to be evaluated (contract §10.4). A teardown (with no setup it waits for
            # all upstream to be done, like all_done) so that the run's state stays the
            # validations': a run's state is its leaves', teardowns aside.
            worklist = BuildWorklistOperator(task_id=C.TASK_WORKLIST, provider=cfg).as_teardown()
            validations: list[ProviderOperator] = [validate]
            if cfg.digital is not None:
                validations.append(validate_digital)
            validations >> worklist
    return dag


def config_error_doc_md(broken: BrokenProvider) -> str:
    """The placeholder's Docs tab: the error, when it runs and who is told."""
    recipients = (
        ", ".join(broken.alert_emails)
        if broken.alert_emails
        else "the operations list (`CC_INTAKE_OPS_EMAILS`), since `alert_emails` cannot be read"
    )
    return (
        f"# Configuration error\n\n```\n{broken.error}\n```\n\n"
        f"Fix `{broken.path.name}`. Until then this placeholder runs daily "
        f"(`{broken.schedule}`, {broken.timezone}), marks its day `config_error` and fails, "
        f"and each failure is e-mailed to {recipients}. Once the file is valid the provider's "
        "DAG comes back at the next parse; re-run the missed days with "
        f'`airflow dags trigger {broken.dag_id} -c \'{{"target_date": "YYYY-MM-DD"}}\'`.'
    )


def build_config_error_dag(broken: BrokenProvider) -> DAG:
    """A visible placeholder for a broken YAML: its only task fails with the error, every day.

    It keeps the provider's daily schedule when the file still says it (else 06:00 UTC) and has
    the failure notifier, so a broken file is reported each day instead of silently stopping
    the provider's intake. No retries: only fixing the file helps.
    """
    from include.cc_intake.airflow.notify import IntakeFailureNotifier

    first_line = broken.error.splitlines()[0]
    notifier = IntakeFailureNotifier(
        provider_id=broken.key,
        provider_name=broken.name or broken.key,
        timezone=broken.timezone,
        # Empty when unreadable: the notifier then reads CC_INTAKE_OPS_EMAILS at run time.
        alert_emails=broken.alert_emails,
    )
    with DAG(
        dag_id=broken.dag_id,
        description=f"CONFIG ERROR: {first_line}"[:200],
        schedule=CronTriggerTimetable(broken.schedule, timezone=broken.timezone),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=C.MAX_ACTIVE_RUNS,
        tags=[C.TAG_INTAKE, C.TAG_CONFIG_ERROR],
        doc_md=config_error_doc_md(broken),
        default_args={
            "owner": C.DEFAULT_OWNER,
            "retries": 0,
            "on_failure_callback": [notifier],
        },
    ) as dag:
        ConfigErrorOperator(
            task_id=C.TASK_CONFIG_ERROR,
            error=broken.error,
            provider_id=broken.key,
            timezone=broken.timezone,
        )
    return dag


def missing_folder(folder: Path) -> BrokenProvider:
    """A provider folder that is not there: a visible placeholder, never a silent empty list."""
    if folder.resolve() == SANDBOX_PROVIDERS_DIR.resolve():
        error = (
            f"{folder}: provider folder not found. CC_INTAKE_SANDBOX=1 asks for the sandbox "
            "providers, which this installation does not ship (the production image leaves "
            "include/cc_intake/sandbox/ out): unset CC_INTAKE_SANDBOX."
        )
        return broken_provider(folder, error, key="sandbox")
    return broken_provider(folder, f"{folder}: provider folder not found (CC_INTAKE_PROVIDERS_DIR)")


def build_all() -> list[DAG]:
    """Every provider's DAG, in sorted order, plus a placeholder for each broken file and each
    missing folder."""
    dags: list[DAG] = []
    seen: set[str] = set()
    sandbox_dir = SANDBOX_PROVIDERS_DIR.resolve()
    for folder in provider_folders():
        if not folder.is_dir():
            placeholder = missing_folder(folder)
            if placeholder.dag_id not in seen:
                seen.add(placeholder.dag_id)
                dags.append(build_config_error_dag(placeholder))
            continue
        good, broken = load_providers(folder)
        sandbox = folder.resolve() == sandbox_dir
        for cfg in good:
            if cfg.dag_id in seen:
                path = folder / f"{cfg.id}.yaml"
                broken.append(
                    broken_provider(
                        path,
                        f"{path}: provider id {cfg.id!r} is defined twice",
                        key=f"{cfg.id}_duplicate",
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
