"""The morning digest in the overview plugin: linked from the page, served behind the login."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from include.cc_intake.digest import DigestLinks, build_digest, render_digest, write_digest
from tests import digest_data as D
from tests.integration.conftest_overview import (
    AirflowApi,
    airflow_api,  # noqa: F401 — the fixture
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

DIGEST = f"/cc-intake/digests/{D.DAY}.html"
LINKS = DigestLinks("http://a/", "http://a/cc-intake/quality/", "http://a/cc-intake/")


@pytest.fixture(scope="module")
def api(airflow_api: AirflowApi) -> AirflowApi:  # noqa: F811
    D.write_mixed_day(airflow_api.data_root)
    return airflow_api


@pytest.fixture
def client(api: AirflowApi):
    with TestClient(api.app, follow_redirects=False) as test_client:
        yield test_client


def login(client: TestClient, api: AirflowApi, username: str = "operator") -> None:
    response = client.post(
        "/auth/token", json={"username": username, "password": api.passwords()[username]}
    )
    assert response.status_code == 201, response.text
    client.cookies.set("_token", response.json()["access_token"])


def test_the_overview_links_the_latest_digest_which_is_served_behind_the_login(client, api):
    page = f"/cc-intake/?end={D.DAY}"
    login(client, api)
    assert "Dernière synthèse du matin" not in client.get(page).text  # none written yet
    result = build_digest(api.data_root, D.digest_providers(), at=D.AT)
    write_digest(api.data_root, D.DAY, render_digest(result, LINKS).html)

    client.cookies.clear()
    assert client.get(DIGEST).status_code == 401
    login(client, api)
    html = client.get(page).text
    assert f'<a class="digest" href="digests/{D.DAY}.html">Dernière synthèse du matin</a>' in html
    response = client.get(DIGEST)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'none'" in csp
    for pid in D.ZONES:
        assert f'data-provider="{pid}"' in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/cc-intake/digests/..%2F..%2Fairflow_home%2Fpasswords.json",
        "/cc-intake/digests/2026-11-25.json",
        "/cc-intake/digests/.2026-11-25.html.abc.part",
        "/cc-intake/digests/2026-13-40.html",
        "/cc-intake/digests/2026-01-01.html",  # well-formed, not written
    ],
)
def test_nothing_but_a_digest_page_is_served(client, api, path):
    login(client, api)
    response = client.get(path)
    assert response.status_code == 404
    assert "password" not in response.text.lower()
