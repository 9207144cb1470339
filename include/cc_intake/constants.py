"""Names shared by the DAG factory, the policy tests, the config validator and the docs.

This module imports nothing from the project, so any module (config included) may use it.
"""

from __future__ import annotations

TAG_INTAKE = "cc-intake"
TAG_SANDBOX = "sandbox"
TAG_CONFIG_ERROR = "config-error"
TAG_DIGITAL = "digital"
TAG_DIGEST = "digest"

DEFAULT_OWNER = "cc-intake"
DAG_PREFIX = "ingest_"  # a provider's DAG id is DAG_PREFIX + its id (dag_id_of)
MAX_ACTIVE_RUNS = 3

# Task ids are part of the operator's vocabulary (UI, e-mails, docs): keep them stable.
TASK_WAIT = "wait_for_recordings"
TASK_COPY = "copy_recordings"
TASK_REPORT = "fetch_report"
TASK_VALIDATE = "validate_recordings"
TASK_ON_TIME = "recordings_on_time"
TASK_EXPORT = "export_digital"
TASK_VALIDATE_DIGITAL = "validate_digital"
TASK_CONFIG_ERROR = "config_error"
TASK_CONFIRM = "confirm_to_provider"  # the completion handshake (recordings.on_complete)
TASK_WORKLIST = "build_worklist"  # providers with a `sampling` section (#13)
DIGEST_DAG_ID = "cc_intake_digest"
TASK_SEND_DIGEST = "send_digest"

# The manifest's columns (contract §7 *Manifest* and §8): the leading ones, then the pattern's
# named groups, then the added ones in this stable order. A pattern group may not take one of
# these names: it would overwrite that column in every row.
MANIFEST_LEADING_COLUMNS = (
    "direction",
    "file_name",
    "remote_path",
    "size_bytes",
    "remote_mtime",
    "sha256",
    "copied_at",
    "status",
    "reason",
)
MANIFEST_ADDED_COLUMNS = ("codec", "duration_s", "audio_ok", "endpoint")
RESERVED_GROUP_NAMES = (*MANIFEST_LEADING_COLUMNS, *MANIFEST_ADDED_COLUMNS)


def dag_id_of(provider: str) -> str:
    """The DAG id of a provider (the YAML's id, or its file's stem for a broken YAML)."""
    return f"{DAG_PREFIX}{provider}"
