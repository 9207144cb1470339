"""Airflow plugin: the daily overview page, in the UI's Browse menu.

A FastAPI app mounted by the api-server at ``/cc-intake`` serves the page
(``include/cc_intake/overview.py`` builds it) and the proof files under
``<data_root>/quality``; an external view embeds the page in the UI.

Plugin apps are mounted without authentication (contract §7): every route here depends on
Airflow's own ``get_user`` (``airflow/access.py``: the JWT of the UI session cookie ``_token``
or an ``Authorization: Bearer`` header, validated by the configured auth manager, revocation
included). Rows and proof files are limited to the providers whose DAG the user may read.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Query, status
from fastapi.responses import FileResponse, HTMLResponse

from include.cc_intake import alerts_outbox, digest, overview, proof_pages
from include.cc_intake.airflow.access import (
    SECURITY_HEADERS,
    CurrentUser,
    login_redirect,
    readable_providers,
)
from include.cc_intake.airflow.links import DIGEST_ROUTE, PROOF_ROUTE, URL_PREFIX
from include.cc_intake.constants import DAG_PREFIX, TAG_CONFIG_ERROR
from include.cc_intake.errors import UnsafePathError
from include.cc_intake.layout import data_root

log = logging.getLogger(__name__)

URL_ROUTE = "cc-intake-overview"

# Proof pages are our own self-contained HTML without script: nothing may load or run.
_PROOF_CSP = f"{proof_pages.CONTENT_SECURITY_POLICY}; frame-ancestors 'self'"


def _provider_dags() -> set[str]:
    """Providers with a live ``ingest_*`` DAG, so a provider without any summary still shows."""
    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            dag_ids = session.scalars(
                select(DagModel.dag_id).where(
                    DagModel.dag_id.startswith(DAG_PREFIX), DagModel.is_stale.is_(False)
                )
            ).all()
    except Exception:
        # The page still works from the files alone; say why rows may be missing.
        log.warning("Overview: cannot list the ingest_* DAGs", exc_info=True)
        return set()
    return {dag_id.removeprefix(DAG_PREFIX) for dag_id in dag_ids}


def _config_error_providers() -> set[str] | None:
    """Providers whose DAG is a config-error placeholder now; ``None`` if Airflow cannot say.

    The tag is there as soon as the DAG processor parsed the broken file, before its first
    daily run writes a ``config_error`` summary, and gone as soon as the file is fixed.
    """
    try:
        from airflow.models.dag import DagModel, DagTag
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            dag_ids = session.scalars(
                select(DagTag.dag_id)
                .join(DagModel, DagModel.dag_id == DagTag.dag_id)
                .where(
                    DagTag.name == TAG_CONFIG_ERROR,
                    DagTag.dag_id.startswith(DAG_PREFIX),
                    DagModel.is_stale.is_(False),
                )
            ).all()
    except Exception:
        log.warning("Overview: cannot list the config-error DAGs", exc_info=True)
        return None
    return {dag_id.removeprefix(DAG_PREFIX) for dag_id in dag_ids}


def _default_end_day(root: Path, providers: set[str]) -> dt.date:
    """Yesterday (UTC), or today when a provider east of UTC already wrote it."""
    today = dt.datetime.now(dt.UTC).date()
    latest = overview.latest_day(root, providers)
    end = today - dt.timedelta(days=1)
    if latest is not None and end < latest:
        end = min(latest, today)
    return end


def create_app() -> FastAPI:
    """The plugin's FastAPI app (mounted at ``URL_PREFIX`` by the api-server)."""
    app = FastAPI(
        title="cc-intake overview",
        description="Daily overview of the call-center intake (behind Airflow's login).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    app.add_exception_handler(HTTPException, login_redirect)

    @app.get("/", response_class=HTMLResponse)
    def page(
        user: CurrentUser,
        end: Annotated[dt.date | None, Query(description="last processed day shown")] = None,
        days: Annotated[int, Query(ge=1, le=90)] = overview.DEFAULT_DAYS,
    ) -> HTMLResponse:
        root = data_root()
        providers = readable_providers(user, set(overview.list_providers(root)) | _provider_dags())
        default_end = _default_end_day(root, providers)
        end_day = end or default_end
        broken = _config_error_providers()
        grid = overview.build_overview(
            root,
            end_day=end_day,
            days=days,
            providers=providers,
            discover=False,
            config_errors=None if broken is None else broken & providers,
            undelivered=alerts_outbox.count_pending(root),
        )
        step = dt.timedelta(days=days)
        later = min(end_day + step, default_end) if end_day < default_end else None
        body = overview.render_overview(
            grid,
            earlier=f"?end={(end_day - step).isoformat()}&days={days}",
            later=f"?end={later.isoformat()}&days={days}" if later else None,
            digest=_latest_digest_href(root),
        )
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": overview.CONTENT_SECURITY_POLICY}
        return HTMLResponse(body, headers=headers)

    @app.get(f"/{PROOF_ROUTE}/{{rel_path:path}}")
    def quality_file(rel_path: str, user: CurrentUser) -> FileResponse:
        root = data_root()
        try:
            path = overview.resolve_quality_file(root, rel_path)
        except UnsafePathError as exc:
            log.warning("Overview: refused %s", exc)
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found") from None
        provider = rel_path.split("/", 1)[0]
        if not readable_providers(user, {provider}):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found")
        headers = dict(SECURITY_HEADERS)
        if path.suffix == ".html":
            headers["Content-Security-Policy"] = _PROOF_CSP
        return FileResponse(path, media_type=overview.SERVED_SUFFIXES[path.suffix], headers=headers)

    @app.get(f"/{DIGEST_ROUTE}/{{name}}")
    def digest_file(name: str, user: CurrentUser) -> FileResponse:
        # The digest shows every provider: only a user who may read all their DAGs gets it.
        root = data_root()
        try:
            path = digest.resolve_digest_file(root, name)
        except UnsafePathError as exc:
            log.warning("Overview: refused %s", exc)
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found") from None
        every = set(overview.list_providers(root)) | _provider_dags()
        if readable_providers(user, every) != every:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found")
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": _PROOF_CSP}
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)

    return app


def _latest_digest_href(root: Path) -> str | None:
    """The overview's link to the newest ``digests/<day>.html`` (relative, like proof links)."""
    latest = digest.latest_digest(root)
    return f"{DIGEST_ROUTE}/{latest.isoformat()}.html" if latest else None


class CcIntakeOverviewPlugin(AirflowPlugin):
    """The daily overview page of the call-center intake."""

    name = "cc_intake_overview"
    fastapi_apps = [  # noqa: RUF012 — AirflowPlugin declares these as class attributes
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "cc-intake overview"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Collecte quotidienne",
            # Relative to the UI's <base href>, so a base_url with a path prefix works.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "destination": "nav",
            "category": "browse",
            "url_route": URL_ROUTE,
        }
    ]
