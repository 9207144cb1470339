"""CRM reporting export: page through a provider CRM's interactions for a day and land them whole.

Pure domain, no Airflow: the caller hands over a ``requests.Session`` that already carries the
connection's auth (``HttpHook(...).get_conn()``) and the connection's base URL
(``hook.base_url``). We never go through ``HttpHook.run``: its default ``check_response`` logs
whole response bodies, and conversations are personal data (contract §7 *Digital*).

What this module promises:

- the day's records land in ``interactions.jsonl`` (one JSON object a line, UTF-8, content
  preserved) through a run-unique temporary file renamed at the end, or not at all;
- the export is complete: with no stated total a short page ends it only when the next page
  is empty or the page's own metadata (``pagination.has_more_path``) marks it last; an empty
  page always ends it; a stated total always wins (contract §8.1);
- one line per id: a record repeated identically is dropped and counted; a record whose id
  came before with other content is a *conflicting id*: the last version received is kept
  (the CRM's latest answer, e.g. a conversation updated between two pages), and the ids are
  counted and named for the proof, which turns the day amber;
- a smaller export never replaces a larger landed one (a CRM purge must not erase proof):
  :class:`ShrunkExportError`, unless the caller says ``replace=True``;
- memory stays flat: one page and, per id seen, a short digest of its content;
- a page that came whole but unreadable is asked again twice within a minute, then
  :class:`MalformedPageError` (not worth a task retry minutes later);
- every failure is an :class:`ExportError` naming provider, day, URL path (never the query
  string, which may carry secrets), page number, HTTP status and a short excerpt redacted
  by :mod:`include.cc_intake.redact` (the connection's credentials, other secrets, phones);
- credentials are only ever sent to the connection's origin (next links and redirects to
  another origin fail).
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests

from include.cc_intake.config import DigitalConfig
from include.cc_intake.days import day_bounds
from include.cc_intake.errors import (
    ConfigError,
    ExportError,
    MalformedPageError,
    ShrunkExportError,
)
from include.cc_intake.layout import atomic_writer, tmp_path_for
from include.cc_intake.redact import mask_phone, redact_secrets, redact_values

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_S = 120.0
"""A CRM asking us to wait longer than this is waited for this long, then asked again."""
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
CONNECT_TIMEOUT_CAP_S = 10.0
MAX_REDIRECTS = 5
MAX_PAGES = 100_000
"""Last-resort guard against a CRM that keeps inventing new cursors or links."""
EXCERPT_CHARS = 200
MALFORMED_RETRY_DELAYS_S = (5.0, 15.0)
"""A page that came whole but unreadable is asked again after each of these pauses, then the
export fails: a CRM glitch clears in seconds, and a task retry minutes later would only fetch
the same page again (issue #10 item 18)."""
CONFLICT_EXAMPLES = 20
"""Conflicting ids named in the result (and the proof); the count is always exact."""

_MISSING: Any = object()

Sleep = Callable[[float], None]


# --------------------------------------------------------------------------- small helpers


def render_params(cfg: DigitalConfig, day: dt.date, tz: str | ZoneInfo) -> dict[str, str]:
    """The request parameters with ``{start}``, ``{end}`` and ``{date}`` filled in.

    ``start`` is the day's 00:00 and ``end`` the next day's 00:00 (exclusive), ISO-8601 with the
    provider's UTC offset at that instant (so a DST day carries two different offsets).
    """
    start, end = day_bounds(day, tz)
    values = {
        "start": start.isoformat(timespec="seconds"),
        "end": end.isoformat(timespec="seconds"),
        "date": day.isoformat(),
    }
    return {name: str(template).format(**values) for name, template in cfg.params.items()}


def get_path(obj: Any, path: str | None, default: Any = None) -> Any:
    """Follow a dotted path (``meta.next_cursor``, ``links.0.href``) into parsed JSON.

    An empty path returns ``obj`` itself; a missing key, index or non-container returns
    ``default``.
    """
    if not path:
        return obj
    current = obj
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return default
            current = current[index]
        else:
            return default
    return current


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    Returns None when the header is absent or unreadable (the caller then backs off on its own);
    a date in the past means 0. Not capped here.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+", text):
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may come without a zone
        when = when.replace(tzinfo=dt.UTC)
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())


_LINK_RE = re.compile(
    r"<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[^;,=\"\s]+\s*(?:=\s*(?:\"[^\"]*\"|[^;,\"]*))?)*)"
)
_LINK_PARAM_RE = re.compile(
    r";\s*(?P<name>[^;=\s]+)\s*(?:=\s*(?:\"(?P<q>[^\"]*)\"|(?P<t>[^;,\s]*)))?"
)


def parse_link_header(value: str | None) -> dict[str, str]:
    """RFC 8288 ``Link`` header → {relation type: target}; the first link of a relation wins."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK_RE.finditer(value):
        for param in _LINK_PARAM_RE.finditer(match["params"]):
            if param["name"].lower() != "rel":
                continue
            for rel in (param["q"] or param["t"] or "").lower().split():
                links.setdefault(rel, match["url"].strip())
    return links


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # unparsable port: never equal to a real origin
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base_url`` (default ports implied)."""
    origin = _origin(url)
    return bool(origin[0] and origin[1]) and origin == _origin(base_url)


def join_url(base_url: str, endpoint: str) -> str:
    """The endpoint's URL the way HttpHook builds it (base URL and endpoint, one slash between)."""
    if base_url and not base_url.endswith("/") and endpoint and not endpoint.startswith("/"):
        return f"{base_url}/{endpoint}"
    if base_url.endswith("/") and endpoint.startswith("/"):
        return base_url + endpoint[1:]
    return base_url + endpoint


def _network_reason(exc: Exception) -> str:
    """The useful end of a requests/urllib3 network error (``[Errno 111] Connection refused``)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|Connection \w+[^'\")]*", text)
    return found.group(0).strip() if found else text


def _credential_values(session: requests.Session) -> list[str]:
    """Secret values the session carries, so that no message can ever echo them."""
    values: list[str] = []
    for name, value in session.headers.items():
        if re.search(r"auth|token|key|secret|pass|cookie|session", str(name), re.IGNORECASE):
            text = str(value)
            values.append(text)
            values.extend(text.split()[1:])  # "Bearer xyz" → also "xyz"
    auth = session.auth
    if isinstance(auth, tuple) and len(auth) == 2:
        values.append(str(auth[1]))
    elif password := getattr(auth, "password", None):
        values.append(str(password))
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class ExportResult:
    """What one day's export landed (small: fit for XCom)."""

    records: int
    pages: int
    stated_total: int | None
    duplicates_dropped: int
    path: Path
    conflicting_ids: int = 0
    """Ids received with different contents; the last version of each was kept."""
    conflicting_examples: tuple[str, ...] = ()
    previous: int | None = None
    """Records in the export this one replaced (None: there was none)."""


@dataclass(frozen=True)
class _Page:
    number: int
    path: str  # the URL path requested, for messages
    url: str  # the URL requested, against which a relative next link resolves
    records: list[Any]
    ids: list[str]
    total: int | None
    has_more: bool | None  # the page's own word on whether more pages follow
    next: str | None  # cursor or absolute next URL, when the page names one


class _Client:
    """One day's conversation with one CRM: transport, retries and message wording."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        cfg: DigitalConfig,
        *,
        provider: str,
        day: dt.date,
        sleep: Sleep,
        connect_timeout: float | None,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.cfg = cfg
        self.provider = provider
        self.day = day
        self.sleep = sleep
        read = cfg.timeout.total_seconds()
        self.timeout = (connect_timeout or min(CONNECT_TIMEOUT_CAP_S, read), read)
        self._secrets = _credential_values(session)

    # -- wording

    def where(self, url: str, number: int) -> str:
        return (
            f"CRM export of provider {self.provider} for {self.day.isoformat()}: "
            f"GET {urlsplit(url).path or '/'} (page {number})"
        )

    def clean(self, text: str, limit: int = EXCERPT_CHARS) -> str:
        """Short, single-line excerpt of a body or error text, redacted (see ``redact``)."""
        text = redact_values(text, self._secrets)
        text = re.sub(r"(https?://[^\s?#'\"]*|/[^\s?#'\"]*)\?[^\s'\"]*", r"\1?…", text)
        text = mask_phone(redact_secrets(" ".join(text.split())))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def excerpt(self, response: requests.Response) -> str:
        raw = response.content[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        return self.clean(raw) or "(empty body)"

    def fail(
        self,
        url: str,
        number: int,
        what: str,
        *,
        status: int | None = None,
        cls: type[ExportError] = ExportError,
        **facts: Any,
    ) -> ExportError:
        """The error to raise, its message naming provider, day, URL path and page."""
        return cls(
            f"{self.where(url, number)}: {what}",
            provider=self.provider,
            day=self.day,
            url=urlsplit(url).path or "/",
            page=number,
            status=status,
            **facts,
        )

    def malformed(self, url: str, number: int, what: str) -> ExportError:
        return self.fail(url, number, f"malformed page: {what}", cls=MalformedPageError)

    # -- transport

    def backoff(self, attempt: int) -> float:
        return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)

    def get(self, url: str, params: Mapping[str, Any] | None, number: int) -> requests.Response:
        """GET with explicit timeouts; 429/503 honour Retry-After, 5xx and network errors back off.

        Redirects are followed by hand so that credentials never leave the connection's origin.
        """
        attempt = 0
        redirects = 0
        max_retries = self.cfg.max_retries
        while True:
            try:
                response = self.session.get(
                    url, params=params, timeout=self.timeout, allow_redirects=False
                )
            except requests.exceptions.SSLError as exc:
                raise self.fail(url, number, f"TLS error ({self.clean(str(exc))})") from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                reason = f"{type(exc).__name__} ({self.clean(_network_reason(exc))})"
                if attempt >= max_retries:
                    parts = urlsplit(url)
                    raise self.fail(
                        url,
                        number,
                        f"no answer from {parts.scheme}://{parts.netloc} after {attempt + 1} "
                        f"attempt(s): {reason}",
                    ) from None
                delay = self.backoff(attempt)
                log.warning(
                    "%s: %s; retry %d/%d in %.0f s",
                    self.where(url, number),
                    type(exc).__name__,
                    attempt + 1,
                    max_retries,
                    delay,
                )
                self.sleep(delay)
                attempt += 1
                continue
            except requests.RequestException as exc:
                raise self.fail(url, number, f"request failed: {self.clean(str(exc))}") from None

            status = response.status_code
            if 200 <= status < 300:
                return response
            location = response.headers.get("Location")
            if status in (301, 302, 303, 307, 308) and location:
                target = urljoin(response.url or url, location)
                if not same_origin(target, self.base_url):
                    raise self.fail(
                        url,
                        number,
                        f"HTTP {status} redirects to another origin "
                        f"({urlsplit(target).scheme}://{urlsplit(target).netloc}); "
                        "refusing to send the connection's credentials there",
                        status=status,
                    )
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise self.fail(
                        url, number, f"more than {MAX_REDIRECTS} redirects", status=status
                    )
                url, params = target, None
                continue
            retryable = status in (429, 503) or 500 <= status < 600
            if not retryable:
                raise self.fail(
                    url,
                    number,
                    f"HTTP {status} {response.reason or ''}".rstrip()
                    + f", expected 2xx; not retried; body: {self.excerpt(response)!r}",
                    status=status,
                )
            if attempt >= max_retries:
                raise self.fail(
                    url,
                    number,
                    f"still HTTP {status} after {attempt + 1} attempt(s); "
                    f"body: {self.excerpt(response)!r}",
                    status=status,
                )
            waited = None
            if status in (429, 503):
                waited = parse_retry_after(response.headers.get("Retry-After"))
            delay = min(RETRY_AFTER_CAP_S, waited) if waited is not None else self.backoff(attempt)
            log.warning(
                "%s: HTTP %d; retry %d/%d in %.0f s%s",
                self.where(url, number),
                status,
                attempt + 1,
                max_retries,
                delay,
                " (Retry-After)" if waited is not None else "",
            )
            self.sleep(delay)
            attempt += 1

    # -- parsing

    def parse(self, response: requests.Response, url: str, number: int) -> tuple[Any, list[Any]]:
        """(body, records) of a page; body is None for CSV pages."""
        if self.cfg.format == "csv":
            return None, self._parse_csv(response, url, number)
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            content = response.content
            if content.lstrip()[:1] in (b"{", b"["):
                # Broken JSON is the CRM's own data (conversations): say where, not what.
                got = f"JSON broken at character {getattr(exc, 'pos', '?')} of {len(content)}"
            else:
                got = f"{response.headers.get('Content-Type') or 'no Content-Type'}: "
                got += repr(self.excerpt(response))
            raise self.malformed(url, number, f"expected a JSON body; got {got}") from None
        records = get_path(body, self.cfg.records_path, _MISSING)
        where_records = f"'{self.cfg.records_path}'" if self.cfg.records_path else "the body"
        if records is _MISSING:
            keys = sorted(body)[:10] if isinstance(body, dict) else type(body).__name__
            raise self.malformed(url, number, f"no records at {where_records} (found {keys})")
        if not isinstance(records, list):
            raise self.malformed(
                url,
                number,
                f"expected a list of records at {where_records}, got {type(records).__name__}",
            )
        return body, records

    def _parse_csv(self, response: requests.Response, url: str, number: int) -> list[Any]:
        charset = requests.utils.get_encoding_from_headers(response.headers)
        declared = "charset" in (response.headers.get("Content-Type") or "").lower()
        try:
            text = response.content.decode(charset if declared and charset else "utf-8-sig")
            return list(csv.DictReader(io.StringIO(text, newline="")))
        except (UnicodeDecodeError, LookupError, csv.Error) as exc:
            raise self.malformed(url, number, f"expected UTF-8 CSV with a header ({exc})") from None

    def total(self, body: Any, url: str, number: int) -> int | None:
        if body is None or not self.cfg.total_path:
            return None
        value = get_path(body, self.cfg.total_path)
        if value is None:
            return None
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
        ):
            raise self.malformed(
                url,
                number,
                f"expected a count at '{self.cfg.total_path}', got {type(value).__name__}",
            )
        return int(value)

    def record_id(self, record: Any, index: int, url: str, number: int) -> str:
        if not isinstance(record, dict):
            raise self.malformed(
                url, number, f"record {index} is a {type(record).__name__}, expected an object"
            )
        value = get_path(record, self.cfg.id_field)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            raise self.malformed(
                url,
                number,
                f"record {index} has no usable '{self.cfg.id_field}' "
                f"(fields: {sorted(record)[:12]})",
            )
        return str(value)

    def has_more(self, body: Any, url: str, number: int) -> bool | None:
        """The page's own word on whether more pages follow; None when it says nothing."""
        path = self.cfg.pagination.has_more_path
        if body is None or not path:
            return None
        value = get_path(body, path)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.malformed(
            url, number, f"expected true or false at '{path}', got {type(value).__name__}"
        )

    def next_pointer(
        self, body: Any, response: requests.Response, url: str, number: int
    ) -> str | None:
        """The cursor or the absolute next URL the page names (None: it names none)."""
        paging = self.cfg.pagination
        if paging.type == "cursor":
            cursor = get_path(body, paging.cursor_path)
            if cursor is None or cursor == "":
                return None
            if isinstance(cursor, bool) or not isinstance(cursor, (str, int)):
                raise self.malformed(
                    url,
                    number,
                    f"expected a cursor string at '{paging.cursor_path}', "
                    f"got {type(cursor).__name__}",
                )
            return str(cursor)
        if paging.type != "next_link":
            return None
        target = get_path(body, paging.next_path) if paging.next_path else None
        if target is None or target == "":
            target = parse_link_header(response.headers.get("Link")).get("next")
        if not target:
            return None
        if not isinstance(target, str):
            raise self.malformed(
                url,
                number,
                f"expected a URL at '{paging.next_path}', got {type(target).__name__}",
            )
        absolute = urljoin(url, target.strip())
        if not same_origin(absolute, self.base_url):
            parts = urlsplit(absolute)
            raise self.fail(
                url,
                number,
                f"next link points to another origin ({parts.scheme}://{parts.netloc}) "
                "than the connection; refusing to send the connection's credentials there",
            )
        return absolute

    def read_page(self, response: requests.Response, url: str, number: int) -> _Page:
        """Everything the export needs from one 2xx answer, or :class:`MalformedPageError`."""
        body, records = self.parse(response, url, number)
        ids = [self.record_id(record, i, url, number) for i, record in enumerate(records)]
        return _Page(
            number=number,
            path=urlsplit(url).path,
            url=url,
            records=records,
            ids=ids,
            total=self.total(body, url, number),
            has_more=self.has_more(body, url, number),
            next=self.next_pointer(body, response, url, number),
        )

    def fetch(self, url: str, query: Mapping[str, Any] | None, number: int) -> _Page:
        """GET and read one page; a whole but unreadable page is asked again, briefly."""
        delays = MALFORMED_RETRY_DELAYS_S
        for attempt in range(len(delays) + 1):
            response = self.get(url, query, number)
            requested = response.url or url
            try:
                return self.read_page(response, requested, number)
            except MalformedPageError as exc:
                if attempt == len(delays):
                    raise MalformedPageError(
                        f"{exc} (same on {attempt + 1} attempts within "
                        f"{sum(delays):.0f} s; not retried further)",
                        attempts=attempt + 1,
                        provider=exc.provider,
                        day=exc.day,
                        url=exc.url,
                        page=exc.page,
                    ) from None
                log.warning(
                    "%s; asking again in %.0f s (%d/%d)",
                    exc,
                    delays[attempt],
                    attempt + 1,
                    len(delays),
                )
                self.sleep(delays[attempt])
        raise AssertionError("unreachable")  # the loop returns or raises


def _pages(
    client: _Client, params: dict[str, str], seen: Collection[str] = frozenset()
) -> Iterator[_Page]:
    """Request page after page following the configured pagination.

    ``seen`` is the caller's collection of ids already exported; the caller adds each page's
    ids to it before asking for the next page. When to stop (contract §8.1):

    - an empty page always ends the export; a non-empty page that brings no new id fails
      (the CRM ignores our position or keeps inventing cursors/links: it would never end);
    - ``page``: a stated total always wins (a short page ends the export once that many ids
      are in, and never before); with no total, the page's own ``has_more`` false ends it,
      and a short page only leads to one more request, which ends the export if it is empty
      (a CRM that caps ``per_page`` below our ``page_size`` sends short pages all along);
    - ``cursor`` / ``next_link``: the page's cursor or link leads on; none, or ``has_more``
      false (unless a stated total is not reached yet), ends the export.
    """
    cfg = client.cfg
    paging = cfg.pagination
    url = join_url(client.base_url, cfg.endpoint)
    if urlsplit(cfg.endpoint).scheme and not same_origin(url, client.base_url):
        raise client.fail(url, 1, "endpoint is on another origin than the connection")
    query: dict[str, Any] | None = dict(params)
    if paging.type == "page":
        query = {
            **params,
            paging.page_param: paging.first_page,
            paging.size_param: paging.page_size,
        }
    followed: set[str] = set()
    stated: int | None = None
    number = 1
    while True:
        if number > MAX_PAGES:
            raise client.fail(url, number, f"more than {MAX_PAGES} pages; giving up")
        page = client.fetch(url, query, number)
        fresh = len({key for key in page.ids if key not in seen})
        yield page
        if stated is None:
            stated = page.total
        if paging.type == "none" or not page.records:
            return
        total_missing = stated is not None and len(seen) < stated
        if paging.type == "page":
            short = len(page.records) < paging.page_size
            if stated is not None:
                if short and not total_missing:
                    return
            elif page.has_more is False:
                return
        elif page.next is None or (page.has_more is False and not total_missing):
            return
        if fresh == 0:
            if paging.type == "page":
                what = f"the CRM seems to ignore '{paging.page_param}'"
            else:
                pointer = "cursor" if paging.type == "cursor" else "next link"
                what = f"the CRM keeps giving a new {pointer}"
            raise client.fail(
                page.url,
                number,
                f"the page's {len(page.records)} record(s) were all exported already: "
                f"{what} (loop guard); the export would never end",
            )
        if paging.type == "page":
            query = {
                **params,
                paging.page_param: paging.first_page + number,
                paging.size_param: paging.page_size,
            }
        else:
            assert page.next is not None
            if page.next in followed:
                kind = {"cursor": "cursor it already gave"}.get(
                    paging.type, "next link already followed"
                )
                raise client.fail(
                    page.url,
                    number,
                    f"the CRM returned a {kind} (loop guard); the export would never end",
                )
            followed.add(page.next)
            if paging.type == "cursor":
                query = {**params, paging.cursor_param: page.next}
            else:
                # Requested as is: the link already carries the query the CRM wants.
                followed.add(page.url)
                url, query = page.next, None
        number += 1


# --------------------------------------------------------------------------- landing


def _safe_token(run_token: str) -> str:
    token = re.sub(r"[^A-Za-z0-9._-]", "_", run_token).strip("._")
    return token[:80] or "run"


def _check_config(cfg: DigitalConfig, provider: str) -> None:
    if cfg.format == "csv" and (
        cfg.pagination.type == "cursor" or cfg.pagination.next_path or cfg.total_path
    ):
        raise ConfigError(
            f"provider {provider}: digital.format csv has no body to read cursor_path, next_path "
            "or total_path from; use pagination page, next_link (Link header) or none"
        )


@dataclass(frozen=True)
class FirstPage:
    """What the CRM's first page of a day says (the onboarding check's probe)."""

    records: int
    stated_total: int | None


class _QuietClient(_Client):
    """The export's own client (retries, redirects, parsing), but no body in any message."""

    def excerpt(self, response: Any) -> str:
        return "(not shown)"


def first_page(
    session: requests.Session,
    base_url: str,
    cfg: DigitalConfig,
    *,
    provider: str,
    day: dt.date,
    tz: str | ZoneInfo,
    sleep: Sleep = time.sleep,
) -> FirstPage:
    """Request only the day's first page, exactly as the export would; write nothing.

    Error messages carry no body excerpt at all: the probe runs on an operator's terminal.
    """
    _check_config(cfg, provider)
    client = _QuietClient(
        session, base_url, cfg, provider=provider, day=day, sleep=sleep, connect_timeout=None
    )
    # The generator is dropped after one page: no further request is made.
    page = next(_pages(client, render_params(cfg, day, tz)))
    return FirstPage(records=len(page.records), stated_total=page.total)


def _digest(record: Any) -> bytes:
    """A short fingerprint of a record's content, blind to key order (identical or not?)."""
    canonical = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=12).digest()


def _count_records(path: Path) -> int | None:
    """Records (non-blank lines) of a landed export; None when there is none."""
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return None


def _keep_last_versions(
    out: IO[str], written: Path, versions: dict[str, int], id_field: str
) -> None:
    """Drop all but the last version of each conflicting id from the file being written.

    ``out`` is the open temporary file, ``written`` its path, ``versions`` how many versions of
    each conflicting id it holds. The file is compacted in place: we only ever drop lines, so
    what is written never overtakes what is still to read.
    """
    out.flush()
    skip = {key: count - 1 for key, count in versions.items()}
    with written.open("rb") as reader:
        out.seek(0)
        for raw in reader:
            key = str(get_path(json.loads(raw), id_field))
            if skip.get(key, 0) > 0:
                skip[key] -= 1
                continue
            out.write(raw.decode("utf-8"))
        out.truncate()


def export_day(
    session: requests.Session,
    base_url: str,
    cfg: DigitalConfig,
    *,
    provider: str,
    day: dt.date,
    tz: str | ZoneInfo,
    dest: Path,
    run_token: str,
    replace: bool = False,
    sleep: Sleep = time.sleep,
    connect_timeout: float | None = None,
) -> ExportResult:
    """Export the CRM's interactions of ``day`` into ``dest`` (``…/interactions.jsonl``).

    Records are streamed page by page into a run-unique temporary file beside ``dest``, one
    line per ``cfg.id_field`` (identical repeats dropped, the last of conflicting versions
    kept), and renamed over ``dest`` only when the last page is in and the export holds at
    least as many records as ``dest`` already does (``replace`` lifts that last condition).
    On any failure the temporary file is removed and ``dest`` is left as it was. ``sleep`` is
    injectable so tests do not wait for real.
    """
    _check_config(cfg, provider)
    client = _Client(
        session,
        base_url,
        cfg,
        provider=provider,
        day=day,
        sleep=sleep,
        connect_timeout=connect_timeout,
    )
    params = render_params(cfg, day, tz)
    token = _safe_token(run_token)
    seen: dict[str, bytes] = {}  # id → digest of the version written last
    versions: dict[str, int] = {}  # conflicting id → versions written
    duplicates = pages = 0
    stated_total: int | None = None
    last_path = cfg.endpoint
    # Nothing under the final name until the last page is in; a failure leaves the old file.
    with atomic_writer(dest, token) as out:
        for page in _pages(client, params, seen):
            pages, last_path = page.number, page.path
            fresh = 0
            for record, key in zip(page.records, page.ids, strict=True):
                digest = _digest(record)
                known = seen.get(key)
                if known == digest:
                    duplicates += 1
                    continue
                if known is None:
                    fresh += 1
                else:
                    versions[key] = versions.get(key, 1) + 1
                seen[key] = digest
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            if stated_total is None:
                stated_total = page.total
            log.info(
                "CRM export %s %s: page %d (%s) gave %d record(s), %d new; %d so far",
                provider,
                day.isoformat(),
                page.number,
                page.path,
                len(page.records),
                fresh,
                len(seen),
            )
        if versions:
            _keep_last_versions(out, tmp_path_for(dest, token), versions, cfg.id_field)
            log.warning(
                "CRM export %s %s: %d id(s) came with different contents; kept the last "
                "version of each: %s",
                provider,
                day.isoformat(),
                len(versions),
                client.clean(", ".join(list(versions)[:CONFLICT_EXAMPLES]), limit=1000),
            )
        records = len(seen)
        previous = _count_records(dest)
        if previous is not None and records < previous:
            if not replace:
                raise client.fail(
                    last_path,
                    pages,
                    f"the CRM now returns {records} interaction(s), the landed export holds "
                    f"{previous}: kept {dest.name} as it is (a purge or an archive on the CRM "
                    'side must not erase proof); run with conf {"replace_digital": true} to '
                    "replace it",
                    cls=ShrunkExportError,
                    previous=previous,
                    got=records,
                    path=dest,
                )
            log.warning(
                "CRM export %s %s: replacing %d landed record(s) with %d, as asked "
                "(replace_digital)",
                provider,
                day.isoformat(),
                previous,
                records,
            )
    log.info(
        "CRM export %s %s: %d record(s) in %d page(s), %d duplicate(s) dropped, "
        "%d conflicting id(s), CRM states %s; landed %s",
        provider,
        day.isoformat(),
        records,
        pages,
        duplicates,
        len(versions),
        "no total" if stated_total is None else stated_total,
        dest,
    )
    return ExportResult(
        records=records,
        pages=pages,
        stated_total=stated_total,
        duplicates_dropped=duplicates,
        path=dest,
        conflicting_ids=len(versions),
        conflicting_examples=tuple(list(versions)[:CONFLICT_EXAMPLES]),
        previous=previous,
    )
