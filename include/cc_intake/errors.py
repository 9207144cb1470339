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
│   ├── MalformedPageError    a 2xx page arrived whole but unreadable, after 2 re-asks (no retry)
│   └── ShrunkExportError     the CRM returns fewer interactions than landed       (no retry)
└── ValidationError           a Great Expectations suite failed

``retryable = False`` marks the errors a retry cannot fix: the task fails at once instead of
retrying with back-off (the Airflow layer's retry policy reads it), and its e-mail says that no
automatic retry will happen.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


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
    """The CRM export failed or returned a malformed page.

    Facts, when the raiser knows them: ``provider``, ``day``, ``url`` (the URL path, never the
    query string), ``page`` (1-based) and ``status`` (HTTP). ``details`` is what the failure
    e-mail shows.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        day: dt.date | None = None,
        url: str | None = None,
        page: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.day = day
        self.url = url
        self.page = page
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword facts survive pickling and copying (the default calls cls(*args) and loses
        # them, or fails on a required one).
        return (_restore, (self.__class__, self.args, dict(self.__dict__)))

    @property
    def details(self) -> dict[str, Any]:
        facts = {"url": self.url, "page": self.page, "status": self.status}
        return {key: value for key, value in facts.items() if value is not None}


def _restore(cls: type[ExportError], args: tuple[Any, ...], state: dict[str, Any]) -> ExportError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class MalformedPageError(ExportError):
    """A CRM page came whole (2xx) but could not be read: broken JSON or CSV, no records where
    configured, a record without its id, an unreadable total, cursor or next link.

    Raised after the page was asked again twice within a minute (``attempts`` in all): a task
    retry minutes later would only ask the same CRM for the same page again.
    """

    retryable = False

    def __init__(self, message: str, *, attempts: int = 1, **facts: Any) -> None:
        super().__init__(message, **facts)
        self.attempts = attempts

    @property
    def details(self) -> dict[str, Any]:
        return {**super().details, "malformed": True, "attempts": self.attempts}


class ShrunkExportError(ExportError):
    """The CRM returns fewer interactions for a day than the export already landed.

    The landed file (``path``) is kept: a purge or an archive on the CRM side must not replace
    proof already earned. ``previous`` is the landed count, ``got`` the new one; the run conf
    ``{"replace_digital": true}`` forces the replacement.
    """

    retryable = False  # the CRM's data or an operator's replace_digital must change first

    def __init__(
        self, message: str, *, previous: int, got: int, path: Path | None = None, **facts: Any
    ) -> None:
        super().__init__(message, **facts)
        self.previous = previous
        self.got = got
        self.path = path

    @property
    def details(self) -> dict[str, Any]:
        return {**super().details, "previous": self.previous, "got": self.got}


class ValidationError(IntakeError):
    """A Great Expectations suite failed for the day."""
