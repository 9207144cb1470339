"""Who may open what the plugins serve: Airflow's own login, and the provider's DAG permission.

Plugin apps are mounted without authentication (contract §7): each route depends on
:func:`current_user` (Airflow's ``get_user``: the UI session cookie ``_token`` or an
``Authorization: Bearer`` header, validated by the configured auth manager) and asks
:func:`may_read_provider` (the auth manager's ``is_authorized_dag`` for ``ingest_<provider>``,
method ``GET``). A browser without a session is sent to Airflow's login and back
(:func:`login_redirect`). Used by the overview and worklist plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from include.cc_intake.constants import DAG_PREFIX, dag_id_of

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


async def current_user(request: Request) -> BaseUser:
    """Airflow's api-server authentication, unchanged: 401/403 when it refuses."""
    # Imported here: plugin modules are also imported by schedulers and workers.
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    return await get_user(request, None, credentials)


# Typed Any for FastAPI: BaseUser is imported for type checking only.
CurrentUser = Annotated[Any, Depends(current_user)]


def may_read_provider(user: BaseUser, provider: str) -> bool:
    """Whether ``user`` may read the provider's DAG (``ingest_<provider>``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(
        method="GET", details=DagDetails(id=dag_id_of(provider)), user=user
    )


def readable_providers(user: BaseUser, candidates: set[str]) -> set[str]:
    """The providers among ``candidates`` whose DAG ``user`` may read (one auth manager call)."""
    from airflow.api_fastapi.app import get_auth_manager

    dag_ids = {dag_id_of(provider) for provider in candidates}
    allowed = get_auth_manager().filter_authorized_dag_ids(dag_ids=dag_ids, user=user)
    return {dag_id.removeprefix(DAG_PREFIX) for dag_id in allowed}


def require_provider(user: BaseUser, provider: str) -> None:
    """403 unless ``user`` may read the provider's DAG."""
    if not may_read_provider(user, provider):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


async def login_redirect(request: Request, exc: Exception) -> Response:
    """A browser opening a page without a session goes to Airflow's login and back."""
    assert isinstance(exc, HTTPException)
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and wants_html and request.method == "GET":
        from airflow.api_fastapi.app import get_auth_manager

        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
