"""Airflow plugin: the evaluators' worklist pages and the recordings they play (#13).

A FastAPI app mounted by the api-server at ``/cc-intake-worklists`` serves, behind Airflow's
login and only to users who may read the provider's DAG:

- ``worklists/<provider>/<day>.html`` (and ``.csv``): the page ``build_worklist`` wrote;
- ``media/<provider>/<day>/<row>``: the recording of the worklist's row, as landed, with HTTP
  Range requests (206) so the page's audio player can seek; ``?download=1`` for a download.

Only what a worklist lists is served, from under the data root (no ``..``, no symlink out).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Query, status
from fastapi.responses import FileResponse

from include.cc_intake import worklist, worklist_page
from include.cc_intake.airflow.access import (
    SECURITY_HEADERS,
    CurrentUser,
    login_redirect,
    require_provider,
)
from include.cc_intake.airflow.links import WORKLIST_ROUTE, WORKLIST_URL_PREFIX
from include.cc_intake.days import parse_day
from include.cc_intake.errors import ConfigError, IntakeError, UnsafePathError
from include.cc_intake.layout import data_root

log = logging.getLogger(__name__)

# The page has no script; it plays recordings from this app (same origin).
_PAGE_CSP = f"{worklist_page.CONTENT_SECURITY_POLICY}; frame-ancestors 'self'"
_NOT_FOUND = HTTPException(status.HTTP_404_NOT_FOUND, "Not found")


def _day(text: str) -> dt.date:
    """A ``YYYY-MM-DD`` path segment, else 404."""
    try:
        return parse_day(text, what="day")
    except ConfigError:
        raise _NOT_FOUND from None


def create_app() -> FastAPI:
    """The plugin's FastAPI app (mounted at ``WORKLIST_URL_PREFIX`` by the api-server)."""
    app = FastAPI(
        title="cc-intake worklists",
        description="Evaluators' worklists (behind Airflow's login).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(HTTPException, login_redirect)

    @app.get(f"/{WORKLIST_ROUTE}/{{provider}}/{{name}}")
    def page(provider: str, name: str, user: CurrentUser) -> FileResponse:
        require_provider(user, provider)
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            raise _NOT_FOUND
        try:
            path = worklist.page_file(data_root(), provider, _day(stem), f".{suffix}")
        except UnsafePathError as exc:
            log.warning("Worklists: refused %s", exc)
            raise _NOT_FOUND from None
        if not path.is_file():
            raise _NOT_FOUND
        headers = dict(SECURITY_HEADERS)
        if suffix == "html":
            headers["Content-Security-Policy"] = _PAGE_CSP
            return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)
        return FileResponse(path, media_type="text/csv; charset=utf-8", headers=headers)

    @app.get(f"/{worklist_page.MEDIA_ROUTE}/{{provider}}/{{day}}/{{row}}")
    def media(
        provider: str,
        day: str,
        row: int,
        user: CurrentUser,
        download: Annotated[bool, Query()] = False,
    ) -> FileResponse:
        require_provider(user, provider)
        try:
            item, path = worklist.item_file(data_root(), provider, _day(day), row)
        except (UnsafePathError, LookupError) as exc:
            log.warning("Worklists: refused %s", exc)
            raise _NOT_FOUND from None
        except IntakeError as exc:  # an unreadable worklist: say so in the log, not the page
            log.error("Worklists: %s", exc)
            raise _NOT_FOUND from None
        if not path.is_file():
            raise _NOT_FOUND
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'"}
        return FileResponse(
            path,
            media_type=worklist_page.media_type(item.path),
            headers=headers,
            filename=path.name if download else None,
            content_disposition_type="attachment" if download else "inline",
        )

    return app


class CcIntakeWorklistPlugin(AirflowPlugin):
    """The evaluators' worklist pages of the call-center intake."""

    name = "cc_intake_worklist"
    fastapi_apps = [  # noqa: RUF012 — AirflowPlugin declares these as class attributes
        {"app": create_app(), "url_prefix": WORKLIST_URL_PREFIX, "name": "cc-intake worklists"}
    ]
