"""The digest page is for users who may read every provider's DAG (contract §8.1, §10.5).

Airflow's real api-server app with the test-only auth manager of
``tests/integration/deny_auth_manager.py``, which denies one provider's DAG to ``operator``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from include.cc_intake.digest import DigestLinks, build_digest, render_digest, write_digest
from tests import digest_data as D
from tests.integration.conftest_overview import AirflowApi, api_app
from tests.integration.deny_auth_manager import DENIED_DAGS, MANAGER

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

DIGEST = f"/cc-intake/digests/{D.DAY}.html"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowApi]:
    data = tmp_path_factory.mktemp("data")
    D.write_mixed_day(data)
    links = DigestLinks("http://a/", "http://a/cc-intake/quality/", "http://a/cc-intake/")
    result = build_digest(data, D.digest_providers(), at=D.AT)
    write_digest(data, D.DAY, render_digest(result, links).html)
    with api_app(tmp_path_factory.getbasetemp(), data, AIRFLOW__CORE__AUTH_MANAGER=MANAGER) as api:
        yield api


def _client(api: AirflowApi, username: str) -> TestClient:
    client = TestClient(api.app, follow_redirects=False)
    response = client.post(
        "/auth/token", json={"username": username, "password": api.passwords()[username]}
    )
    assert response.status_code == 201, response.text
    client.cookies.set("_token", response.json()["access_token"])
    return client


def test_a_user_who_may_not_read_one_provider_does_not_get_the_digest(api: AirflowApi) -> None:
    assert f"ingest_{D.RED}" in DENIED_DAGS
    assert f"ingest_{D.GREEN}" not in DENIED_DAGS
    with _client(api, "operator") as client:
        # The manager does deny that one DAG, and only it.
        assert client.get(f"/cc-intake/quality/{D.RED}/{D.DAY}/recordings.html").status_code == 403
        assert (
            client.get(f"/cc-intake/quality/{D.GREEN}/{D.DAY}/recordings.html").status_code == 200
        )
        response = client.get(DIGEST)
        assert response.status_code == 403
        assert D.RED not in response.text
    with _client(api, "admin") as client:
        response = client.get(DIGEST)
        assert response.status_code == 200 and f'data-provider="{D.RED}"' in response.text
    with TestClient(api.app, follow_redirects=False) as anonymous:
        assert anonymous.get(DIGEST).status_code == 401
