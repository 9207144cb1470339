"""Provider configuration: one YAML file per provider, validated into frozen models.

The YAML keys are a user-facing contract (contract §3 and §7). Validation happens when the
DAG file is parsed, reads nothing but the file itself, and every error names the file and the
dotted path of the offending field.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from include.cc_intake.constants import RESERVED_GROUP_NAMES, dag_id_of
from include.cc_intake.errors import ConfigError

DIRECTIONS = ("ENTRANTS", "SORTANTS")
Direction = Literal["ENTRANTS", "SORTANTS"]

_DURATION_RE = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_BANDWIDTH_RE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[KMG]?)(?P<kind>bit|B)$")
_UNIT = {"": 1, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}
_HHMM_RE = re.compile(r"^(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)$")
_PROVIDER_ID_RE = re.compile(r"^[a-z0-9_]+$")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DAYS_RE = re.compile(r"^(?P<n>\d+)d?$")
_FOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_duration(value: object) -> dt.timedelta:
    """Parse ``90s``, ``5m``, ``4h``, ``1h30m`` (or a bare number of seconds) into a timedelta."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return dt.timedelta(seconds=value)
    text = str(value).strip()
    if text == "0":
        return dt.timedelta(0)
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"expected a duration like 90s, 5m, 4h or 1h30m, got {value!r}")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return dt.timedelta(hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def parse_bandwidth(value: object) -> int:
    """Parse ``6Mbit`` or ``750KB`` (decimal units, bit or byte explicit) into bytes per second."""
    match = _BANDWIDTH_RE.match(str(value).strip())
    if match is None:
        raise ValueError(
            f"expected a bandwidth like 6Mbit or 750KB (bit or byte unit explicit), got {value!r}"
        )
    amount = float(match["n"]) * _UNIT[match["unit"]]
    bytes_per_s = amount / 8 if match["kind"] == "bit" else amount
    if bytes_per_s < 1:
        raise ValueError(f"bandwidth {value!r} is below one byte per second")
    return int(bytes_per_s)


def _template_fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def _check_template(template: str, allowed: set[str]) -> str:
    try:
        fields = _template_fields(template)
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None
    unknown = fields - allowed
    if unknown:
        raise ValueError(
            f"template {template!r} uses {sorted(unknown)}; only {sorted(allowed)} are known"
        )
    return template


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_days(value: object) -> int:
    """Parse a retention like ``90d`` (or a bare number of days) into a number of days ≥ 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    else:
        match = _DAYS_RE.match(str(value).strip())
        if match is None:
            raise ValueError(f"expected a number of days like 90d, got {value!r}")
        days = int(match["n"])
    if days < 1:
        raise ValueError(f"a retention must be at least 1d, got {value!r}")
    return days


def parse_share(value: object) -> int | str:
    """A sample size: a count (``40``) or a percentage of the population (``"10%"``)."""
    if isinstance(value, bool):
        raise ValueError("expected a count (e.g. 40) or a percentage (e.g. '10%')")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a sample size must not be negative")
        return value
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%", text)
    if match is None or float(match[1]) > 100:
        raise ValueError(f"expected a count or a percentage up to 100%, got {value!r}")
    return text


Share = Annotated[int | str, BeforeValidator(parse_share)]
RetentionDays = Annotated[int, BeforeValidator(parse_days)]
Protocol = Literal["sftp", "ftps"]
# Strata a sample may be drawn by besides the pattern's own groups (contract §8.1, #13).
BUILTIN_STRATA = ("direction", "agent", "hour", "channel")


class RecordingsConfig(_Model):
    """Where and how the provider drops its call recordings on its SFTP or FTPS server.

    The server is reached through one connection (``sftp_conn_id`` / ``ftp_conn_id``) or an
    ordered list of endpoints, primary first (``sftp_conn_ids`` / ``ftp_conn_ids``); use
    :attr:`conn_ids` rather than the raw fields.
    """

    protocol: Protocol = "sftp"
    sftp_conn_id: str | None = Field(default=None, min_length=1)
    sftp_conn_ids: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1
    )
    ftp_conn_id: str | None = Field(default=None, min_length=1)
    ftp_conn_ids: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1
    )
    directions: dict[Direction, str] = Field(min_length=1)
    filename_pattern: str
    date_format: str = "%Y%m%d"
    min_file_age: Duration = dt.timedelta(minutes=5)
    wait_timeout: Duration = dt.timedelta(hours=4)
    settle: Duration = dt.timedelta(seconds=30)
    # Time between two looks of the wait step; each look is a short task run (reschedule mode).
    poll_interval: Duration = dt.timedelta(minutes=2)
    max_parallel: int = Field(default=4, ge=1, le=64)
    max_bandwidth: Bandwidth | None = None
    recursive: bool = False
    # SSH connections opened for one day's copy (several use both cores and two TCP windows on
    # many-file days); None lets the copy choose.
    connections: int | None = Field(default=None, ge=1, le=8)
    # The Celery queue of the copy and report steps (e.g. the host that holds the landing disk).
    queue: str = Field(default="default", min_length=1)
    # The completion handshake on the provider's server after a green day (contract §8.1).
    on_complete: Literal["none", "marker", "move"] = "none"
    done_folder: str = "traites"

    @model_validator(mode="after")
    def _connections_for_protocol(self) -> RecordingsConfig:
        mine, other = ("sftp", "ftp") if self.protocol == "sftp" else ("ftp", "sftp")
        single, many = getattr(self, f"{mine}_conn_id"), getattr(self, f"{mine}_conn_ids")
        if getattr(self, f"{other}_conn_id") or getattr(self, f"{other}_conn_ids"):
            raise ValueError(
                f"protocol {self.protocol!r} takes {mine}_conn_id or {mine}_conn_ids, "
                f"not {other}_conn_id(s)"
            )
        if bool(single) == bool(many):
            raise ValueError(
                f"set exactly one of {mine}_conn_id (one server) or {mine}_conn_ids "
                "(primary first, then backups)"
            )
        ids = [single] if single else list(many or [])
        if len(set(ids)) != len(ids):
            raise ValueError(f"{mine}_conn_ids lists a connection twice: {ids}")
        return self

    @model_validator(mode="after")
    def _handshake_over_sftp_only(self) -> RecordingsConfig:
        # The handshake writes on the provider's server through the SFTP session; the FTPS
        # client has no upload/rename yet (#12): refuse rather than silently do nothing.
        if self.protocol == "ftps" and self.on_complete != "none":
            raise ValueError(
                f"on_complete: {self.on_complete} is not available with protocol: ftps yet "
                "(the completion handshake runs over SFTP only); set on_complete: none"
            )
        return self

    @field_validator("done_folder")
    @classmethod
    def _done_folder(cls, value: str) -> str:
        if _FOLDER_NAME_RE.match(value) is None or value in {".", ".."}:
            raise ValueError(
                f"done_folder {value!r} must be one folder name (letters, digits, . _ -), "
                "created inside each direction folder"
            )
        return value

    @property
    def conn_ids(self) -> tuple[str, ...]:
        """The connection ids to try in order: the primary first, then the backups."""
        if self.protocol == "sftp":
            return (self.sftp_conn_id,) if self.sftp_conn_id else tuple(self.sftp_conn_ids or ())
        return (self.ftp_conn_id,) if self.ftp_conn_id else tuple(self.ftp_conn_ids or ())

    @property
    def conn_id(self) -> str:
        """The primary connection id."""
        return self.conn_ids[0]

    @field_validator("directions")
    @classmethod
    def _folders(cls, value: dict[str, str]) -> dict[str, str]:
        for direction, folder in value.items():
            _check_template(folder, {"date"})
            if not folder.startswith("/"):
                raise ValueError(f"{direction}: remote folder {folder!r} must be absolute")
        return value

    @field_validator("poll_interval")
    @classmethod
    def _poll_interval(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(seconds=1):
            raise ValueError("poll_interval must be at least 1s (e.g. 30s, 2m)")
        return value

    @field_validator("filename_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        missing = {"date", "call_id"} - set(compiled.groupindex)
        if missing:
            raise ValueError(f"the pattern must have the named groups {sorted(missing)}")
        # A group becomes a manifest column: one named like a fixed column (a plausible
        # `(?P<direction>IN|OUT)`) would overwrite it in every row.
        clashing = [name for name in compiled.groupindex if name in RESERVED_GROUP_NAMES]
        if clashing:
            raise ValueError(
                f"the group(s) {', '.join(repr(n) for n in clashing)} are named like manifest "
                f"columns; rename them. Reserved names: {', '.join(RESERVED_GROUP_NAMES)}"
            )
        return value

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        probe = dt.date(2026, 11, 25)
        try:
            parsed = dt.datetime.strptime(probe.strftime(value), value).date()
        except ValueError as exc:
            raise ValueError(f"date_format {value!r} does not round-trip: {exc}") from None
        if parsed != probe:
            raise ValueError(f"date_format {value!r} must carry year, month and day")
        return value

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.filename_pattern)

    @property
    def group_names(self) -> list[str]:
        """The pattern's named groups in name order (the manifest's extra columns)."""
        return sorted(self.pattern.groupindex)


Tolerance = int | str


class DailyReportConfig(_Model):
    """The provider's end-of-day report of calls received and emitted."""

    path: str
    format: Literal["csv"] = "csv"
    kind: Literal["summary", "detail"] = "summary"
    direction_column: str
    count_column: str | None = None
    call_id_column: str | None = None
    date_column: str | None = None
    direction_values: dict[Direction, list[str]]
    tolerance: Tolerance = 0

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        _check_template(value, {"date"})
        if not value.startswith("/"):
            raise ValueError(f"report path {value!r} must be absolute")
        return value

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: Tolerance) -> Tolerance:
        if isinstance(value, bool):
            raise ValueError("tolerance must be a count (e.g. 2) or a percentage (e.g. '2%')")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("tolerance must not be negative")
            return value
        if re.fullmatch(r"\d+(\.\d+)?%", value.strip()) is None:
            raise ValueError(f"tolerance must be a count or a percentage like '2%', got {value!r}")
        return value.strip()

    @model_validator(mode="after")
    def _columns_for_kind(self) -> DailyReportConfig:
        if self.kind == "summary" and not self.count_column:
            raise ValueError("a summary report needs count_column")
        if self.kind == "detail" and not self.call_id_column:
            raise ValueError("a detail report needs call_id_column")
        seen: dict[str, str] = {}
        for direction, values in self.direction_values.items():
            for raw in values:
                key = raw.strip().casefold()
                if key in seen and seen[key] != direction:
                    raise ValueError(f"direction value {raw!r} is mapped to two directions")
                seen[key] = direction
        return self

    @model_validator(mode="after")
    def _pins_the_day(self) -> DailyReportConfig:
        # Without the day in its name or a date column, yesterday's report (still on the
        # server) would be reconciled as today's without anyone noticing.
        if "date" not in _template_fields(self.path) and not self.date_column:
            raise ValueError(
                f"the report path {self.path!r} has no {{date…}} and no date_column is set, so "
                "another day's report could be taken for this day's: put the day in the path "
                "(e.g. /exports/reports/calls_{date:%Y%m%d}.csv) or set date_column"
            )
        return self

    def allowed_gap(self, expected: int) -> int:
        """How many recordings the count may differ by for a report that says ``expected``."""
        if isinstance(self.tolerance, int):
            return self.tolerance
        percent = float(self.tolerance.rstrip("%"))
        return int(expected * percent / 100)


class PaginationConfig(_Model):
    """How the CRM export is paged (contract §3 and §7 *Digital*)."""

    type: Literal["cursor", "page", "next_link", "none"] = "none"
    cursor_path: str | None = None
    cursor_param: str = "cursor"
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(default=100, ge=1)
    first_page: int = 1
    next_path: str | None = None
    # Where a page says whether more follow (``meta.has_more``: true/false); false marks the
    # last page, so a short page needs no extra request to prove the end (contract §8.1).
    has_more_path: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> PaginationConfig:
        if self.type == "cursor" and not self.cursor_path:
            raise ValueError("cursor pagination needs cursor_path")
        return self


class DigitalConfig(_Model):
    """The provider CRM's reporting export of chats, e-mails and social messages."""

    http_conn_id: str = Field(min_length=1)
    endpoint: str
    params: dict[str, str] = Field(default_factory=dict)
    pagination: PaginationConfig = PaginationConfig()
    records_path: str | None = None
    total_path: str | None = None
    id_field: str = "id"
    timestamp_field: str | None = None
    content_field: str | None = None
    format: Literal["json", "csv"] = "json"
    timeout: Duration = dt.timedelta(seconds=60)
    max_retries: int = Field(default=5, ge=0)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        for template in value.values():
            _check_template(str(template), {"start", "end", "date"})
        return value


class RetentionConfig(_Model):
    """How long landed personal data is kept (``90d``); None = the project setting."""

    recordings: RetentionDays | None = None
    digital: RetentionDays | None = None
    # Purge a day that is not green too (else such a day is kept and named in the journal).
    purge_incomplete: bool | None = None


class SamplingConfig(_Model):
    """The evaluators' daily sample (#13): sizes, strata and exclusions."""

    recordings: Share = 0
    digital: Share = 0
    strata: list[str] = Field(default_factory=list)
    min_duration: Duration = dt.timedelta(0)
    seed: str | int | None = None

    @field_validator("strata")
    @classmethod
    def _strata(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"strata lists a name twice: {value}")
        return value


class ProviderConfig(_Model):
    """One call center: who it is, when its day is due, and where its data lives."""

    id: str
    name: str
    timezone: str
    schedule: str
    deadline: str
    alert_emails: list[str] = Field(min_length=1)
    owner: str = "cc-intake"
    recordings: RecordingsConfig
    daily_report: DailyReportConfig
    digital: DigitalConfig | None = None
    retention: RetentionConfig = RetentionConfig()
    sampling: SamplingConfig | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if _PROVIDER_ID_RE.match(value) is None:
            raise ValueError(f"id {value!r} must match [a-z0-9_]+")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (expected e.g. Africa/Abidjan)"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        daily_schedule_time(value)
        return value

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if _EMAIL_RE.fullmatch(address) is None:
                raise ValueError(f"{address!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _deadline_after_schedule(self) -> ProviderConfig:
        if parse_hhmm(self.deadline) <= daily_schedule_time(self.schedule):
            raise ValueError(
                f"deadline {self.deadline} must be after the schedule time "
                f"{daily_schedule_time(self.schedule):%H:%M} (both local, day J)"
            )
        return self

    @model_validator(mode="after")
    def _strata_known(self) -> ProviderConfig:
        if self.sampling is None:
            return self
        known = {*BUILTIN_STRATA, *self.recordings.group_names}
        unknown = [name for name in self.sampling.strata if name not in known]
        if unknown:
            raise ValueError(
                f"sampling.strata: {unknown} unknown; use {', '.join(BUILTIN_STRATA)} or a "
                f"group of recordings.filename_pattern ({', '.join(self.recordings.group_names)})"
            )
        return self

    @property
    def dag_id(self) -> str:
        return dag_id_of(self.id)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def deadline_offset(self) -> dt.timedelta:
        """Time from the scheduled run (logical date) to the delivery deadline."""
        start = dt.datetime.combine(dt.date(2000, 1, 1), daily_schedule_time(self.schedule))
        end = dt.datetime.combine(dt.date(2000, 1, 1), parse_hhmm(self.deadline))
        return end - start


def parse_hhmm(value: str) -> dt.time:
    match = _HHMM_RE.match(str(value).strip())
    if match is None:
        raise ValueError(f"expected a local time HH:MM, got {value!r}")
    return dt.time(int(match["h"]), int(match["m"]))


def daily_schedule_time(cron: str) -> dt.time:
    """The time of day of a daily cron (``M H * * *``); anything else is refused."""
    fields = str(cron).split()
    if (
        len(fields) != 5
        or fields[2:] != ["*", "*", "*"]
        or not fields[0].isdigit()
        or not fields[1].isdigit()
        or not (0 <= int(fields[0]) < 60 and 0 <= int(fields[1]) < 24)
    ):
        raise ValueError(f"schedule {cron!r} must be a daily cron 'M H * * *' (e.g. '30 2 * * *')")
    return dt.time(int(fields[1]), int(fields[0]))


def split_emails(text: str) -> tuple[list[str], list[str]]:
    """A comma-separated list of addresses (e.g. ``CC_INTAKE_OPS_EMAILS``): (valid, invalid)."""
    items = [item.strip() for item in str(text).replace(";", ",").split(",") if item.strip()]
    valid = [item for item in items if _EMAIL_RE.fullmatch(item)]
    return list(dict.fromkeys(valid)), [item for item in items if item not in valid]


def _format_error(path: Path, exc: PydanticValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return f"{path}: invalid provider configuration:\n" + "\n".join(lines)


def parse_provider(data: Mapping[str, Any], *, source: Path) -> ProviderConfig:
    """Validate an already-loaded mapping; errors name ``source`` and the field."""
    try:
        return ProviderConfig.model_validate(dict(data))
    except PydanticValidationError as exc:
        raise ConfigError(_format_error(source, exc)) from None


def load_provider(path: Path) -> ProviderConfig:
    """Read and validate one provider YAML file; its ``id`` must equal the file's stem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read provider configuration: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of provider keys, got {type(data).__name__}")
    cfg = parse_provider(data, source=path)
    if cfg.id != path.stem:
        raise ConfigError(f"{path}: id {cfg.id!r} must equal the file name ({path.stem!r})")
    return cfg


# A placeholder whose file says nothing usable still runs daily, so that someone is told.
FALLBACK_SCHEDULE = "0 6 * * *"
FALLBACK_TIMEZONE = "UTC"


class BrokenProvider(BaseModel):
    """A provider file that failed validation: enough to build a visible placeholder DAG.

    ``schedule``, ``timezone``, ``name`` and ``alert_emails`` are what could still be read from
    the broken file (each checked on its own, see :func:`salvage`), else the fallbacks: daily at
    06:00 UTC, and no recipients (the notifier then writes to the operations list).
    """

    model_config = ConfigDict(frozen=True)

    key: str
    path: Path
    error: str
    name: str | None = None
    schedule: str = FALLBACK_SCHEDULE
    timezone: str = FALLBACK_TIMEZONE
    alert_emails: tuple[str, ...] = ()

    @property
    def dag_id(self) -> str:
        return dag_id_of(self.key)


def _valid(check: Any, value: object) -> bool:
    try:
        check(value)
    except (ValueError, TypeError, ZoneInfoNotFoundError):
        return False
    return True


def salvage(path: Path) -> dict[str, Any]:
    """Best-effort read of a broken provider file: the keys a placeholder DAG can still use.

    Each of ``name``, ``schedule``, ``timezone`` and ``alert_emails`` is validated on its own,
    so one bad field does not lose the others; anything unreadable is simply left out. A single
    address written as a string instead of a list still counts, and invalid addresses are
    dropped from the list.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {}
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        found["name"] = name.strip()[:120]
    schedule = data.get("schedule")
    if isinstance(schedule, str) and _valid(daily_schedule_time, schedule):
        found["schedule"] = schedule
    timezone = data.get("timezone")
    if isinstance(timezone, str) and _valid(ZoneInfo, timezone):
        found["timezone"] = timezone
    emails = data.get("alert_emails")
    if isinstance(emails, str):
        emails = [emails]
    if isinstance(emails, list):
        valid = [e.strip() for e in emails if isinstance(e, str) and _EMAIL_RE.fullmatch(e.strip())]
        if valid:
            found["alert_emails"] = tuple(dict.fromkeys(valid))
    return found


def broken_provider(path: Path, error: str, *, key: str | None = None) -> BrokenProvider:
    """The placeholder's facts for a file that failed with ``error``; ``key`` defaults to the
    file's stem made into a provider id (the DAG id is ``ingest_<key>``)."""
    if key is None:
        key = re.sub(r"[^a-z0-9_]", "_", path.stem.lower()) or "unnamed"
    return BrokenProvider(key=key, path=path, error=error, **salvage(path))


def load_providers(folder: Path) -> tuple[list[ProviderConfig], list[BrokenProvider]]:
    """Load every ``*.yaml`` in ``folder`` in sorted order; a broken file never hides the others."""
    good: list[ProviderConfig] = []
    broken: list[BrokenProvider] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            good.append(load_provider(path))
        except ConfigError as exc:
            broken.append(broken_provider(path, str(exc)))
    return good, broken
