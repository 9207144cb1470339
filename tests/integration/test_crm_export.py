"""CRM export against the sandbox CRM server on loopback: completeness, retries, atomic landing,
secrets, memory, and the Airflow-side wiring through HttpHook."""

from __future__ import annotations

import datetime as dt
import json
import logging
import stat
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import requests

from include.cc_intake.config import DigitalConfig
from include.cc_intake.crm import ExportResult, export_day
from include.cc_intake.days import day_bounds
from include.cc_intake.errors import ExportError, MalformedPageError, ShrunkExportError
from include.cc_intake.layout import tmp_path_for
from include.cc_intake.sandbox.crm_server import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    CrmRoute,
    CrmServer,
)

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 25)
TZ = "Africa/Abidjan"
TOKEN = "tok-9f8e7d6c5b4a"
CURSOR_PATH = "/api/export/interactions"
V2_PATH = "/v2/interactions"


def cursor_cfg(**overrides: Any) -> DigitalConfig:
    base: dict[str, Any] = {
        "http_conn_id": "crm_test",
        "endpoint": CURSOR_PATH,
        "params": {"from": "{start}", "to": "{end}"},
        "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor"},
        "records_path": "data",
        "total_path": "meta.total",
        "id_field": "id",
        "timestamp_field": "created_at",
        "content_field": "messages",
    }
    base.update(overrides)
    return DigitalConfig.model_validate(base)


def v2_cfg(pagination: dict[str, Any]) -> DigitalConfig:
    return DigitalConfig.model_validate(
        {
            "http_conn_id": "crm_v2",
            "endpoint": V2_PATH,
            "params": {"since": "{start}", "until": "{end}"},
            "pagination": pagination,
            "records_path": "items",
            "id_field": "interaction_id",
        }
    )


def bearer_session(token: str = TOKEN) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def dest_for(root: Path, provider: str = "acme") -> Path:
    return root / "digital" / provider / DAY.isoformat() / "interactions.jsonl"


def export(
    server: CrmServer,
    cfg: DigitalConfig,
    root: Path,
    *,
    session: requests.Session | None = None,
    sleeps: list[float] | None = None,
    run_token: str = "scheduled__2026-11-26T02:30:00+00:00",
) -> ExportResult:
    return export_day(
        session or bearer_session(),
        server.base_url,
        cfg,
        provider="acme",
        day=DAY,
        tz=TZ,
        dest=dest_for(root),
        run_token=run_token,
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )


def expected_ids(route: CrmRoute, id_field: str = "id") -> list[str]:
    start, end = day_bounds(DAY, TZ)
    window = route.window(start, end)
    return [r[id_field] for r in route.interactions(window, 0, 10**9)]


def read_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_every_record_exactly_once_across_overlapping_cursor_pages(tmp_path: Path) -> None:
    route = CrmRoute(
        CURSOR_PATH, "cursor", tz=TZ, count=537, page_size=50, overlap=3, auth=BearerAuth(TOKEN)
    )
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path)
    rows = read_lines(result.path)
    ids = [row["id"] for row in rows]
    assert ids == expected_ids(route)  # every one, once, in the CRM's order
    assert (result.records, result.stated_total, result.pages) == (537, 537, 11)
    assert result.duplicates_dropped == 3 * 10  # the overlap of pages 2..11
    start, end = day_bounds(DAY, TZ)
    assert all(start <= dt.datetime.fromisoformat(r["created_at"]) < end for r in rows)
    # Content preserved byte for byte: UTF-8, not \u-escaped.
    raw = result.path.read_text(encoding="utf-8")
    assert "décodeur" in raw and "\\u00e9" not in raw
    assert all(row["messages"] and row["messages"][0]["text"] for row in rows)


def test_page_numbers_with_link_header_and_api_key(tmp_path: Path) -> None:
    route = CrmRoute(
        V2_PATH,
        "page_link",
        tz=TZ,
        count=310,
        window_params=("since", "until"),
        auth=ApiKeyAuth("k-123456789"),
    )
    session = requests.Session()
    session.trust_env = False
    session.headers["X-API-Key"] = "k-123456789"
    with CrmServer([route]) as server:
        by_link = export(server, v2_cfg({"type": "next_link"}), tmp_path, session=session)
        by_link_ids = [r["interaction_id"] for r in read_lines(by_link.path)]
        by_page = export(
            server, v2_cfg({"type": "page", "page_size": 100}), tmp_path, session=session
        )
        seen = server.requests_seen
    assert by_link_ids == expected_ids(route, "interaction_id")
    assert [r["interaction_id"] for r in read_lines(by_page.path)] == by_link_ids
    # No stated total: the short 4th page (10 records) is confirmed last by an empty 5th.
    assert (by_link.records, by_page.records, by_page.pages) == (310, 310, 5)
    assert all(r.headers.get("X-API-Key") == "k-123456789" for r in seen)


def test_429_then_success(tmp_path: Path) -> None:
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=120, page_size=50, throttle_pages=(2,))
    sleeps: list[float] = []
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path, sleeps=sleeps)
        cursors = [r.query.get("cursor") for r in server.requests_seen]
    assert result.records == 120
    assert sleeps == [1.0]  # the server's Retry-After: 1
    assert len(cursors) == 4 and cursors[1] == cursors[2]  # page 2 asked twice


def test_500_a_few_times_then_success(tmp_path: Path) -> None:
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=60, fail_500=2, throttle_pages=())
    sleeps: list[float] = []
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path, sleeps=sleeps)
    assert (result.records, sleeps) == (60, [1.0, 2.0])


def test_malformed_page_fails_with_path_and_page_and_lands_nothing(tmp_path: Path) -> None:
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=300, page_size=50, malformed_page=3)
    with CrmServer([route]) as server, pytest.raises(ExportError) as caught:
        export(server, cursor_cfg(), tmp_path)
    message = str(caught.value)
    assert "provider acme" in message and "2026-11-25" in message
    assert f"GET {CURSOR_PATH} (page 3)" in message and "expected a JSON body" in message
    assert "cursor=" not in message and "Bonjour" not in message
    folder = dest_for(tmp_path).parent
    assert list(folder.iterdir()) == []  # no interactions.jsonl, no temporary left behind


def test_failed_rerun_keeps_the_previous_file_and_a_good_one_replaces_it(tmp_path: Path) -> None:
    good = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=80, throttle_pages=())
    with CrmServer([good]) as server:
        first = export(server, cursor_cfg(), tmp_path, run_token="run-1")
    before = first.path.read_bytes()
    broken = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=80, page_size=20, malformed_page=2)
    with CrmServer([broken]) as server, pytest.raises(ExportError):
        export(server, cursor_cfg(), tmp_path, run_token="run-2")
    assert first.path.read_bytes() == before
    more = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=90, seed=5, throttle_pages=())
    with CrmServer([more]) as server:
        second = export(server, cursor_cfg(), tmp_path, run_token="run-3")
    assert second.path == first.path and len(read_lines(second.path)) == 90
    assert sorted(p.name for p in second.path.parent.iterdir()) == ["interactions.jsonl"]
    assert not tmp_path_for(second.path, "run-3").exists()
    assert stat.S_IMODE(second.path.stat().st_mode) == 0o640
    for folder in (second.path.parent, second.path.parent.parent, tmp_path / "digital"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def test_auth_header_sent_and_token_never_logged_nor_in_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=75, page_size=25, auth=BearerAuth(TOKEN))
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path)
        seen = server.requests_seen
    assert result.records == 75
    assert [r.headers.get("Authorization") for r in seen] == [f"Bearer {TOKEN}"] * len(seen)
    assert "page 3" in caplog.text  # progress is logged …
    assert TOKEN not in caplog.text  # … the token is not …
    assert "décodeur" not in caplog.text and "Conseiller" not in caplog.text  # … nor content

    caplog.clear()
    refusing = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, reject_auth=True)
    with CrmServer([refusing]) as server, pytest.raises(ExportError) as caught:
        export(server, cursor_cfg(), tmp_path)
    assert "HTTP 401" in str(caught.value) and f"GET {CURSOR_PATH} (page 1)" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text
    assert len(server.requests_seen) == 1  # 4xx: no retry


def _export_peak(root: Path, count: int) -> tuple[ExportResult, int]:
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=count, page_size=200, throttle_pages=())
    with CrmServer([route]) as server:
        tracemalloc.start()
        try:
            result = export(server, cursor_cfg(), root)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return result, peak


def test_ten_thousand_records_with_flat_memory(tmp_path: Path) -> None:
    small, small_peak = _export_peak(tmp_path / "small", 1_000)
    result, peak = _export_peak(tmp_path / "big", 10_000)
    size = result.path.stat().st_size
    assert (small.records, result.records, result.pages) == (1_000, 10_000, 50)
    assert result.stated_total == 10_000
    assert len({r["id"] for r in read_lines(result.path)}) == 10_000
    print(
        f"\nCRM export peak (tracemalloc, server included): 1k records {small_peak / 1e6:.1f} MB,"
        f" 10k records {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
    )
    # Held as Python objects the 10 000 records take about 36 MB (4.5 x the file); streaming
    # keeps one page (server side included: it runs in this process) plus the set of ids.
    assert peak < size * 0.75
    # Ten times the records adds only the ids (~100 bytes each), not the records.
    assert peak - small_peak < 9_000 * 250


@pytest.mark.parametrize("auth_kind", ["bearer_in_extra", "basic_login"])
def test_session_built_by_airflow_http_hook(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    auth_kind: str,
) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    caplog.set_level(logging.DEBUG)
    if auth_kind == "bearer_in_extra":
        auth: Any = BearerAuth("s3cr3t-bearer")
        conn: dict[str, object] = {"extra": {"Authorization": "Bearer s3cr3t-bearer"}}
        secret = "s3cr3t-bearer"
    else:
        auth = BasicAuth("crm-user", "s3cr3t-password")
        conn = {"login": "crm-user", "password": "s3cr3t-password"}
        secret = "s3cr3t-password"
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=130, page_size=50, auth=auth)
    with CrmServer([route]) as server:
        conn.update({"conn_type": "http", "host": "127.0.0.1", "port": server.port})
        conn["schema"] = "http"
        monkeypatch.setenv("AIRFLOW_CONN_CRM_TEST", json.dumps(conn))
        hook = HttpHook(method="GET", http_conn_id="crm_test")
        session = hook.get_conn()
        assert hook.base_url == server.base_url
        result = export_day(
            session,
            hook.base_url,
            cursor_cfg(),
            provider="acme",
            day=DAY,
            tz=TZ,
            dest=dest_for(tmp_path),
            run_token="manual__x",
            sleep=lambda _s: None,
        )
        seen = server.requests_seen
    assert result.records == 130
    assert all(route.auth is not None and route.auth.accepts(r.headers) for r in seen)
    assert secret not in caplog.text


# --------------------------------------------------------------------------- issue #10


def test_item9_a_crm_that_purged_the_day_does_not_replace_the_landed_export(
    tmp_path: Path,
) -> None:
    route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=240, page_size=50, throttle_pages=())
    with CrmServer([route]) as server:
        first = export(server, cursor_cfg(), tmp_path, run_token="run-1")
        before = first.path.read_bytes()
        assert (first.records, first.stated_total) == (240, 240)

        route.emptied_days.add(DAY)  # the CRM purged the day: 0 records, and says 0
        with pytest.raises(ShrunkExportError) as caught:
            export(server, cursor_cfg(), tmp_path, run_token="run-2")
        assert (caught.value.previous, caught.value.got) == (240, 0)
        assert "the CRM now returns 0 interaction(s), the landed export holds 240" in str(
            caught.value
        )
        assert first.path.read_bytes() == before
        assert sorted(p.name for p in first.path.parent.iterdir()) == ["interactions.jsonl"]

        forced = export_day(
            bearer_session(),
            server.base_url,
            cursor_cfg(),
            provider="acme",
            day=DAY,
            tz=TZ,
            dest=dest_for(tmp_path),
            run_token="run-3",
            replace=True,
            sleep=lambda _s: None,
        )
    assert (forced.records, forced.previous) == (0, 240)
    assert forced.path.read_bytes() == b""


def test_item10_a_crm_capping_per_page_below_our_page_size_loses_nothing(tmp_path: Path) -> None:
    route = CrmRoute(
        V2_PATH, "page_link", tz=TZ, count=150, window_params=("since", "until"), max_per_page=50
    )
    with CrmServer([route]) as server:
        result = export(server, v2_cfg({"type": "page", "page_size": 100}), tmp_path)
        per_page = {r.query["per_page"] for r in server.requests_seen}
    assert per_page == {"100"}  # we asked for 100, the CRM sent 50 a page and said nothing
    assert [r["interaction_id"] for r in read_lines(result.path)] == expected_ids(
        route, "interaction_id"
    )
    assert (result.records, result.pages, result.stated_total) == (150, 4, None)


def test_item11_records_updated_between_two_pages_keep_their_last_version(tmp_path: Path) -> None:
    route = CrmRoute(
        CURSOR_PATH,
        "cursor",
        tz=TZ,
        count=120,
        page_size=50,
        overlap=3,
        overlap_changed=True,
        throttle_pages=(),
    )
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path)
    rows = read_lines(result.path)
    ids = [row["id"] for row in rows]
    assert sorted(ids) == sorted(expected_ids(route)) and len(ids) == 120
    # The 3 records repeated at the start of pages 2 and 3 came back changed: last kept.
    revised = [row["id"] for row in rows if row.get("revision") == 2]
    assert len(revised) == 6 and result.conflicting_ids == 6
    assert set(result.conflicting_examples) == set(revised)
    assert result.duplicates_dropped == 0


@pytest.mark.parametrize("style", ["cursor", "next_link"])
def test_item12_endless_new_cursors_or_links_stop_at_the_first_page_with_nothing_new(
    tmp_path: Path, style: str
) -> None:
    if style == "cursor":
        route = CrmRoute(CURSOR_PATH, "cursor", tz=TZ, count=90, page_size=30, endless=True)
        cfg = cursor_cfg()
    else:
        route = CrmRoute(
            V2_PATH,
            "page_link",
            tz=TZ,
            count=90,
            page_size=30,
            window_params=("since", "until"),
            endless=True,
        )
        cfg = v2_cfg({"type": "next_link"})
    with CrmServer([route]) as server:
        with pytest.raises(ExportError) as caught:
            export(server, cfg, tmp_path)
        asked = len(server.requests_seen)
    assert asked == 3  # page 1, page 2 (throttled once), page 2 again: then the guard
    message = str(caught.value)
    assert f"provider acme for {DAY.isoformat()}: GET {route.path} (page 2)" in message
    assert "were all exported already" in message
    assert (caught.value.provider, caught.value.day, caught.value.page) == ("acme", DAY, 2)
    assert list(dest_for(tmp_path).parent.iterdir()) == []


def test_item18_a_page_malformed_twice_is_asked_again_within_a_minute_and_lands(
    tmp_path: Path,
) -> None:
    route = CrmRoute(
        CURSOR_PATH,
        "cursor",
        tz=TZ,
        count=150,
        page_size=50,
        malformed_page=2,
        malformed_times=2,
        throttle_pages=(),
    )
    sleeps: list[float] = []
    with CrmServer([route]) as server:
        result = export(server, cursor_cfg(), tmp_path, sleeps=sleeps)
        asked = len(server.requests_seen)
        route._malformed, route.malformed_times = 0, None  # now malformed for good
        sleeps.clear()
        with pytest.raises(MalformedPageError) as caught:
            export(server, cursor_cfg(), tmp_path, sleeps=sleeps, run_token="run-2")
    assert (result.records, asked) == (150, 5)
    assert sleeps == [5.0, 15.0] and sum(sleeps) < 60
    assert caught.value.attempts == 3 and f"GET {CURSOR_PATH} (page 2)" in str(caught.value)
    assert len(read_lines(result.path)) == 150  # the failed re-run left the landed file alone
