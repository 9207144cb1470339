"""One DAG per provider YAML (include/providers/, plus the sandbox's when CC_INTAKE_SANDBOX=1).

All logic lives in include/cc_intake; this file only wires. A broken YAML yields a placeholder
DAG tagged `config-error` instead of hiding the other providers.
"""

from __future__ import annotations

from include.cc_intake.airflow.factory import build_all

for _dag in build_all():
    globals()[_dag.dag_id] = _dag
