"""The worklist plugin inside Airflow's real api-server app: locked per provider, Range-served,
nothing outside the data root (#13)."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from include.cc_intake.worklist import read_worklist, worklist_paths
from include.cc_intake.worklist_page import CONTENT_SECURITY_POLICY
from tests.integration.conftest_overview import AirflowApi
from tests.integration.conftest_worklist import (
    DAY,
    worklist_api,  # noqa: F401 — the fixture
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

PREFIX = "/cc-intake-worklists"
PAGE = f"{PREFIX}/worklists/acme_abidjan/{DAY}.html"
DENIED_PAGE = f"{PREFIX}/worklists/globex_dakar/{DAY}.html"


@pytest.fixture
def client(worklist_api: AirflowApi):  # noqa: F811
    with TestClient(worklist_api.app, follow_redirects=False) as test_client:
        yield test_client


def bearer(api: AirflowApi, username: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.mint_token(username)}"}


def row_of(api: AirflowApi, provider: str, suffix: str) -> tuple[int, str]:
    """(row number, path) of the worklist's recording whose name ends with ``suffix``."""
    csv_path, _ = worklist_paths(api.data_root, provider, DAY)
    items = read_worklist(csv_path, provider=provider, day=DAY)
    return next((n, i.path) for n, i in enumerate(items, 1) if i.path.endswith(suffix))


def test_anonymous_requests_are_refused(client, worklist_api):  # noqa: F811
    row, _ = row_of(worklist_api, "acme_abidjan", ".wav")
    for url in (PAGE, f"{PREFIX}/media/acme_abidjan/{DAY}/{row}"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert "acme" not in response.text and "RIFF" not in response.text
    browser = client.get(PAGE, headers={"Accept": "text/html"})
    assert browser.status_code == 307
    assert parse_qs(urlsplit(browser.headers["location"]).query)["next"][0].endswith(PAGE)


def test_a_user_without_the_providers_dag_permission_gets_403(client, worklist_api):  # noqa: F811
    headers = bearer(worklist_api)
    row, _ = row_of(worklist_api, "globex_dakar", ".wav")
    assert client.get(DENIED_PAGE, headers=headers).status_code == 403
    assert (
        client.get(f"{PREFIX}/media/globex_dakar/{DAY}/{row}", headers=headers).status_code == 403
    )
    media = f"{PREFIX}/media/globex_dakar/{DAY}/{row}"
    assert client.get(media, headers={**headers, "Range": "bytes=0-9"}).status_code == 403
    # The same routes open for a user who may read that DAG, and the operator reads acme's.
    assert client.get(DENIED_PAGE, headers=bearer(worklist_api, "admin")).status_code == 200
    assert client.get(PAGE, headers=headers).status_code == 200


def test_the_page_is_served_with_its_policy(client, worklist_api):  # noqa: F811
    response = client.get(PAGE, headers=bearer(worklist_api))
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy == f"{CONTENT_SECURITY_POLICY}; frame-ancestors 'self'"
    assert "media-src 'self'" in policy and "script-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert "0712345678" not in page and "******78" in page
    assert page.count("<audio") == 3  # PCM WAV, A-law WAV, MP3; the GSM file is a download
    assert "format non lisible dans le navigateur" in page
    csv = client.get(PAGE.replace(".html", ".csv"), headers=bearer(worklist_api))
    assert csv.status_code == 200 and csv.text.startswith("item_id,kind,direction")


def test_range_request_returns_206_with_the_right_bytes(client, worklist_api):  # noqa: F811
    row, rel = row_of(worklist_api, "acme_abidjan", "C00001.wav")
    whole = (worklist_api.data_root / rel).read_bytes()
    url = f"{PREFIX}/media/acme_abidjan/{DAY}/{row}"
    headers = bearer(worklist_api)

    response = client.get(url, headers={**headers, "Range": "bytes=1000-1999"})

    assert response.status_code == 206
    assert response.content == whole[1000:2000]
    assert response.headers["content-range"] == f"bytes 1000-1999/{len(whole)}"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "audio/wav"
    tail = client.get(url, headers={**headers, "Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole[-100:]
    full = client.get(url, headers=headers)
    assert full.status_code == 200 and full.content == whole
    assert full.headers["accept-ranges"] == "bytes"
    beyond = client.get(url, headers={**headers, "Range": f"bytes={len(whole) + 10}-"})
    assert beyond.status_code == 416


def test_gsm_is_offered_as_a_download(client, worklist_api):  # noqa: F811
    row, rel = row_of(worklist_api, "acme_abidjan", ".gsm")
    url = f"{PREFIX}/media/acme_abidjan/{DAY}/{row}?download=1"
    response = client.get(url, headers=bearer(worklist_api))
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.content == (worklist_api.data_root / rel).read_bytes()


def test_nothing_outside_the_worklist_or_the_data_root_is_served(client, worklist_api, tmp_path):  # noqa: F811
    headers = bearer(worklist_api)
    root = worklist_api.data_root
    for url in (
        f"{PREFIX}/media/acme_abidjan/{DAY}/999",  # no such row
        f"{PREFIX}/media/acme_abidjan/{DAY}/0",
        f"{PREFIX}/media/acme_abidjan/../../etc/passwd",
        f"{PREFIX}/media/acme_abidjan/{DAY}/%2e%2e%2f1",
        f"{PREFIX}/worklists/acme_abidjan/..%2f..%2fmanifests%2facme_abidjan%2f{DAY}.csv",
        f"{PREFIX}/worklists/acme_abidjan/{DAY}.json",
        f"{PREFIX}/worklists/ACME/{DAY}.html",
    ):
        assert client.get(url, headers=headers).status_code in (403, 404), url
    # A digital row is not a file to serve.
    items = read_worklist(
        worklist_paths(root, "acme_abidjan", DAY)[0], provider="acme_abidjan", day=DAY
    )
    digital_row = next(n for n, i in enumerate(items, 1) if i.kind == "digital")
    assert (
        client.get(f"{PREFIX}/media/acme_abidjan/{DAY}/{digital_row}", headers=headers).status_code
        == 404
    )
    # A landed file replaced by a symlink pointing out of the data root is refused.
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    row, rel = row_of(worklist_api, "acme_abidjan", "C00004.mp3")
    landed = root / rel
    saved = landed.read_bytes()
    landed.unlink()
    os.symlink(secret, landed)
    try:
        response = client.get(f"{PREFIX}/media/acme_abidjan/{DAY}/{row}", headers=headers)
        assert response.status_code == 404
        assert b"secret" not in response.content
    finally:
        landed.unlink()
        landed.write_bytes(saved)


def test_the_overview_day_cell_opens_the_worklist(client, worklist_api):  # noqa: F811
    from urllib.parse import urljoin

    headers = bearer(worklist_api)
    page = client.get(f"/cc-intake/?end={DAY}&days=3", headers=headers)
    assert page.status_code == 200
    links = re.findall(r'<a class="worklist" href="([^"]+)"', page.text)
    assert links == [f"../cc-intake-worklists/worklists/acme_abidjan/{DAY}.html"]  # not globex
    target = urljoin("http://testserver/cc-intake/", links[0])
    opened = client.get(target, headers=headers)
    assert opened.status_code == 200 and "<title>Liste d&#39;écoute" in opened.text
