"""A local CRM reporting-export server for the sandbox and the tests (stdlib only).

It stands in for provider CRMs with three API styles, all paged and all answering for any
window the client asks for (records are generated on the fly, deterministically from a seed):

``cursor``     ``GET /api/export/interactions?from=…&to=…[&cursor=…]`` → ``{"data": [...],
               "meta": {"next_cursor": …, "total": n}, "links": {"next": …}}``; records carry
               ``id``, ``channel``, ``created_at``, ``agent``, ``customer``, ``messages``.
``page_link``  ``GET /v2/interactions?since=…&until=…&page=n&per_page=m`` → ``{"items": [...],
               "page": n, "per_page": m}`` and an RFC 8288 ``Link`` header (first/prev/next/last)
               plus ``X-Total-Count``; records carry ``interaction_id``, ``date``, ``body``.
``csv``        like ``page_link`` but the page is a CSV file with a header row.

Each route has a fixed number of interactions per local day. Along the way it answers one 429
with ``Retry-After`` (page 2 by default), and has knobs for tests: a malformed page (always or
the first n times), n × 500, a 401, overlapping pages (duplicates, identical or updated in
between), a stated total that is off, a cursor that repeats, endless new cursors or links,
next links on another origin, a silent cap on ``per_page``, purged days, a ``has_more`` flag.
The knobs are plain attributes: a test may change them between two exports.

Run it alone: ``python -m include.cc_intake.sandbox.crm_server --port 8089``.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import csv
import datetime as dt
import email.utils
import io
import json
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

Style = Literal["cursor", "page_link", "csv"]

# --------------------------------------------------------------------------- auth


@dataclass(frozen=True)
class BearerAuth:
    token: str

    def accepts(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"


@dataclass(frozen=True)
class ApiKeyAuth:
    key: str
    header: str = "X-API-Key"

    def accepts(self, headers: Mapping[str, str]) -> bool:
        return headers.get(self.header) == self.key


@dataclass(frozen=True)
class BasicAuth:
    login: str
    password: str

    def accepts(self, headers: Mapping[str, str]) -> bool:
        raw = f"{self.login}:{self.password}".encode()
        return headers.get("Authorization") == "Basic " + base64.b64encode(raw).decode()


Auth = BearerAuth | ApiKeyAuth | BasicAuth

# --------------------------------------------------------------------------- content

_FIRST_NAMES = (
    "Awa", "Koffi", "Mariam", "Yao", "Fatou", "Serge", "Aminata", "Jean-Marc", "Adjoa",
    "Ibrahim", "Chantal", "Moussa", "Nadège", "Kouadio", "Salimata", "Hervé", "Estelle",
    "Bakary", "Christelle", "Ousmane",
)  # fmt: skip
_SURNAMES = (
    "Kouassi", "Traoré", "Koné", "Diallo", "N'Guessan", "Bamba", "Yao", "Ouattara", "Coulibaly",
    "Konan", "Touré", "Aka", "Diabaté", "Gbagbo", "Kouamé", "Sanogo",
)  # fmt: skip
_SOCIAL = ("facebook", "whatsapp", "instagram", "x")
_OFFERS = ("Access", "Évasion", "Tout Canal+", "Essentiel+", "Premium Sport")
_CHANNELS_TV = ("Canal+ Sport", "Ciné+ Frisson", "Novelas TV", "A+ Ivoire", "Nollywood TV")

# Each scenario: the customer's opening, the agent's answer, the customer's follow-up, the close.
_SCENARIOS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Décodeur bloqué",
        "Bonjour, mon décodeur affiche « Erreur E48-32 » depuis ce matin, plus aucune chaîne.",
        "Bonjour {client}, je suis {agent}. Pouvez-vous débrancher le décodeur 30 secondes "
        "puis vérifier le câble de la parabole ?",
        "C'est fait, ça remarche ! Merci beaucoup 🙏",
        "Avec plaisir. Bonne soirée et bon programme sur {tv} !",
    ),
    (
        "Facture incomprise",
        "Bonsoir, j'ai été prélevé deux fois pour mon abonnement {offer} ce mois-ci.",
        "Bonsoir {client}, je vérifie votre compte… Il y a bien eu un double prélèvement, "
        "je lance le remboursement sous 5 jours ouvrés.",
        "D'accord. Vous pouvez me rappeler au {phone} si besoin ?",
        "C'est noté, un conseiller vous rappellera. Excusez-nous pour la gêne occasionnée.",
    ),
    (
        "Changement d'offre",
        "Je voudrais passer de l'offre {offer} à Premium Sport pour la Ligue des champions.",
        "Très bon choix {client} ! Le changement est immédiat, la différence sera "
        "au prorata sur la prochaine facture.",
        "Parfait, et est-ce que je garde {tv} ?",
        "Oui, {tv} reste inclus. Le changement est effectif, redémarrez votre décodeur.",
    ),
    (
        "Demande de résiliation",
        "Bonjour, je déménage à l'étranger et je souhaite résilier mon abonnement.",
        "Bonjour {client}, je suis désolé(e) de vous voir partir. La résiliation prend effet "
        "à la fin du mois en cours ; il faudra restituer le décodeur en agence.",
        "Très bien. Quelle agence est la plus proche de Cocody ?",
        "L'agence de la Riviera 2 est ouverte du lundi au samedi, de 8 h à 18 h.",
    ),
    (
        "Chaîne manquante",
        "Salut, je n'ai plus {tv} depuis hier alors que c'est dans mon bouquet {offer} !!",
        "Bonjour {client}, je renvoie les droits sur votre carte, gardez le décodeur "
        "allumé sur la chaîne 1 pendant 15 minutes.",
        "Ok je patiente…",
        "Les droits sont renvoyés. Dites-nous si la chaîne ne revient pas d'ici 20 h.",
    ),
    (
        "Réabonnement",
        "Comment je fais pour me réabonner avec Mobile Money ? Mon numéro c'est le {phone}.",
        "Bonjour {client}, composez #144# puis choisissez Canal+ et saisissez votre numéro "
        "d'abonné. Le réabonnement est immédiat.",
        "Merci, c'est réglé 👍",
        "Merci à vous et bon visionnage !",
    ),
)


def _phone(rng: random.Random) -> str:
    pairs = " ".join(f"{rng.randrange(100):02d}" for _ in range(4))
    return f"+225 07 {pairs}" if rng.random() < 0.6 else f"07 {pairs}"


@dataclass(frozen=True)
class _Day:
    """One local day's interactions: timestamps are spread over the day, in index order."""

    day: dt.date
    zone: ZoneInfo
    start: dt.datetime
    end: dt.datetime
    count: int
    seed: int

    def rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.day.isoformat()}:{index}")

    def created_at(self, index: int) -> dt.datetime:
        # Slot i holds one record at a random point of its first 80 %: strictly increasing.
        span = (self.end - self.start) / self.count
        offset = span * (index + 0.8 * self.rng(index).random())
        return self.start + dt.timedelta(seconds=int(offset.total_seconds()))

    def interaction(self, index: int) -> dict[str, Any]:
        """The style-neutral interaction ``index`` of the day."""
        rng = self.rng(index)
        rng.random()  # consumed by created_at
        zone = self.zone
        created = self.created_at(index).astimezone(zone)
        channel = rng.choices(("chat", "email", "social"), weights=(5, 3, 2))[0]
        subject, *turns = rng.choice(_SCENARIOS)
        agent_no = rng.randrange(1, 41)
        values = {
            "client": rng.choice(("Madame", "Monsieur")) + " " + rng.choice(_SURNAMES),
            "agent": _FIRST_NAMES[agent_no % len(_FIRST_NAMES)],
            "offer": rng.choice(_OFFERS),
            "tv": rng.choice(_CHANNELS_TV),
            "phone": _phone(rng),
        }
        at = created
        messages = []
        for turn, template in enumerate(turns):
            messages.append(
                {
                    "from": "client" if turn % 2 == 0 else "agent",
                    "at": at.isoformat(timespec="seconds"),
                    "text": template.format(**values),
                }
            )
            step = rng.randrange(20, 180) if channel == "chat" else rng.randrange(300, 3000)
            at = min(at + dt.timedelta(seconds=step), self.end - dt.timedelta(seconds=1))
            at = at.astimezone(zone)
        record: dict[str, Any] = {
            "id": f"CRM-{self.day:%Y%m%d}-{self.seed:03d}-{index + 1:06d}",
            "channel": channel,
            "created_at": created.isoformat(timespec="seconds"),
            "agent": {"id": f"AG{agent_no:03d}", "name": values["agent"]},
            "customer": {"id": f"ABO-****{rng.randrange(10_000):04d}"},
            "subject": subject if channel == "email" else None,
            "platform": rng.choice(_SOCIAL) if channel == "social" else None,
            "messages": messages,
        }
        return record


def _as_style(record: dict[str, Any], style: Style) -> dict[str, Any]:
    if style == "cursor":
        return {k: v for k, v in record.items() if v is not None}
    lines = [
        ("Client" if m["from"] == "client" else "Conseiller") + f" ({m['at'][11:16]}) : {m['text']}"
        for m in record["messages"]
    ]
    return {
        "interaction_id": record["id"],
        "channel": record["channel"],
        "date": record["created_at"],
        "agent": record["agent"]["id"],
        "customer": record["customer"]["id"],
        "subject": record["subject"] or "",
        "body": "\n".join(lines),
    }


# --------------------------------------------------------------------------- routes


@dataclass
class CrmRoute:
    """One export endpoint of the fake CRM, with its data set and its failure knobs.

    :param path: URL path served (exact match).
    :param style: ``cursor``, ``page_link`` or ``csv`` (see the module docstring).
    :param tz: the provider's zone: days are local days.
    :param count: interactions per local day.
    :param seed: makes the data set deterministic (and ids distinct between routes).
    :param page_size: cursor style: records per page; page styles: default ``per_page``.
    :param auth: what the request must carry, or None.
    :param window_params: names of the (start, end) query parameters, both required.
    :param throttle_pages: pages answered once with 429 + ``Retry-After`` on first request.
    :param retry_after: the ``Retry-After`` value sent (seconds or an HTTP date).
    :param fail_500: the first n requests (after auth) answer 500.
    :param malformed_page: this page number always answers 200 with truncated JSON/CSV junk.
    :param reject_auth: every request answers 401, whatever it carries.
    :param malformed_times: the malformed page is malformed only its first n times (None: always).
    :param overlap: each page after the first repeats the last n records of the page before.
    :param overlap_changed: the repeated records come back with other content (``revision``
        2), as a conversation updated between two requests: same id, conflicting versions.
    :param total_delta: added to the stated total (cursor style) to fake a CRM mismatch.
    :param repeat_cursor: the next cursor never advances past page 2 (a looping CRM).
    :param link_origin: scheme://host:port used in next links instead of the server's own.
    :param max_per_page: page styles: a larger ``per_page`` is silently served this many.
    :param emptied_days: local days the CRM has purged: no records, a total of 0.
    :param endless: whatever the cursor or page asked, answer the first page again, with a
        new next cursor or link every time (a CRM that never ends).
    :param has_more_field: page styles: also state in the body whether more pages follow.
    """

    path: str
    style: Style
    tz: str = "Africa/Abidjan"
    count: int = 250
    seed: int = 1
    page_size: int = 100
    auth: Auth | None = None
    window_params: tuple[str, str] = ("from", "to")
    throttle_pages: tuple[int, ...] = (2,)
    retry_after: str = "1"
    fail_500: int = 0
    malformed_page: int | None = None
    malformed_times: int | None = None
    reject_auth: bool = False
    overlap: int = 0
    overlap_changed: bool = False
    total_delta: int = 0
    repeat_cursor: bool = False
    link_origin: str | None = None
    max_per_page: int | None = None
    emptied_days: set[dt.date] = field(default_factory=set)
    endless: bool = False
    has_more_field: str | None = None
    _throttled: set[int] = field(default_factory=set, repr=False)
    _failed_500: int = field(default=0, repr=False)
    _malformed: int = field(default=0, repr=False)

    def day(self, day: dt.date) -> _Day:
        zone = ZoneInfo(self.tz)
        # Bounds in UTC: arithmetic on same-zone datetimes is wall-clock and breaks on DST days.
        start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
        return _Day(day, zone, start, end.astimezone(dt.UTC), self.count, self.seed)

    def window(self, start: dt.datetime, end: dt.datetime) -> list[tuple[_Day, int, int]]:
        """The (day, first index, end index) slices of the records created in [start, end)."""
        zone = ZoneInfo(self.tz)
        slices = []
        current = start.astimezone(zone).date()
        last = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
        while current <= last and start < end:
            if current in self.emptied_days:
                current += dt.timedelta(days=1)
                continue
            data = self.day(current)
            lo = bisect.bisect_left(range(self.count), start, key=data.created_at)
            hi = bisect.bisect_left(range(self.count), end, key=data.created_at)
            if hi > lo:
                slices.append((data, lo, hi))
            current += dt.timedelta(days=1)
        return slices

    def interactions(
        self, slices: list[tuple[_Day, int, int]], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Records ``offset`` .. ``offset + limit`` of the window, in the route's style."""
        out: list[dict[str, Any]] = []
        for data, lo, hi in slices:
            size = hi - lo
            if offset >= size:
                offset -= size
                continue
            for index in range(lo + offset, min(hi, lo + offset + limit - len(out))):
                out.append(_as_style(data.interaction(index), self.style))
            offset = 0
            if len(out) >= limit:
                break
        return out


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server saw it (for assertions)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class _Answer(Exception):
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Answer:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return _Answer(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    if not raw.startswith("offset:"):
        raise ValueError(cursor)
    return int(raw.removeprefix("offset:"))


# --------------------------------------------------------------------------- server


class CrmServer:
    """The fake CRM on 127.0.0.1 in a background thread; ``port=0`` picks a free port."""

    def __init__(self, routes: Sequence[CrmRoute], *, host: str = "127.0.0.1", port: int = 0):
        self.routes = {route.path: route for route in routes}
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the CRM server is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests_seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def start(self) -> int:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # conversations are personal data, even fake ones stay out of stderr

        self._httpd = ThreadingHTTPServer((self.host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll: keep tests quick
            name="crm-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> CrmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self._seen.append(
                SeenRequest(handler.command, parts.path, query, dict(handler.headers.items()))
            )
        try:
            route = self.routes.get(parts.path)
            if route is None:
                raise _json(404, {"error": "not_found", "path": parts.path})
            answer = self._answer(route, query, handler.headers)
        except _Answer as raised:
            answer = raised
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)

    def _answer(self, route: CrmRoute, query: dict[str, str], headers: Any) -> _Answer:
        if route.reject_auth or (route.auth is not None and not route.auth.accepts(headers)):
            raise _json(
                401,
                {"error": "unauthorized", "message": "Jeton d'accès absent ou invalide."},
                {"WWW-Authenticate": 'Bearer realm="crm"'},
            )
        with self._lock:
            if route._failed_500 < route.fail_500:
                route._failed_500 += 1
                raise _json(500, {"error": "internal", "message": "Erreur interne, réessayez."})
        start_name, end_name = route.window_params
        try:
            start = dt.datetime.fromisoformat(query[start_name])
            end = dt.datetime.fromisoformat(query[end_name])
        except (KeyError, ValueError):
            raise _json(
                400,
                {
                    "error": "bad_request",
                    "message": f"{start_name} and {end_name} are required "
                    "ISO-8601 instants with an offset",
                },
            ) from None
        if start.tzinfo is None or end.tzinfo is None:
            raise _json(400, {"error": "bad_request", "message": "offsets are required"})
        if route.style == "cursor":
            try:
                offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
            except ValueError:
                raise _json(400, {"error": "bad_cursor"}) from None
            size = route.page_size
            page = offset // size + 1
        else:
            try:
                page = int(query.get("page", "1"))
                size = int(query.get("per_page", str(route.page_size)))
            except ValueError:
                raise _json(400, {"error": "bad_request", "message": "page/per_page"}) from None
            if page < 1 or not 1 <= size <= 1000:
                raise _json(400, {"error": "bad_request", "message": "page >= 1, per_page 1..1000"})
            if route.max_per_page is not None:
                size = min(size, route.max_per_page)  # silently, as some CRMs do
            offset = (page - 1) * size
        with self._lock:
            if page in route.throttle_pages and page not in route._throttled:
                route._throttled.add(page)
                raise _json(
                    429,
                    {"error": "rate_limited", "message": "Trop de requêtes, patientez."},
                    {"Retry-After": route.retry_after},
                )
        slices = route.window(start, end)
        total = sum(hi - lo for _, lo, hi in slices)
        position = 0 if route.endless else offset
        back = min(route.overlap if page > 1 else 0, position)
        records = route.interactions(slices, position - back, size + back)
        if route.overlap_changed:
            records[:back] = [{**record, "revision": 2} for record in records[:back]]
        with self._lock:
            malformed = route.malformed_page == page and (
                route.malformed_times is None or route._malformed < route.malformed_times
            )
            if malformed:
                route._malformed += 1
        if malformed:
            raise _Answer(
                200,
                b'{"data": [{"id": "CRM-tronque", "messages": [{"text": "Bonjour, mon num',
                {"Content-Type": "application/json"},
            )
        has_next = route.endless or offset + size < total
        if route.style == "cursor":
            return self._cursor_page(route, query, records, offset, size, total, has_next)
        return self._numbered_page(route, query, records, page, size, total, has_next)

    def _origin(self, route: CrmRoute) -> str:
        return route.link_origin or self.base_url

    def _cursor_page(
        self,
        route: CrmRoute,
        query: dict[str, str],
        records: list[dict[str, Any]],
        offset: int,
        size: int,
        total: int,
        has_next: bool,
    ) -> _Answer:
        next_offset = size if route.repeat_cursor else offset + size  # endless: always new
        cursor = _encode_cursor(next_offset) if has_next or route.repeat_cursor else None
        link = None
        if cursor is not None:
            link = f"{self._origin(route)}{route.path}?" + urlencode({**query, "cursor": cursor})
        return _json(
            200,
            {
                "data": records,
                "meta": {"next_cursor": cursor, "total": total + route.total_delta},
                "links": {"next": link},
            },
        )

    def _numbered_page(
        self,
        route: CrmRoute,
        query: dict[str, str],
        records: list[dict[str, Any]],
        page: int,
        size: int,
        total: int,
        has_next: bool,
    ) -> _Answer:
        last = max(1, -(-total // size))

        def link(n: int) -> str:
            target = urlencode({**query, "page": n, "per_page": size})
            return f"{self._origin(route)}{route.path}?{target}"

        rels = [f'<{link(1)}>; rel="first"']
        if page > 1:
            rels.append(f'<{link(page - 1)}>; rel="prev"')
        if has_next:
            rels.append(f'<{link(page + 1)}>; rel="next"')
        rels.append(f'<{link(last)}>; rel="last"')
        headers = {"Link": ", ".join(rels), "X-Total-Count": str(total + route.total_delta)}
        if route.style == "page_link":
            body: dict[str, Any] = {"items": records, "page": page, "per_page": size}
            if route.has_more_field:
                body[route.has_more_field] = has_next
            return _json(200, body, headers)
        buffer = io.StringIO(newline="")
        columns = ["interaction_id", "channel", "date", "agent", "customer", "subject", "body"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(records)
        return _Answer(
            200, buffer.getvalue().encode(), {"Content-Type": "text/csv; charset=utf-8", **headers}
        )


# --------------------------------------------------------------------------- sandbox defaults

SANDBOX_BEARER_TOKEN = "sandbox-crm-token"  # a fake CRM's fake token
SANDBOX_API_KEY = "sandbox-crm-key"


def default_routes(*, tz: str = "Africa/Abidjan", count: int = 240) -> list[CrmRoute]:
    """The sandbox CRMs: a cursor API with a total (bearer token), a paged API with a Link
    header (``X-API-Key``), and a CSV export (bearer token)."""
    return [
        CrmRoute(
            "/api/export/interactions",
            "cursor",
            tz=tz,
            count=count,
            seed=11,
            page_size=50,
            auth=BearerAuth(SANDBOX_BEARER_TOKEN),
        ),
        CrmRoute(
            "/v2/interactions",
            "page_link",
            tz=tz,
            count=count,
            seed=22,
            window_params=("since", "until"),
            auth=ApiKeyAuth(SANDBOX_API_KEY),
        ),
        CrmRoute(
            "/export/interactions.csv",
            "csv",
            tz=tz,
            count=count,
            seed=33,
            auth=BearerAuth(SANDBOX_BEARER_TOKEN),
        ),
    ]


def http_date(when: dt.datetime) -> str:
    """An RFC 9110 HTTP date (for ``retry_after``)."""
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the sandbox CRM export server.")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--tz", default="Africa/Abidjan")
    parser.add_argument("--count", type=int, default=240, help="interactions per day and route")
    args = parser.parse_args(argv)
    with CrmServer(default_routes(tz=args.tz, count=args.count), port=args.port) as server:
        print(f"sandbox CRM on {server.base_url}: {', '.join(server.routes)}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
