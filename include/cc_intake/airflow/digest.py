"""The morning digest DAG: one task builds the digest, writes it and e-mails the ops list.

``CC_INTAKE_DIGEST_AT`` (``"HH:MM <zone>"``, default ``09:00 Africa/Abidjan``) is read when the
DAG file is parsed (contract §8.1: parse-time settings are environment variables only); the
operations list is read at run time (:func:`.runtime_settings.ops_emails`). The digest itself
is built by :mod:`include.cc_intake.digest` from files only; this layer adds the provider
list, the URLs and the delivery (the alerts' SMTP connection and undelivered outbox).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable

from include.cc_intake import constants as C
from include.cc_intake.digest import DigestAt, DigestProvider, parse_digest_at

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

DIGEST_AT = "CC_INTAKE_DIGEST_AT"
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def digest_providers() -> list[DigestProvider]:
    """Every provider the DAG factory sees now: valid YAMLs and broken ones (placeholders)."""
    from include.cc_intake.airflow.factory import missing_folder, provider_folders
    from include.cc_intake.config import load_providers

    found: dict[str, DigestProvider] = {}
    for folder in provider_folders():
        if not folder.is_dir():
            item = missing_folder(folder)
            found.setdefault(
                item.key, DigestProvider(item.key, item.key, item.timezone, config_error=item.error)
            )
            continue
        good, broken = load_providers(folder)
        for cfg in good:
            found.setdefault(cfg.id, DigestProvider(cfg.id, cfg.name, cfg.timezone))
        for item in broken:
            found.setdefault(
                item.key,
                DigestProvider(
                    item.key, item.name or item.key, item.timezone, config_error=item.error
                ),
            )
    return list(found.values())


class SendDigestOperator(BaseOperator):
    """Build the morning digest, write ``digests/<day>.html``, e-mail it to the ops list.

    :param digest_at: when the digest runs (its zone names the digest's day).
    :param smtp_conn_id: the alerts' SMTP connection.
    """

    ui_color = "#d6eaf8"
    template_fields = ()

    def __init__(
        self, *, digest_at: DigestAt, smtp_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.digest_at = digest_at
        self.smtp_conn_id = smtp_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from include.cc_intake.airflow import links
        from include.cc_intake.airflow.delivery import DEFAULT_SMTP_CONN_ID, deliver
        from include.cc_intake.airflow.runtime_settings import OPS_EMAILS, ops_emails
        from include.cc_intake.digest import DigestLinks, build_digest, render_digest, write_digest
        from include.cc_intake.layout import data_root
        from include.cc_intake.mail import Email

        run = context["dag_run"]
        at = run.logical_date or run.run_after
        root = data_root()
        digest = build_digest(root, digest_providers(), at=at, zone=self.digest_at.timezone)
        base = links.base_url()
        rendered = render_digest(
            digest,
            DigestLinks(
                ui_base=f"{base}/",
                proof_base=links.proof_base_url(base=base),
                overview=links.overview_url(base=base),
            ),
            digest_at=str(self.digest_at),
        )
        path = write_digest(root, digest.day, rendered.html)
        url = links.digest_url(digest.day, base=base)
        self.log.info(
            "digest of %s written to %s (%s): %s", digest.day, path, url, rendered.subject
        )
        result: dict[str, Any] = {"day": digest.day.isoformat(), "path": str(path), "url": url}
        recipients = ops_emails()
        if not recipients:
            self.log.error(
                "no operations list (%s or the Variable %s): digest of %s NOT sent; it is in %s",
                OPS_EMAILS,
                OPS_EMAILS.lower(),
                digest.day,
                path,
            )
            result["sent_to"] = 0
            return result
        kept = deliver(
            Email(subject=rendered.subject, body_text=rendered.text, body_html=rendered.html),
            recipients,
            dag_id=C.DIGEST_DAG_ID,
            day=digest.day,
            smtp_conn_id=self.smtp_conn_id or DEFAULT_SMTP_CONN_ID,
        )
        if kept is None:
            self.log.info("digest sent to %d recipient(s)", len(recipients))
            result["sent_to"] = len(recipients)
        else:  # deliver() logged it at ERROR; the next alert that goes out sends it too
            result["sent_to"] = 0
            result["undelivered"] = str(kept)
        return result


def digest_doc_md(at: DigestAt) -> str:
    return (
        "# Synthèse du matin\n\n"
        f"Daily at **{at}** (`{DIGEST_AT}`, read when the DAG file is parsed): one row per "
        "provider for its processed day (J-1 in its own zone at that time) — status, calls "
        "expected vs received per direction, digital interactions, rejected files, worklist "
        "size, links to the proof pages and the overview. Written to "
        "`<data_root>/digests/<day>.html` and e-mailed (HTML + text) to the operations list "
        "(`CC_INTAKE_OPS_EMAILS` or the Variable `cc_intake_ops_emails`). It reads files only "
        "and never fails because one provider's files are missing or broken."
    )


def build_digest_dag(setting: str | None = None) -> DAG:
    """The ``cc_intake_digest`` DAG at ``CC_INTAKE_DIGEST_AT`` (or ``setting``), catchup off."""
    from include.cc_intake.airflow.notify import IntakeFailureNotifier

    at = parse_digest_at(setting if setting is not None else os.environ.get(DIGEST_AT))
    # A digest that could not be built (disk full, …) is said to the operations list: no
    # alert_emails here, so the notifier reads CC_INTAKE_OPS_EMAILS at run time.
    notifier = IntakeFailureNotifier(
        provider_id="digest",
        provider_name="Synthèse du matin",
        timezone=at.timezone,
        alert_emails=(),
    )
    with DAG(
        dag_id=C.DIGEST_DAG_ID,
        description=f"Morning digest of every provider's day, e-mailed at {at}",
        schedule=CronTriggerTimetable(at.cron, timezone=at.timezone),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=[C.TAG_INTAKE, C.TAG_DIGEST],
        doc_md=digest_doc_md(at),
        default_args={
            "owner": C.DEFAULT_OWNER,
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=5),
            "on_failure_callback": [notifier],
        },
    ) as dag:
        SendDigestOperator(task_id=C.TASK_SEND_DIGEST, digest_at=at)
    return dag
