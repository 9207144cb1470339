"""Names shared by the DAG factory, the policy tests and the docs."""

from __future__ import annotations

TAG_INTAKE = "cc-intake"
TAG_SANDBOX = "sandbox"
TAG_CONFIG_ERROR = "config-error"
TAG_DIGITAL = "digital"

DEFAULT_OWNER = "cc-intake"
MAX_ACTIVE_RUNS = 3

# Task ids are part of the operator's vocabulary (UI, e-mails, docs): keep them stable.
TASK_WAIT = "wait_for_recordings"
TASK_COPY = "copy_recordings"
TASK_REPORT = "fetch_report"
TASK_VALIDATE = "validate_recordings"
TASK_EXPORT = "export_digital"
TASK_VALIDATE_DIGITAL = "validate_digital"
TASK_CONFIG_ERROR = "config_error"

# The summary.json status a config-error placeholder writes for its day (PRODUCT.md §8.1).
STATUS_CONFIG_ERROR = "config_error"
