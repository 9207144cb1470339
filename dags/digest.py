"""The morning digest: one e-mail a day to the operations list, at CC_INTAKE_DIGEST_AT.

All logic lives in include/cc_intake; this file only wires.
"""

from __future__ import annotations

from include.cc_intake.airflow.digest import build_digest_dag

cc_intake_digest = build_digest_dag()
