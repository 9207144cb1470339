"""A test-only auth manager: Airflow's SimpleAuthManager, except that one user may not read one
DAG (contract §8.1 *Evaluators*: SimpleAuthManager alone lets every viewer read every DAG).

Set with ``AIRFLOW__CORE__AUTH_MANAGER=tests.integration.deny_auth_manager.DenyOneDagAuthManager``.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DENIED_USER = "operator"
DENIED_DAG = "ingest_globex_dakar"


class DenyOneDagAuthManager(SimpleAuthManager):
    """``operator`` may not read ``ingest_globex_dakar``; everything else as SimpleAuthManager."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:  # fmt: skip
        if user.get_name() == DENIED_USER and details is not None and details.id == DENIED_DAG:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
