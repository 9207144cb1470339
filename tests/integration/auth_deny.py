"""A test-only auth manager: Airflow's Simple auth manager that denies one DAG to ``operator``.

The Simple auth manager lets every viewer read every DAG; the per-DAG permission tests need a
user who may not (contract §8.1). Set with ``[core] auth_manager`` in the test's environment.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DENIED_USER = "operator"
DENIED_DAG = "ingest_rouge_dakar"


class DenyOneDagAuthManager(SimpleAuthManager):
    """``operator`` may not read :data:`DENIED_DAG`; everything else as the Simple manager."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:  # fmt: skip
        if details is not None and details.id == DENIED_DAG and user.get_name() == DENIED_USER:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
