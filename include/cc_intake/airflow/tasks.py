"""The provider DAG's operators: thin Airflow shells around the domain modules.

Each operator reads and writes one provider-day partition, passes only small metadata
through XCom, and raises the project's exceptions with provider, day and file named.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import (
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    RetryDecision,
    RetryPolicy,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from include.cc_intake import constants as C
from include.cc_intake import eventloop
from include.cc_intake.airflow.link_budget import copy_rate, with_rate
from include.cc_intake.airflow.links import proof_url
from include.cc_intake.airflow.locks import day_lock
from include.cc_intake.airflow.remote import open_remote, read_report
from include.cc_intake.airflow.sftp import parse_report_bytes
from include.cc_intake.config import ProviderConfig
from include.cc_intake.days import processed_day
from include.cc_intake.errors import (
    ConfigError,
    IntakeError,
    ManifestError,
    ReconciliationError,
    RecordingsNotReady,
    ReportError,
    TransferError,
    ValidationError,
)
from include.cc_intake.layout import (
    DayLayout,
    atomic_writer,
    data_root,
    remove_stale_tmp,
    run_token,
)
from include.cc_intake.naming import render_folder
from include.cc_intake.reconcile import recording_gaps

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from include.cc_intake.recordings import Readiness

log = logging.getLogger(__name__)

# XCom the wait leaves when it gives up at ``wait_timeout`` (the copy then runs anyway).
WAIT_OUTCOME_KEY = "wait_outcome"
WAIT_TIMED_OUT = "timed_out"


class RecordingsNotReadyFailure(RecordingsNotReady, AirflowFailException):
    """The wait timed out: fail at once, a retry would only wait again."""


class ReconciliationFailure(ReconciliationError, AirflowFailException):
    """The day does not match its report: retrying changes nothing until the data does."""


class ValidationFailure(ValidationError, AirflowFailException):
    """The CRM export failed its checks: retrying changes nothing until the data does."""


def replace_digital(context: Context) -> bool:
    """The run's ``replace_digital`` conf (or Param): may a smaller export replace the landed?"""
    conf = context["dag_run"].conf or {}
    params = context.get("params") or {}
    value = conf.get("replace_digital", params.get("replace_digital"))
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ConfigError(
        f"run conf replace_digital must be true or false, got {value!r} "
        '(e.g. {"target_date": "2026-11-25", "replace_digital": true})'
    )


def restore_purged(context: Context) -> bool:
    """The run's ``restore`` conf (or Param): may it land a day the retention purged again?"""
    conf = context["dag_run"].conf or {}
    params = context.get("params") or {}
    value = conf.get("restore", params.get("restore"))
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ConfigError(
        f"run conf restore must be true or false, got {value!r} "
        '(e.g. {"target_date": "2026-11-25", "restore": true})'
    )


def refuse_purged_day(
    context: Context, layout: DayLayout, kind: Literal["recordings", "digital"]
) -> None:
    """Fail a re-run of a purged day (contract §10.3, #12) unless its conf says ``restore``."""
    from include.cc_intake.retention import refuse_purged

    refuse_purged(layout, kind, restore=restore_purged(context), log=log.warning)


def lift_purged_day(
    context: Context, layout: DayLayout, kind: Literal["recordings", "digital"]
) -> None:
    """After a ``restore`` run landed ``kind`` again: the day is no longer purged for it."""
    from include.cc_intake.retention import lift_purged

    if restore_purged(context):
        with day_lock(layout):
            lifted = lift_purged(layout, kind)
        if lifted:
            log.info("%s %s: %s landed again, purge mark lifted", layout.provider, layout.day, kind)


class NoRetryWhenRetryCannotHelp(RetryPolicy):
    """Fail at once on the errors that errors.py marks ``retryable = False``.

    A wrong host key, a config error or an unsafe landing path is the same on every try: the
    back-off would only delay the e-mail that asks someone to act. Every other failure keeps the
    DAG's retries. The policy is the tasks' ``retry_policy`` (factory ``default_args``), so
    operators and the sensor alike are covered, and the exception keeps its own type for the
    notifier.
    """

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        if isinstance(exception, IntakeError) and not exception.retryable:
            return RetryDecision.fail(reason=f"{type(exception).__name__} is not retryable")
        return RetryDecision.default()

    # Only a has_retry_policy flag is serialised with the DAG; these keep the contract anyway.
    def serialize(self) -> dict[str, Any]:
        return {}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> NoRetryWhenRetryCannotHelp:
        return cls()


class ProofLink(BaseOperatorLink):
    """One click from the task to the day's validation page (pushed by the task as XCom)."""

    name = "Validation page"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value or "")


def run_attempt(run: Any) -> str:
    """Which attempt of a run this is: a cleared run keeps its id, its ``clear_number`` grows."""
    return str(getattr(run, "clear_number", 0) or 0)


class ProviderDayMixin:
    """What every task needs: the provider, the processed day and its folders."""

    provider: ProviderConfig

    def day(self, context: Context) -> dt.date:
        run = context["dag_run"]
        return processed_day(
            tz=self.provider.timezone,
            logical_date=run.logical_date,
            run_after=getattr(run, "run_after", None),
            conf=run.conf,
        )

    def layout(self, context: Context) -> DayLayout:
        return DayLayout(data_root(), self.provider.id, self.day(context))

    @staticmethod
    def token(context: Context) -> str:
        return run_token(context["dag_run"].run_id)

    def mark_running(self, context: Context) -> None:
        """Mark the day ``running`` at the start of a run attempt (contract §8.1 *Evaluators*).

        Called by each root task; only the first call of an attempt writes (a verdict written
        meanwhile by a later step stays). Bookkeeping only: a write that fails is logged, the
        intake goes on (the verdict's own write reports a full disk).
        """
        from include.cc_intake.proof import write_running_summary

        run = context["dag_run"]
        try:
            layout = self.layout(context)
            with day_lock(layout):
                written = write_running_summary(
                    layout.quality_dir,
                    provider=self.provider.id,
                    day=layout.day,
                    run_id=run.run_id,
                    attempt=run_attempt(run),
                    timezone=self.provider.timezone,
                )
        except (OSError, IntakeError) as exc:
            log.error("%s: could not mark the day running: %s", self.provider.id, exc)
            return
        if written is not None:
            log.info("%s %s: day marked running in %s", self.provider.id, layout.day, written)

    def keep_proof(
        self,
        context: Context,
        layout: DayLayout,
        kind: Literal["recordings", "digital"],
        result: dict[str, Any],
    ) -> str:
        """Write the proof page and the day's summary, link the page from the task; its URL."""
        from include.cc_intake.proof import write_proof, write_summary

        with day_lock(layout):
            # Earlier versions locked with a file inside the proof folder: not part of the proof.
            (layout.quality_dir / ".summary.lock").unlink(missing_ok=True)
            _, html_path = write_proof(layout.quality_dir, kind, result)
            write_summary(
                layout.quality_dir,
                provider=self.provider.id,
                day=layout.day,
                recordings=result if kind == "recordings" else None,
                digital=result if kind == "digital" else None,
                run_id=context["dag_run"].run_id,  # the overview links the day to its run
                timezone=self.provider.timezone,
                attempt=run_attempt(context["dag_run"]),
            )
        url = proof_url(self.provider.id, layout.day, f"{kind}.html")
        context["ti"].xcom_push(key=ProofLink().xcom_key, value=url)
        log.info("%s %s: proof page %s (%s)", self.provider.id, layout.day, html_path, url)
        for warning in result.get("warnings") or []:
            log.warning("%s %s: %s", self.provider.id, layout.day, warning)
        return url


class ProviderOperator(ProviderDayMixin, BaseOperator):
    """Base of the provider-day operators.

    :param provider: the provider's validated configuration.
    """

    def __init__(self, *, provider: ProviderConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.provider = provider


class WaitForRecordingsSensor(ProviderDayMixin, BaseSensorOperator):
    """Wait until the day's report is published and every direction it expects is complete.

    Complete: its files are settled and, with those we hold that the server no longer lists,
    as many as the report counts (within ``daily_report.tolerance``).

    :param provider: the provider's validated configuration.
    """

    ui_color = "#fdf2d0"

    def __init__(self, *, provider: ProviderConfig, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("timeout", provider.recordings.wait_timeout)
        kwargs.setdefault("poke_interval", provider.recordings.poll_interval.total_seconds())
        super().__init__(**kwargs)
        self.provider = provider
        self._last_seen = "nothing listed yet"
        self._last_readiness: Readiness | None = None

    def poke(self, context: Context) -> bool:
        from include.cc_intake.manifest import landed_index, read_manifest
        from include.cc_intake.recordings import assess_readiness, held_files, list_day

        day = self.day(context)
        layout = self.layout(context)
        cfg = self.provider.recordings
        # A purged day is refused before any wait: its files may be long gone from the server.
        refuse_purged_day(context, layout, "recordings")

        async def look() -> Readiness:
            async with open_remote(self.provider, day) as remote:
                first = await list_day(remote, cfg, day)
                content = await read_report(remote, self.provider, day)
                await asyncio.sleep(cfg.settle.total_seconds())
                second = await list_day(remote, cfg, day)
            expected = None
            note = f"report {render_folder(self.provider.daily_report.path, day)} not found"
            if content is not None:
                expected = parse_report_bytes(content, self.provider, day).counts
            # What an earlier run landed and the server no longer lists still counts toward
            # the report's number (contract §8.1): a purge after a first run is no gap.
            previous = landed_index(read_manifest(layout.manifest, cfg.group_names))
            return assess_readiness(
                first,
                second,
                cfg=cfg,
                day=day,
                now=time.time(),
                expected=expected,
                report_note=note,
                held=held_files(previous, second, layout),
                allowed_gap=self.provider.daily_report.allowed_gap,
            )

        readiness = eventloop.run(look())
        self._last_readiness = readiness
        self._last_seen = readiness.describe()
        self.log.info("%s %s: %s", self.provider.id, day, self._last_seen)
        return bool(readiness.ready)

    def execute(self, context: Context) -> Any:
        self.mark_running(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            readiness = self._last_readiness
            day = self.day(context)
            # The copy, report and validation steps still run (trigger rule all_done on the
            # copy): what did arrive lands, and the reconciliation names the gap.
            context["ti"].xcom_push(key=WAIT_OUTCOME_KEY, value=WAIT_TIMED_OUT)
            raise RecordingsNotReadyFailure(
                f"recordings for {self.provider.id} {day} not available after "
                f"{self.provider.recordings.wait_timeout}: {self._last_seen}",
                provider=self.provider.id,
                day=day,
                directions=(
                    {d.direction: d.facts() for d in readiness.directions} if readiness else None
                ),
                waited=str(self.provider.recordings.wait_timeout),
            ) from None


class CopyRecordingsOperator(ProviderOperator):
    """List the day once, copy new or changed recordings, write the complete manifest.

    :param provider: the provider's validated configuration.
    """

    ui_color = "#d6eaf8"

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake.recordings import copy_day

        self._skip_after_a_broken_wait(context)
        day = self.day(context)
        layout = self.layout(context)
        refuse_purged_day(context, layout, "recordings")
        # The link's budget per pool slot and the provider's own cap: the lower wins (#11).
        rate = copy_rate(self.provider)
        provider = with_rate(self.provider, rate)
        if rate is not None:
            self.log.info("%s %s: copying at most %d bytes/s", self.provider.id, day, rate)

        async def run() -> Any:
            async with open_remote(self.provider, day) as remote:
                return await copy_day(
                    remote,
                    provider,
                    day,
                    layout=layout,
                    token=self.token(context),
                    on_progress=self.log.info,
                )

        summary = eventloop.run(run())
        for direction, counts in summary.directions.items():
            self.log.info("%s %s %s: %s", self.provider.id, day, direction, counts)
        if summary.failures:
            shown = "; ".join(summary.failures[:5])
            more = f" (+{len(summary.failures) - 5} more)" if len(summary.failures) > 5 else ""
            raise TransferError(
                f"{self.provider.id} {day}: {len(summary.failures)} recording(s) not copied: "
                f"{shown}{more}. The manifest {layout.manifest} lists them as failed and what "
                "landed; a retry resumes.",
                provider=self.provider.id,
                day=day,
                files=summary.failures,
            )
        lift_purged_day(context, layout, "recordings")
        return summary.as_dict()

    def _skip_after_a_broken_wait(self, context: Context) -> None:
        """Skip when the wait failed for another reason than ``wait_timeout``.

        The copy's trigger rule is ``all_done`` so that what arrived by the timeout still
        lands. A wait that failed otherwise (a wrong host key, a config error) has sent its
        e-mail already; the copy would fail the same way and send a second one. When the
        wait's state cannot be read, the copy runs: a duplicate e-mail beats a lost day.
        """
        ti = context["ti"]
        if ti.xcom_pull(task_ids=C.TASK_WAIT, key=WAIT_OUTCOME_KEY) == WAIT_TIMED_OUT:
            return
        try:
            found = ti.get_task_states(
                dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[C.TASK_WAIT]
            )
            state = (found.get(ti.run_id) or {}).get(C.TASK_WAIT)
        except Exception as exc:  # the copy must not depend on this lookup
            self.log.warning("could not read the state of %s (%s): copying", C.TASK_WAIT, exc)
            return
        if str(getattr(state, "value", state)) == "failed":
            raise AirflowSkipException(
                f"{self.provider.id} {self.day(context)}: {C.TASK_WAIT} failed before "
                "wait_timeout (its e-mail says why); nothing to copy until it passes"
            )


class FetchReportOperator(ProviderOperator):
    """Land the provider's end-of-day report under reports/<provider>/<day>/ and parse it.

    :param provider: the provider's validated configuration.
    """

    ui_color = "#e8daef"

    def execute(self, context: Context) -> dict[str, Any]:
        day = self.day(context)
        layout = self.layout(context)
        remote = render_folder(self.provider.daily_report.path, day)

        async def fetch() -> bytes | None:
            async with open_remote(self.provider, day) as remote:
                return await read_report(remote, self.provider, day)

        content = eventloop.run(fetch())
        if content is None:
            raise ReportError(
                f"{self.provider.id} {day}: end-of-day report {remote} not found on the server",
                provider=self.provider.id,
                day=day,
            )
        report = parse_report_bytes(content, self.provider, day)
        final = layout.reports_dir / Path(remote).name
        with atomic_writer(final, self.token(context), root=layout.root, binary=True) as out:
            out.write(content)
        self.log.info("%s %s: report %s says %s", self.provider.id, day, remote, report.counts)
        return {"path": str(final), "counts": dict(report.counts)}


class ValidateRecordingsOperator(ProviderOperator):
    """Reconcile the manifest with the report in Great Expectations and keep the proof.

    :param provider: the provider's validated configuration.
    """

    ui_color = "#d5f5e3"
    operator_extra_links = (ProofLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake.gx_suites import validate_recordings
        from include.cc_intake.report import parse_report

        day = self.day(context)
        layout = self.layout(context)
        name = Path(render_folder(self.provider.daily_report.path, day)).name
        report = parse_report(
            layout.reports_dir / name,
            self.provider.daily_report,
            provider=self.provider.id,
            day=day,
        )
        result = validate_recordings(layout.manifest, report, self.provider, day)
        self._note_backup(layout, result)
        url = self.keep_proof(context, layout, "recordings", result)
        if not result.get("success"):
            rec = result.get("reconciliation") or {}
            raise ReconciliationFailure(
                f"{result.get('failure')} — proof: {url}",
                provider=self.provider.id,
                day=day,
                recordings={
                    direction: {"expected": d.get("expected"), "got": d.get("got")}
                    for direction, d in (rec.get("directions") or {}).items()
                },
                gaps=recording_gaps(rec),
                proof=url,
            )
        return {"success": True, "proof": url}

    def _note_backup(self, layout: DayLayout, result: dict[str, Any]) -> None:
        """Name the backup endpoints that served the day (proof page, summary, overview)."""
        from include.cc_intake.manifest import read_manifest, served_by_backup

        cfg = self.provider.recordings
        backup = served_by_backup(read_manifest(layout.manifest, cfg.group_names), cfg.conn_id)
        if backup:
            result["served_by_backup"] = backup


class ExportDigitalOperator(ProviderOperator):
    """Export the day's CRM interactions to digital/<provider>/<day>/interactions.jsonl.

    :param provider: the provider's validated configuration (with a ``digital`` section).
    """

    ui_color = "#fadbd8"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.http.hooks.http import HttpHook

        from include.cc_intake.crm import export_day

        digital = self.provider.digital
        assert digital is not None
        self.mark_running(context)
        day = self.day(context)
        layout = self.layout(context)
        refuse_purged_day(context, layout, "digital")
        hook = HttpHook(method="GET", http_conn_id=digital.http_conn_id)
        # The session carries the connection's auth and headers; HttpHook.run is not used
        # because its check_response logs whole bodies, and conversations are personal data.
        session = hook.get_conn()
        result = export_day(
            session,
            hook.base_url,
            digital,
            provider=self.provider.id,
            day=day,
            tz=self.provider.tz,
            dest=layout.digital_dir / "interactions.jsonl",
            run_token=self.token(context),
            replace=replace_digital(context),
        )
        remove_stale_tmp(layout.root / "digital" / self.provider.id)
        lift_purged_day(context, layout, "digital")
        self.log.info(
            "%s %s: %d interactions in %d pages (CRM states %s, %d duplicates dropped, "
            "%d conflicting ids)",
            self.provider.id,
            day,
            result.records,
            result.pages,
            result.stated_total,
            result.duplicates_dropped,
            result.conflicting_ids,
        )
        return {
            "path": str(result.path),
            "records": result.records,
            "stated_total": result.stated_total,
            "pages": result.pages,
            "duplicates_dropped": result.duplicates_dropped,
            "conflicting_ids": result.conflicting_ids,
            "conflicting_examples": list(result.conflicting_examples),
            "previous": result.previous,
        }


class ValidateDigitalOperator(ProviderOperator):
    """Validate the exported interactions in Great Expectations and keep the proof.

    :param provider: the provider's validated configuration (with a ``digital`` section).
    """

    ui_color = "#d5f5e3"
    operator_extra_links = (ProofLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake.gx_suites import failed_checks, validate_digital

        day = self.day(context)
        layout = self.layout(context)
        exported = context["ti"].xcom_pull(task_ids=C.TASK_EXPORT) or {}
        result = validate_digital(
            layout.digital_dir / "interactions.jsonl",
            exported.get("stated_total"),
            self.provider,
            day,
            export=exported,
        )
        url = self.keep_proof(context, layout, "digital", result)
        if not result.get("success"):
            raise ValidationFailure(
                f"{result.get('failure')} — proof: {url}",
                provider=self.provider.id,
                day=day,
                failed_expectations=failed_checks(result),
                proof=url,
            )
        return {"success": True, "proof": url}


class EndRunningDay:
    """DAG callback at the end of a run: a day still ``running`` gets its verdict back.

    The validations replace ``running`` with the day's verdict; a run that ends before them
    (a wrong host key, a report that never came) would leave it ``running`` for good. This
    restores the earlier verdict, or marks the day ``red`` when it had none.

    :param provider: the provider's validated configuration.
    :param succeeded: whether this is the DAG's success callback.
    """

    def __init__(self, provider: ProviderConfig, *, succeeded: bool) -> None:
        self.provider = provider
        self.succeeded = succeeded
        self.__name__ = f"end_running_day({'success' if succeeded else 'failure'})"

    def __call__(self, context: Context) -> None:
        from include.cc_intake.proof import finish_running_summary

        run = context.get("dag_run")
        if run is None:  # a callback without its run: nothing to match the mark against
            log.warning("%s: run end without its dag_run, summary left as is", self.provider.id)
            return
        try:
            day = processed_day(
                tz=self.provider.timezone,
                logical_date=run.logical_date,
                run_after=getattr(run, "run_after", None),
                conf=run.conf,
            )
            layout = DayLayout(data_root(), self.provider.id, day)
            with day_lock(layout):
                written = finish_running_summary(
                    layout.quality_dir,
                    run_id=run.run_id,
                    attempt=run_attempt(run),
                    succeeded=self.succeeded,
                )
        except (OSError, IntakeError) as exc:
            log.error("%s: could not end the day's running mark: %s", self.provider.id, exc)
            return
        if written is not None:
            log.warning(
                "%s %s: run ended before its verdict; summary %s", self.provider.id, day, written
            )


class ConfigErrorOperator(BaseOperator):
    """Stand-in task of a provider whose YAML is broken: fails with the validation error.

    Before failing it marks its processed day ``config_error`` in ``summary.json`` (for the
    overview and the digest); the failure e-mail comes from the DAG's failure notifier.

    :param error: the validation error, naming the file and the field.
    :param provider_id: the placeholder's provider id (the DAG is ``ingest_<provider_id>``).
    :param timezone: the zone of the processed day (read from the file, else UTC).
    """

    ui_color = "#f5b7b1"

    def __init__(
        self,
        *,
        error: str,
        provider_id: str | None = None,
        timezone: str = "UTC",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.provider_id = provider_id
        self.timezone = timezone

    def execute(self, context: Context) -> None:
        if self.provider_id:
            try:
                self._mark_day(context, self.provider_id)
            except OSError as exc:  # the e-mail must still say "configuration", not "disk"
                log.error("%s: could not mark the day config_error: %s", self.provider_id, exc)
        raise ConfigError(self.error, provider=self.provider_id)

    def _mark_day(self, context: Context, provider_id: str) -> None:
        from include.cc_intake.proof import write_config_error_summary

        run = context["dag_run"]
        try:
            day = processed_day(
                tz=self.timezone,
                logical_date=run.logical_date,
                run_after=getattr(run, "run_after", None),
                conf=run.conf,
            )
        except ConfigError as exc:  # a bad target_date: no day to mark, the YAML error stands
            log.warning("%s: no day marked config_error (%s)", provider_id, exc)
            return
        layout = DayLayout(data_root(), provider_id, day)
        written = write_config_error_summary(
            layout.quality_dir,
            provider=provider_id,
            day=day,
            run_id=run.run_id,
            timezone=self.timezone,
        )
        if written is None:
            log.info("%s %s: the day keeps its earlier verdict", provider_id, day)
        else:
            log.info("%s %s: day marked config_error in %s", provider_id, day, written)


class ConfirmToProviderOperator(ProviderOperator):
    """Tell the provider what we hold after a green day (``recordings.on_complete``).

    ``marker`` uploads ``_RECU_<day>.ok`` into each direction folder, ``move`` renames the
    files we hold into the done folder (:mod:`include.cc_intake.handshake`). An amber, red or
    unproven day is skipped with the reason logged. A failure here fails this step only (its
    own e-mail): the day stays landed and its proof verdict is unchanged.

    :param provider: the provider's validated configuration (``on_complete`` not ``none``).
    """

    ui_color = "#fcf3cf"

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake import handshake
        from include.cc_intake.manifest import read_manifest
        from include.cc_intake.recordings import SftpSource

        day = self.day(context)
        layout = self.layout(context)
        go = handshake.may_run(
            handshake.read_summary(layout.quality_dir), provider=self.provider.id, day=day
        )
        if not go.ok:
            self.log.info("%s", go.why)
            raise AirflowSkipException(go.why)
        cfg = self.provider.recordings
        rows = read_manifest(layout.manifest, cfg.group_names)

        async def run() -> handshake.HandshakeResult:
            # The endpoint that answers (primary, else a backup), as for the copy; the config
            # refuses a handshake over FTPS, so this is an SFTP session.
            async with open_remote(self.provider, day) as remote:
                if not isinstance(remote, SftpSource):
                    raise ConfigError(
                        f"{self.provider.id} {day}: on_complete needs an SFTP server, "
                        f"got {type(remote).__name__}"
                    )
                sftp = remote.sftp
                if cfg.on_complete == "move":
                    return await handshake.move_done(sftp, self.provider, day, rows)
                return await handshake.write_markers(
                    sftp, self.provider, day, rows, token=self.token(context)
                )

        result = eventloop.run(run())
        self.log.info("%s %s: %s %s", self.provider.id, day, go.why, result.as_dict())
        return result.as_dict()


# --- the evaluators' worklist (#13) ----------------------------------------------------------


class WorklistLink(BaseOperatorLink):
    """One click from the task to the day's worklist page (pushed by the task as XCom)."""

    name = "Liste d'écoute"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value or "")


class BuildWorklistOperator(ProviderOperator):
    """Draw (or top up) the evaluators' sample of the day and write its CSV and page.

    Runs after both validations whatever their outcome (``all_done``): a red day's landed files
    are still worth evaluating. Skipped when nothing landed (no manifest, no export). A re-run
    keeps every row already written and only adds (the file is append-only within a day). An
    unreadable manifest or export skips it (its validation already failed and e-mailed); an
    unreadable worklist fails it.

    :param provider: the provider's validated configuration (with a ``sampling`` section).
    """

    ui_color = "#fdebd0"
    operator_extra_links = (WorklistLink(),)

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake.airflow.links import worklist_url
        from include.cc_intake.worklist import build_worklist, interactions_path, worklist_paths

        layout = self.layout(context)
        day = layout.day
        if not layout.manifest.exists() and not (
            self.provider.digital is not None
            and interactions_path(layout.root, self.provider.id, day).exists()
        ):
            raise AirflowSkipException(
                f"{self.provider.id} {day}: nothing landed (no manifest {layout.manifest}, no "
                "export): no worklist"
            )
        csv_path, _ = worklist_paths(layout.root, self.provider.id, day)
        try:
            with day_lock(layout):
                result = build_worklist(
                    self.provider,
                    day,
                    layout.root,
                    now=dt.datetime.now(dt.UTC),
                    token=self.token(context),
                )
        except ManifestError as exc:
            if exc.path == str(csv_path):
                raise  # the worklist itself: nothing else reports it
            # An unreadable manifest or export: its validation failed on it and e-mailed; a
            # second e-mail for the same file would add nothing.
            raise AirflowSkipException(f"no worklist: {exc}") from exc
        url = worklist_url(self.provider.id, day)
        context["ti"].xcom_push(key=WorklistLink().xcom_key, value=url)
        log.info(
            "%s %s: worklist of %d recordings and %d conversations (%d added by this run): %s (%s)",
            self.provider.id,
            day,
            result.count("recording"),
            result.count("digital"),
            result.added,
            result.csv_path,
            url,
        )
        return {
            "recordings": result.count("recording"),
            "digital": result.count("digital"),
            "added": result.added,
            "csv": str(result.csv_path),
            "page": url,
        }


__all__: Sequence[str] = (
    "BuildWorklistOperator",
    "ConfigErrorOperator",
    "ConfirmToProviderOperator",
    "CopyRecordingsOperator",
    "EndRunningDay",
    "ExportDigitalOperator",
    "FetchReportOperator",
    "ProofLink",
    "ValidateDigitalOperator",
    "ValidateRecordingsOperator",
    "WaitForRecordingsSensor",
    "WorklistLink",
)
