"""The project's exceptions, and the facts they carry.

Every message names the provider, the processed day, the file or URL and what was expected,
so that the first line of a failed task log is enough to act on. The same facts are keyword
attributes, set where the error is raised: ``provider`` and ``day`` on every error, and each
class's own (``TransferError(files=…)``, ``ExportError(status=…, url=…)``…). Whoever renders an
error reads them, never its message: :attr:`IntakeError.details` is the mapping of the class's
facts that the failure e-mails show (keys documented in ``messages.py``).

IntakeError                   provider, day
├── ConfigError               a provider YAML is missing, malformed or inconsistent   (no retry)
├── RemoteError               the provider's server cannot be used
│   ├── HostKeyError          the server's host key is unknown or does not match      (no retry)
│   │   └── CertificateError  the FTPS server's certificate is not trusted            (no retry)
│   └── TransferError         a copy failed (size changed, connection lost, …)         files
├── RecordingsNotReady        the day's recordings are absent or still moving    directions, waited
├── UnsafePathError           a remote name or landing path would escape its folder   (no retry)
├── StorageError              the data root refused a write (disk full, quota, …)       path
├── ReportError               the end-of-day report is missing or malformed
├── ManifestError             the day's manifest is missing or unreadable      (no retry) path
├── ReconciliationError       the copied files do not match the report   recordings, gaps, proof
├── ExportError               the CRM export failed                         url, page, status
│   ├── MalformedPageError    a 2xx page arrived whole but unreadable, after 2 re-asks (no retry)
│   └── ShrunkExportError     the CRM returns fewer interactions than landed       (no retry)
└── ValidationError           a Great Expectations suite failed  failed_expectations, proof

``retryable = False`` marks the errors a retry cannot fix: the task fails at once instead of
retrying with back-off (the Airflow layer's retry policy reads it), and its e-mail says that no
automatic retry will happen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar


class IntakeError(Exception):
    """Base of every error the pipeline raises on purpose.

    :param message: one line naming provider, day, file or URL and what was expected.
    :param provider: the provider's id, when the raiser knows it.
    :param day: the processed day, when the raiser knows it.
    """

    retryable: bool = True
    # The attributes :attr:`details` shows, in this order (each subclass names its own).
    FACTS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        day: dt.date | str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.day = day

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword facts survive pickling and copying (the default calls cls(*args) and loses
        # them, or fails on a required one).
        return (_restore, (self.__class__, self.args, dict(self.__dict__)))

    @property
    def details(self) -> dict[str, Any]:
        """The class's facts that are known, for the failure e-mail (empty ones left out)."""
        found = {name: getattr(self, name, None) for name in self.FACTS}
        return {key: value for key, value in found.items() if value not in (None, "", (), [], {})}


def _restore(cls: type[IntakeError], args: tuple[Any, ...], state: dict[str, Any]) -> IntakeError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(IntakeError):
    """A provider YAML file is missing, malformed or inconsistent."""

    retryable = False


class RemoteError(IntakeError):
    """The provider's server cannot be reached or used."""


class HostKeyError(RemoteError):
    """The provider's SSH host key is unknown or does not match the configured one."""

    retryable = False  # the same key comes back until someone checks it with the provider


class CertificateError(HostKeyError):
    """The provider's FTPS certificate does not match the pinned SHA-256 or the CA file.

    The FTPS counterpart of a host key mismatch: never retried, never a reason to try the
    next endpoint.
    """


class TransferError(RemoteError):
    """Recordings could not be copied completely.

    :param files: the files concerned, each ``<remote path>: <why>`` (phone numbers masked).
    """

    FACTS: ClassVar[tuple[str, ...]] = ("files",)

    def __init__(self, message: str, *, files: Sequence[str] = (), **where: Any) -> None:
        super().__init__(message, **where)
        self.files = list(files)


class RecordingsNotReady(IntakeError):
    """The day's recordings are absent or still being written when the wait timed out.

    :param directions: what was seen per direction against the report ({direction: facts}).
    :param waited: how long the wait lasted (``wait_timeout``), as shown to an operator.
    """

    FACTS: ClassVar[tuple[str, ...]] = ("directions", "waited")

    def __init__(
        self,
        message: str,
        *,
        directions: Mapping[str, Any] | None = None,
        waited: str | None = None,
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.directions = dict(directions or {})
        self.waited = waited


class UnsafePathError(IntakeError):
    """A remote name or a landing path would leave its configured folder."""

    retryable = False


class StorageError(IntakeError):
    """The data root refused a write (disk full, quota, file too large); the old file stays.

    :param path: the final path that could not be written (its previous content is intact).
    """

    def __init__(self, message: str, *, path: str | None = None, **where: Any) -> None:
        super().__init__(message, **where)
        self.path = path


class ReportError(IntakeError):
    """The provider's end-of-day report is missing or malformed."""


class ManifestError(IntakeError):
    """The day's manifest is missing or unreadable: nothing can be reconciled, no proof written.

    The copy step writes it; a retry of the validation reads the same file, so none happens:
    the day is re-run from its copy.

    :param path: the manifest expected.
    """

    retryable = False
    FACTS: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, message: str, *, path: Path | str | None = None, **where: Any) -> None:
        super().__init__(message, **where)
        self.path = None if path is None else str(path)


class ReconciliationError(IntakeError):
    """The copied recordings do not match the end-of-day report.

    :param recordings: expected versus got per direction ({direction: {expected, got}}).
    :param gaps: the files concerned per kind of gap ({missing|extra|duplicate|…: [names]}).
    :param proof: the URL of the day's proof page.
    """

    FACTS: ClassVar[tuple[str, ...]] = ("recordings", "gaps", "proof")

    def __init__(
        self,
        message: str,
        *,
        recordings: Mapping[str, Any] | None = None,
        gaps: Mapping[str, Sequence[str]] | None = None,
        proof: str | None = None,
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.recordings = dict(recordings or {})
        self.gaps = {kind: list(names) for kind, names in (gaps or {}).items() if names}
        self.proof = proof


class ExportError(IntakeError):
    """The CRM export failed or returned a malformed page.

    :param url: the URL path (never the query string).
    :param page: the page number, 1-based.
    :param status: the HTTP status.
    """

    FACTS: ClassVar[tuple[str, ...]] = ("url", "page", "status")

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        page: int | None = None,
        status: int | None = None,
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.url = url
        self.page = page
        self.status = status


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
    FACTS: ClassVar[tuple[str, ...]] = (*ExportError.FACTS, "previous", "got")

    def __init__(
        self, message: str, *, previous: int, got: int, path: Path | None = None, **facts: Any
    ) -> None:
        super().__init__(message, **facts)
        self.previous = previous
        self.got = got
        self.path = path


class ValidationError(IntakeError):
    """A Great Expectations suite failed for the day.

    :param failed_expectations: the checks that failed, one short description each.
    :param proof: the URL of the day's proof page.
    """

    FACTS: ClassVar[tuple[str, ...]] = ("failed_expectations", "proof")

    def __init__(
        self,
        message: str,
        *,
        failed_expectations: Sequence[str] = (),
        proof: str | None = None,
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.failed_expectations = list(failed_expectations)
        self.proof = proof
