"""The daily housekeeping DAG: retention of the landed personal data (one task per provider).

All logic lives in include/cc_intake (retention.py, airflow/housekeeping.py); this file only
wires.
"""

from __future__ import annotations

from include.cc_intake.airflow.housekeeping import build_housekeeping_dag

housekeeping = build_housekeeping_dag()
