"""CRM export client: pagination, transport rules, parsing helpers (real loopback HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from include.cc_intake.config import DigitalConfig
from include.cc_intake.crm import (
    MALFORMED_RETRY_DELAYS_S,
    RETRY_AFTER_CAP_S,
    export_day,
    get_path,
    parse_link_header,
    parse_retry_after,
    render_params,
    same_origin,
)
from include.cc_intake.errors import (
    ConfigError,
    ExportError,
    MalformedPageError,
    ShrunkExportError,
)
from include.cc_intake.sandbox.crm_server import BearerAuth, CrmRoute, CrmServer, http_date

DAY = dt.date(2026, 11, 25)
TZ = "Africa/Abidjan"
TOKEN = "s3cr3t-token-value"


def digital(**overrides: Any) -> DigitalConfig:
    base: dict[str, Any] = {
        "http_conn_id": "crm_test",
        "endpoint": "/api/export/interactions",
        "params": {"from": "{start}", "to": "{end}"},
        "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor"},
        "records_path": "data",
        "total_path": "meta.total",
        "id_field": "id",
        "max_retries": 3,
    }
    base.update(overrides)
    return DigitalConfig.model_validate(base)


class Sleeps(list[float]):
    """Injected instead of time.sleep: records the delays, waits for nothing."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def session(token: str | None = TOKEN) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # a proxy from the environment must not stand between us and loopback
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def run(
    base_url: str, cfg: DigitalConfig, tmp_path: Path, sleeps: Sleeps | None = None, **kw: Any
) -> Any:
    return export_day(
        session(),
        base_url,
        cfg,
        provider="acme",
        day=DAY,
        tz=TZ,
        dest=tmp_path / "digital" / "acme" / DAY.isoformat() / "interactions.jsonl",
        run_token="manual__2026-11-26T02:30:00+00:00",
        sleep=sleeps if sleeps is not None else Sleeps(),
        **kw,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- a scripted server

Reply = tuple[int, dict[str, str], bytes]


class Scripted:
    """A tiny HTTP server answering from a script: {path: [reply, reply, …]} (last one repeats)."""

    def __init__(self, script: dict[str, list[Reply]]) -> None:
        self.script = script
        self.seen: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.seen.append((self.path, dict(self.headers.items())))
                path = self.path.split("?", 1)[0]
                replies = outer.script.get(path) or [(404, {}, b"{}")]
                status, headers, body = replies.pop(0) if len(replies) > 1 else replies[0]
                body = body.replace(b"{origin}", outer.url.encode())
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value.replace("{origin}", outer.url))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Any]:
    servers: list[Scripted] = []

    def make(script: dict[str, list[Reply]]) -> Scripted:
        servers.append(Scripted(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def page(records: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"data": records, **extra}).encode()


OK = {"Content-Type": "application/json"}

# --------------------------------------------------------------------------- pure helpers


def test_render_params_uses_the_provider_offset_and_next_midnight() -> None:
    cfg = digital(params={"from": "{start}", "to": "{end}", "day": "{date}", "fixed": "x"})
    assert render_params(cfg, DAY, TZ) == {
        "from": "2026-11-25T00:00:00+00:00",
        "to": "2026-11-26T00:00:00+00:00",
        "day": "2026-11-25",
        "fixed": "x",
    }
    # A spring-forward day in Paris: 23 hours, two different offsets.
    dst = render_params(cfg, dt.date(2026, 3, 29), "Europe/Paris")
    assert dst["from"] == "2026-03-29T00:00:00+01:00"
    assert dst["to"] == "2026-03-30T00:00:00+02:00"


def test_get_path_follows_dots_and_list_indices() -> None:
    body = {"meta": {"next_cursor": "abc", "total": 0}, "links": [{"href": "/n"}], "x": None}
    assert get_path(body, "meta.next_cursor") == "abc"
    assert get_path(body, "meta.total") == 0
    assert get_path(body, "links.0.href") == "/n"
    assert get_path(body, "links.-1.href") == "/n"
    assert get_path(body, "links.5.href") is None
    assert get_path(body, "meta.missing") is None
    assert get_path(body, "meta.next_cursor.deeper", "dflt") == "dflt"
    assert get_path(body, "x") is None
    assert get_path(body, "") is body
    assert get_path(body, None) is body


def test_retry_after_in_seconds_and_as_http_date() -> None:
    now = dt.datetime(2026, 11, 26, 2, 30, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Thu, 26 Nov 2026 02:30:45 GMT", now=now) == 45.0
    assert parse_retry_after("Thu, 26 Nov 2026 02:29:00 GMT", now=now) == 0.0  # already past
    assert parse_retry_after(http_date(now + dt.timedelta(minutes=2)), now=now) == 120.0
    for unreadable in (None, "", "-3", "1.5", "soon", "Thu, 99 Nov 2026 02:30:45 GMT"):
        assert parse_retry_after(unreadable, now=now) is None


def test_link_header_parsing() -> None:
    header = (
        '<https://crm.example/v2/i?page=1&per_page=50>; rel="first", '
        '<https://crm.example/v2/i?page=3&per_page=50>; rel="next"; title="a, b; c", '
        "</v2/i?page=9>; rel=last, "
        '<https://crm.example/v2/i?page=3>; rel="next"'
    )
    links = parse_link_header(header)
    assert links["next"] == "https://crm.example/v2/i?page=3&per_page=50"  # the first wins
    assert links["last"] == "/v2/i?page=9"
    assert parse_link_header('<http://a/x,y>;rel="prev next"') == {
        "prev": "http://a/x,y",
        "next": "http://a/x,y",
    }
    assert parse_link_header(None) == {}
    assert parse_link_header('<http://a/p>; rel="prev"').get("next") is None


def test_same_origin() -> None:
    base = "https://crm.example.com"
    assert same_origin("https://CRM.example.com:443/a?b=c", base)
    assert same_origin("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/api")
    assert not same_origin("http://crm.example.com/a", base)  # scheme
    assert not same_origin("https://crm.example.com:8443/a", base)  # port
    assert not same_origin("https://evil.example/a", base)  # host
    assert not same_origin("https://crm.example.com@evil.example/a", base)  # userinfo trick
    assert not same_origin("/relative", base)


# --------------------------------------------------------------------------- pagination types


def test_cursor_pagination_follows_the_cursor_and_reads_the_total(tmp_path: Path) -> None:
    route = CrmRoute("/api/export/interactions", "cursor", count=130, page_size=50, tz=TZ)
    with CrmServer([route]) as server:
        result = run(server.base_url, digital(), tmp_path)
        seen = server.requests_seen
    assert (result.records, result.pages, result.stated_total) == (130, 3, 130)
    assert [bool(r.query.get("cursor")) for r in seen] == [False, True, True, True]
    assert len({json.dumps(r) for r in lines(result.path)}) == 130
    assert all(r.query["from"] == "2026-11-25T00:00:00+00:00" for r in seen)


def test_page_pagination_stops_on_a_short_page(tmp_path: Path) -> None:
    route = CrmRoute("/v2/interactions", "page_link", count=120, window_params=("from", "to"))
    cfg = digital(
        endpoint="/v2/interactions",
        pagination={"type": "page", "page_size": 40, "first_page": 1},
        records_path="items",
        total_path=None,
        id_field="interaction_id",
    )
    with CrmServer([route]) as server:
        result = run(server.base_url, cfg, tmp_path)
        pages = [r.query["page"] for r in server.requests_seen]
    # 120 = 3 full pages; the 4th is empty and ends the export (page 2 was throttled once).
    assert pages == ["1", "2", "2", "3", "4"]
    assert (result.records, result.pages, result.stated_total) == (120, 4, None)


def test_page_pagination_stops_on_an_empty_first_page(tmp_path: Path, scripted: Any) -> None:
    server = scripted({"/p": [(200, OK, page([]))]})
    cfg = digital(endpoint="/p", pagination={"type": "page"}, total_path=None)
    result = run(server.url, cfg, tmp_path)
    assert (result.records, result.pages) == (0, 1)
    assert result.path.read_bytes() == b""


def test_page_pagination_loop_guard_when_the_crm_ignores_the_page(
    tmp_path: Path, scripted: Any
) -> None:
    full = page([{"id": i} for i in range(3)])
    server = scripted({"/p": [(200, OK, full)]})
    cfg = digital(endpoint="/p", pagination={"type": "page", "page_size": 3}, total_path=None)
    with pytest.raises(ExportError, match=r"GET /p \(page 2\).*ignore 'page'"):
        run(server.url, cfg, tmp_path)


def test_next_link_from_the_link_header(tmp_path: Path) -> None:
    route = CrmRoute("/v2/interactions", "page_link", count=95, page_size=30, throttle_pages=())
    cfg = digital(
        endpoint="/v2/interactions",
        pagination={"type": "next_link"},
        records_path="items",
        total_path=None,
        id_field="interaction_id",
    )
    with CrmServer([route]) as server:
        result = run(server.base_url, cfg, tmp_path)
        seen = server.requests_seen
    assert (result.records, result.pages) == (95, 4)
    assert [r.query.get("page") for r in seen] == [None, "2", "3", "4"]
    # Links are requested as is: the window travels inside them, not added again.
    assert all(r.query["from"] == "2026-11-25T00:00:00+00:00" for r in seen)


def test_next_link_from_the_body(tmp_path: Path, scripted: Any) -> None:
    server = scripted(
        {
            "/a": [(200, OK, page([{"id": 1}], links={"next": "/b?token=abc"}))],
            "/b": [(200, OK, page([{"id": 2}], links={"next": "{origin}/c"}))],
            "/c": [(200, {**OK, "Link": '</b?token=abc>; rel="next"'}, page([{"id": 3}]))],
        }
    )
    cfg = digital(
        endpoint="/a", pagination={"type": "next_link", "next_path": "links.next"}, total_path=None
    )
    with pytest.raises(ExportError, match=r"GET /c \(page 3\).*already followed \(loop guard\)"):
        run(server.url, cfg, tmp_path)
    assert [path for path, _ in server.seen] == [
        "/a?from=2026-11-25T00%3A00%3A00%2B00%3A00&to=2026-11-26T00%3A00%3A00%2B00%3A00",
        "/b?token=abc",
        "/c",
    ]
    assert not (tmp_path / "digital" / "acme" / DAY.isoformat() / "interactions.jsonl").exists()


def test_next_link_to_another_origin_is_refused(tmp_path: Path) -> None:
    with CrmServer([CrmRoute("/elsewhere", "cursor")]) as other:
        route = CrmRoute(
            "/api/export/interactions",
            "cursor",
            count=30,
            page_size=10,
            link_origin=other.base_url,
        )
        with CrmServer([route]) as server:
            cfg = digital(pagination={"type": "next_link", "next_path": "links.next"})
            with pytest.raises(ExportError, match="another origin") as caught:
                run(server.base_url, cfg, tmp_path)
        assert other.requests_seen == []  # our credentials never went there
    assert "page 1" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_none_pagination_reads_one_page_with_records_at_the_top(
    tmp_path: Path, scripted: Any
) -> None:
    body = json.dumps([{"ref": "a"}, {"ref": "b"}, {"ref": "a"}]).encode()
    server = scripted({"/all": [(200, OK, body)]})
    cfg = digital(
        endpoint="/all",
        pagination={"type": "none"},
        records_path=None,
        total_path=None,
        id_field="ref",
    )
    result = run(server.url, cfg, tmp_path)
    assert (result.records, result.pages, result.duplicates_dropped) == (2, 1, 1)
    assert len(server.seen) == 1


def test_cursor_loop_guard(tmp_path: Path) -> None:
    route = CrmRoute(
        "/api/export/interactions", "cursor", count=100, page_size=10, repeat_cursor=True
    )
    with CrmServer([route]) as server:
        with pytest.raises(ExportError, match=r"page 2\).*cursor it already gave"):
            run(server.base_url, digital(), tmp_path)
        assert len(server.requests_seen) == 3  # page 1, page 2 (429), page 2, then stop


def test_csv_pages(tmp_path: Path) -> None:
    route = CrmRoute("/export/interactions.csv", "csv", count=45, auth=BearerAuth(TOKEN))
    cfg = digital(
        endpoint="/export/interactions.csv",
        format="csv",
        pagination={"type": "page", "page_size": 20},
        records_path=None,
        total_path=None,
        id_field="interaction_id",
    )
    with CrmServer([route]) as server:
        result = run(server.base_url, cfg, tmp_path)
    got = lines(result.path)
    # 20 + 20 + 5: the short third page ends nothing by itself (no total): the empty 4th does.
    assert (result.records, result.pages) == (45, 4)
    assert "\n" in got[0]["body"] and "é" in "".join(r["body"] for r in got)


def test_csv_with_a_cursor_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format csv"):
        run("http://127.0.0.1:9", digital(format="csv", total_path=None), tmp_path)


# --------------------------------------------------------------------------- transport


def test_retry_after_is_honoured_in_both_forms_and_capped(tmp_path: Path, scripted: Any) -> None:
    later = http_date(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
    server = scripted(
        {
            "/p": [
                (429, {"Retry-After": "3"}, b"slow down"),
                (503, {"Retry-After": later}, b"maintenance"),
                (429, {"Retry-After": "3600"}, b""),
                (429, {}, b""),
                (200, OK, page([{"id": 1}])),
            ]
        }
    )
    sleeps = Sleeps()
    cfg = digital(endpoint="/p", pagination={"type": "none"}, max_retries=4)
    result = run(server.url, cfg, tmp_path, sleeps)
    assert result.records == 1
    assert sleeps[0] == 3.0
    assert 25 <= sleeps[1] <= 30
    assert sleeps[2] == RETRY_AFTER_CAP_S
    assert sleeps[3] == 8.0  # no Retry-After: exponential back-off (1, 2, 4, 8 …)


def test_server_errors_back_off_then_fail_with_status_and_excerpt(
    tmp_path: Path, scripted: Any
) -> None:
    body = b'{"error": "boom", "detail": "call +225 07 48 12 33 90 about ' + b"x" * 400 + b'"}'
    server = scripted({"/p": [(502, OK, body)]})
    sleeps = Sleeps()
    with pytest.raises(ExportError) as caught:
        run(server.url, digital(endpoint="/p", max_retries=3), tmp_path, sleeps)
    message = str(caught.value)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(server.seen) == 4
    assert "provider acme" in message and "2026-11-25" in message
    assert "GET /p (page 1)" in message and "HTTP 502 after 4 attempt(s)" in message
    assert "+225 ******90" in message and "48 12 33" not in message
    assert "from=" not in message  # the query string stays out
    excerpt = message.split("body: ", 1)[1]
    assert len(excerpt) <= 202  # 200 characters and the quotes


def test_item14_an_error_excerpt_masks_every_phone_form_and_keeps_reference_numbers(
    tmp_path: Path, scripted: Any
) -> None:
    # The CRM module had its own phone rule, which left these two numbers readable and masked
    # the ticket number; it now uses the one rule of include/cc_intake/redact.py.
    body = (
        b'{"error": "rejected", "detail": "caller 07-12-34-56-78, recording '
        b'20261125_101010_AG1_0698765432.wav, ticket 123456789"}'
    )
    server = scripted({"/p": [(400, OK, body)]})
    with pytest.raises(ExportError) as caught:
        run(server.url, digital(endpoint="/p"), tmp_path, Sleeps())
    message = str(caught.value)
    assert "12-34-56" not in message and "0698765432" not in message
    assert "caller ******78" in message and "AG1_******32.wav" in message
    assert "ticket 123456789" in message


def test_client_errors_fail_at_once_and_never_echo_the_token(tmp_path: Path, scripted: Any) -> None:
    body = f'{{"error": "invalid token Bearer {TOKEN}"}}'.encode()
    server = scripted({"/p": [(401, OK, body)]})
    sleeps = Sleeps()
    with pytest.raises(ExportError, match=r"HTTP 401 .*not retried") as caught:
        run(server.url, digital(endpoint="/p"), tmp_path, sleeps)
    assert (len(server.seen), sleeps) == (1, [])
    assert TOKEN not in str(caught.value) and "***" in str(caught.value)


def test_connection_errors_are_retried_then_named(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens there
    sleeps = Sleeps()
    with pytest.raises(ExportError, match=r"GET /api/export/interactions \(page 1\)") as caught:
        run(f"http://127.0.0.1:{port}", digital(max_retries=2), tmp_path, sleeps)
    assert sleeps == [1.0, 2.0]
    assert f"no answer from http://127.0.0.1:{port} after 3 attempt(s)" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert "from=" not in str(caught.value)


def test_read_timeout_is_explicit(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    try:
        port = listener.getsockname()[1]
        cfg = digital(timeout="1s", max_retries=1)
        with pytest.raises(ExportError, match="ReadTimeout"):
            run(f"http://127.0.0.1:{port}", cfg, tmp_path, connect_timeout=1.0)
    finally:
        listener.close()


def test_redirects_stay_on_the_origin(tmp_path: Path, scripted: Any) -> None:
    with CrmServer([CrmRoute("/x", "cursor")]) as other:
        server = scripted(
            {
                "/old": [(301, {"Location": "/new?sig=1"}, b"")],
                "/new": [(200, OK, page([{"id": 1}]))],
                "/away": [(302, {"Location": f"{other.base_url}/x"}, b"")],
            }
        )
        cfg = digital(endpoint="/old", pagination={"type": "none"})
        assert run(server.url, cfg, tmp_path).records == 1
        with pytest.raises(ExportError, match="redirects to another origin"):
            run(server.url, digital(endpoint="/away"), tmp_path)
        assert other.requests_seen == []


# --------------------------------------------------------------------------- malformed pages


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>Bad gateway</html>", "expected a JSON body; got application/json: '<html>Bad"),
        (b'{"data": [{"id": 1, "text": "Bonjour, mon num', "JSON broken at character 28 of 45"),
        (json.dumps({"items": []}).encode(), "no records at 'data'"),
        (json.dumps({"data": {"id": 1}}).encode(), "expected a list of records at 'data'"),
        (json.dumps({"data": [{"id": 1}, {"name": "x"}]}).encode(), "record 1 has no usable 'id'"),
        (json.dumps({"data": [["x"]]}).encode(), "record 0 is a list"),
        (json.dumps({"data": [], "meta": {"total": "many"}}).encode(), "expected a count"),
    ],
)
def test_malformed_pages_name_the_path_and_page(
    tmp_path: Path, scripted: Any, body: bytes, expected: str
) -> None:
    server = scripted(
        {"/p": [(200, OK, page([{"id": 0}], meta={"next_cursor": "c1"})), (200, OK, body)]}
    )
    dest = tmp_path / "digital" / "acme" / DAY.isoformat() / "interactions.jsonl"
    with pytest.raises(ExportError, match=r"GET /p \(page 2\): malformed page") as caught:
        run(server.url, digital(endpoint="/p"), tmp_path)
    assert expected in str(caught.value)
    assert "Bonjour" not in str(caught.value)  # the CRM's data stays out of messages
    assert list(dest.parent.iterdir()) == []  # neither the file nor its temporary


# --------------------------------------------------------------------------- issue #10


def page_cfg(**overrides: Any) -> DigitalConfig:
    base: dict[str, Any] = {
        "endpoint": "/v2/interactions",
        "pagination": {"type": "page", "page_size": 100},
        "records_path": "items",
        "total_path": None,
        "id_field": "interaction_id",
    }
    base.update(overrides)
    return digital(**base)


def test_item9_a_smaller_export_keeps_the_landed_file_and_names_both_counts(
    tmp_path: Path, scripted: Any
) -> None:
    five = page([{"id": i} for i in range(5)])
    server = scripted({"/p": [(200, OK, five), (200, OK, page([]))]})
    cfg = digital(endpoint="/p", pagination={"type": "none"}, total_path=None)
    landed = run(server.url, cfg, tmp_path)
    before = landed.path.read_bytes()
    assert (landed.records, landed.previous) == (5, None)

    with pytest.raises(ShrunkExportError) as caught:
        run(server.url, cfg, tmp_path)
    error = caught.value
    assert (error.previous, error.got, error.provider, error.day) == (5, 0, "acme", DAY)
    assert (error.url, error.page, error.path) == ("/p", 1, landed.path)
    assert "returns 0 interaction(s), the landed export holds 5" in str(error)
    assert "replace_digital" in str(error)
    assert landed.path.read_bytes() == before
    assert sorted(p.name for p in landed.path.parent.iterdir()) == ["interactions.jsonl"]

    replaced = run(server.url, cfg, tmp_path, replace=True)
    assert (replaced.records, replaced.previous) == (0, 5)
    assert replaced.path.read_bytes() == b""


def test_item10_a_crm_capping_per_page_without_a_total_loses_nothing(tmp_path: Path) -> None:
    route = CrmRoute("/v2/interactions", "page_link", count=150, max_per_page=50, tz=TZ)
    with CrmServer([route]) as server:
        result = run(server.base_url, page_cfg(), tmp_path)
        asked = [(r.query["page"], r.query["per_page"]) for r in server.requests_seen]
    assert result.records == 150 and len({r["interaction_id"] for r in lines(result.path)}) == 150
    # Three short pages (capped at 50 of the 100 asked); only the empty 4th ends the export.
    assert asked == [("1", "100"), ("2", "100"), ("2", "100"), ("3", "100"), ("4", "100")]
    assert result.pages == 4


def test_item10_the_page_saying_it_is_last_ends_without_an_extra_request(tmp_path: Path) -> None:
    route = CrmRoute(
        "/v2/interactions",
        "page_link",
        count=130,
        tz=TZ,
        throttle_pages=(),
        max_per_page=50,
        has_more_field="more",
    )
    cfg = page_cfg(pagination={"type": "page", "page_size": 100, "has_more_path": "more"})
    with CrmServer([route]) as server:
        result = run(server.base_url, cfg, tmp_path)
        asked = [r.query["page"] for r in server.requests_seen]
    # Short pages (capped at 50) saying "more" go on; the short 3rd says "no more": no 4th.
    assert (result.records, asked) == (130, ["1", "2", "3"])


def test_item10_a_stated_total_always_wins(tmp_path: Path, scripted: Any) -> None:
    def numbered(ids: list[int], total: int, more: bool) -> Reply:
        return (200, OK, page([{"id": i} for i in ids], meta={"total": total, "more": more}))

    # Short pages below the total go on, even when the page says it is the last …
    server = scripted(
        {"/p": [numbered([1, 2], 5, False), numbered([3, 4], 5, False), numbered([5], 5, True)]}
    )
    cfg = digital(
        endpoint="/p",
        pagination={"type": "page", "page_size": 3, "has_more_path": "meta.more"},
    )
    result = run(server.url, cfg, tmp_path)
    # … and the short page that completes the total ends it, whatever it says, with no 4th.
    assert (result.records, result.stated_total, len(server.seen)) == (5, 5, 3)


def test_item10_an_empty_page_always_ends_the_export(tmp_path: Path, scripted: Any) -> None:
    server = scripted(
        {
            "/p": [
                (200, OK, page([{"id": 1}], meta={"next_cursor": "c1"})),
                (200, OK, page([], meta={"next_cursor": "c2"})),
            ]
        }
    )
    cfg = digital(endpoint="/p", total_path=None)
    result = run(server.url, cfg, tmp_path)
    assert (result.records, result.pages, len(server.seen)) == (1, 2, 2)


def test_item11_identical_duplicates_are_dropped_conflicting_ones_keep_the_last_version(
    tmp_path: Path, scripted: Any
) -> None:
    first: list[dict[str, Any]] = [{"id": "a", "text": "v1", "n": 1}, {"id": "b", "text": "v1"}]
    second: list[dict[str, Any]] = [
        {"text": "v1", "id": "b"},  # the same record, keys in another order: identical
        {"id": "c", "text": "v1"},
        {"id": "a", "text": "v2", "n": 1},  # updated between the two pages: conflicting
    ]
    third: list[dict[str, Any]] = [
        {"id": "a", "text": "v2", "n": 1},
        {"id": 7, "text": "x"},
        {"id": 7, "text": "y"},
    ]
    server = scripted(
        {
            "/p": [
                (200, OK, page(first, meta={"next_cursor": "c1"})),
                (200, OK, page(second, meta={"next_cursor": "c2"})),
                (200, OK, page(third)),
            ]
        }
    )
    result = run(server.url, digital(endpoint="/p", total_path=None), tmp_path)
    assert lines(result.path) == [
        {"id": "b", "text": "v1"},
        {"id": "c", "text": "v1"},
        {"id": "a", "text": "v2", "n": 1},
        {"id": 7, "text": "y"},
    ]
    assert (result.records, result.duplicates_dropped) == (4, 2)
    assert (result.conflicting_ids, result.conflicting_examples) == (2, ("a", "7"))
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["interactions.jsonl"]


@pytest.mark.parametrize("style", ["cursor", "next_link"])
def test_item12_a_crm_inventing_new_cursors_forever_is_stopped(tmp_path: Path, style: str) -> None:
    if style == "cursor":
        route = CrmRoute("/api/export/interactions", "cursor", count=90, page_size=30, tz=TZ)
        cfg = digital(total_path=None)
    else:
        route = CrmRoute("/v2/interactions", "page_link", count=90, page_size=30, tz=TZ)
        cfg = page_cfg(pagination={"type": "next_link"})
    route.endless, route.throttle_pages = True, ()
    with CrmServer([route]) as server:
        with pytest.raises(ExportError) as caught:
            run(server.base_url, cfg, tmp_path)
        asked = len(server.requests_seen)
    message = str(caught.value)
    assert asked == 2  # not 100 000
    assert f"provider acme for {DAY.isoformat()}: GET {route.path} (page 2)" in message
    assert "all exported already" in message and "loop guard" in message
    assert (caught.value.url, caught.value.page) == (route.path, 2)
    assert not (tmp_path / "digital" / "acme" / DAY.isoformat() / "interactions.jsonl").exists()


def test_item18_a_malformed_page_is_asked_again_twice_within_a_minute(tmp_path: Path) -> None:
    route = CrmRoute(
        "/api/export/interactions", "cursor", count=90, page_size=30, tz=TZ, throttle_pages=()
    )
    route.malformed_page, route.malformed_times = 2, 2
    sleeps = Sleeps()
    with CrmServer([route]) as server:
        result = run(server.base_url, digital(), tmp_path, sleeps)
        cursors = [r.query.get("cursor") for r in server.requests_seen]
    assert result.records == 90
    assert sleeps == list(MALFORMED_RETRY_DELAYS_S) and sum(sleeps) < 60
    assert len(cursors) == 5 and cursors[1] == cursors[2] == cursors[3]

    route.malformed_times, route._malformed = None, 0  # now malformed every time
    sleeps.clear()
    with CrmServer([route]) as server, pytest.raises(MalformedPageError) as caught:
        run(server.base_url, digital(), tmp_path, sleeps)
    assert sleeps == [5.0, 15.0]
    assert (caught.value.attempts, caught.value.page, caught.value.url) == (3, 2, route.path)
    assert "GET /api/export/interactions (page 2): malformed page" in str(caught.value)
    assert "same on 3 attempts" in str(caught.value)
    assert caught.value.details == {
        "url": route.path,
        "page": 2,
        "malformed": True,
        "attempts": 3,
    }
