"""The project's exceptions.

Every message names the provider, the processed day, the file or URL and what was expected,
so that the first line of a failed task log is enough to act on.

IntakeError
├── ConfigError               a provider YAML is missing, malformed or inconsistent   (no retry)
├── RemoteError               the provider's server cannot be used
│   ├── HostKeyError          the server's host key is unknown or does not match      (no retry)
│   └── TransferError         a copy failed (size changed, connection lost, …)
├── RecordingsNotReady        the day's recordings are absent or still moving
├── UnsafePathError           a remote name or landing path would escape its folder   (no retry)
├── StorageError              the data root refused a write (disk full, quota, file too large)
├── ReportError               the end-of-day report is missing or malformed
├── ReconciliationError       the copied files do not match the report
├── ExportError               the CRM export failed or returned something malformed
└── ValidationError           a Great Expectations suite failed

``retryable = False`` marks the errors a retry cannot fix: the task fails at once instead of
retrying with back-off (the Airflow layer's retry policy reads it), and its e-mail says that no
automatic retry will happen.
"""

from __future__ import annotations


class IntakeError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retryable: bool = True


class ConfigError(IntakeError):
    """A provider YAML file is missing, malformed or inconsistent."""

    retryable = False


class RemoteError(IntakeError):
    """The provider's server cannot be reached or used."""


class HostKeyError(RemoteError):
    """The provider's SSH host key is unknown or does not match the configured one."""

    retryable = False  # the same key comes back until someone checks it with the provider


class TransferError(RemoteError):
    """A recording could not be copied completely."""


class RecordingsNotReady(IntakeError):
    """The day's recordings are absent or still being written when the wait timed out."""


class UnsafePathError(IntakeError):
    """A remote name or a landing path would leave its configured folder."""

    retryable = False


class StorageError(IntakeError):
    """The data root refused a write (disk full, quota, file too large); the old file stays.

    :param provider: the provider whose partition was being written.
    :param day: the processed day (ISO).
    :param path: the final path that could not be written (its previous content is intact).
    """

    def __init__(self, message: str, *, provider: str = "", day: str = "", path: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.day = day
        self.path = path


class ReportError(IntakeError):
    """The provider's end-of-day report is missing or malformed."""


class ReconciliationError(IntakeError):
    """The copied recordings do not match the end-of-day report."""


class ExportError(IntakeError):
    """The CRM export failed or returned a malformed page."""


class ValidationError(IntakeError):
    """A Great Expectations suite failed for the day."""
