"""A test-only auth manager: Airflow's SimpleAuthManager, except that one user may not read a
few DAGs (contract §8.1 *Evaluators*: SimpleAuthManager alone lets every viewer read every DAG).

Set with ``AIRFLOW__CORE__AUTH_MANAGER`` = :data:`MANAGER` in the test's environment. The
worklist tests deny ``globex_dakar``'s DAG, the digest tests ``rouge_dakar``'s.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

MANAGER = "tests.integration.deny_auth_manager.DenyOneDagAuthManager"
DENIED_USER = "operator"
DENIED_DAGS = frozenset({"ingest_globex_dakar", "ingest_rouge_dakar"})


class DenyOneDagAuthManager(SimpleAuthManager):
    """``operator`` may not read :data:`DENIED_DAGS`; everything else as SimpleAuthManager."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:  # fmt: skip
        if details is not None and details.id in DENIED_DAGS and user.get_name() == DENIED_USER:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
