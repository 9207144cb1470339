"""The overview plugin inside Airflow's real api-server app: mounted, listed, and locked."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest_overview import (
    DEMO_END,
    AirflowApi,
    airflow_api,  # noqa: F401 — the fixture
    write_demo_data,
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

PAGE = f"/cc-intake/?end={DEMO_END}"
PROOF = f"/cc-intake/quality/acme_abidjan/{DEMO_END}/recordings.html"


@pytest.fixture(scope="module")
def api(airflow_api: AirflowApi) -> AirflowApi:  # noqa: F811
    write_demo_data(airflow_api.data_root)
    return airflow_api


@pytest.fixture
def client(api: AirflowApi):
    with TestClient(api.app, follow_redirects=False) as test_client:
        yield test_client


def login(client: TestClient, api: AirflowApi, username: str = "operator") -> str:
    """Log in as the UI does: POST /auth/token with the generated password."""
    response = client.post(
        "/auth/token", json={"username": username, "password": api.passwords()[username]}
    )
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def test_unauthenticated_page_is_refused(client):
    response = client.get(PAGE)
    assert response.status_code == 401
    assert "acme_abidjan" not in response.text


def test_unauthenticated_browser_is_sent_to_the_login(client):
    response = client.get(PAGE, headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 307
    target = urlsplit(response.headers["location"])
    assert target.path == "/auth/login"
    assert parse_qs(target.query)["next"][0].endswith(PAGE)


def test_unauthenticated_proof_file_is_refused(client):
    assert client.get(PROOF).status_code == 401


def test_forged_token_is_refused(client, api):
    good = api.mint_token()
    header, payload, signature = good.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    client.cookies.set("_token", forged)
    assert client.get(PAGE).status_code in (401, 403)
    assert client.get(PAGE, headers={"Authorization": f"Bearer {forged}"}).status_code == 403


def test_expired_token_is_refused(client, api):
    expired = api.mint_token(expires_in=-60)
    response = client.get(PAGE, headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401


def test_session_cookie_from_login_opens_the_page(client, api):
    client.cookies.set("_token", login(client, api))
    response = client.get(PAGE)
    assert response.status_code == 200, response.text
    page = response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    for provider in ("acme_abidjan", "globex_dakar", "initech_tunis"):
        assert f'data-provider="{provider}"' in page
    for status in ("green", "amber", "red", "missing"):
        assert f'data-status="{status}"' in page
    assert f'href="quality/acme_abidjan/{DEMO_END}/recordings.html"' in page
    assert 'href="../dags/ingest_globex_dakar"' in page


def test_bearer_token_opens_the_page(client, api):
    response = client.get(PAGE, headers={"Authorization": f"Bearer {api.mint_token('admin')}"})
    assert response.status_code == 200
    assert 'data-provider="initech_tunis"' in response.text


def test_provider_dag_without_any_summary_shows_as_a_grey_row(client, api):
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    dag_ids = ("ingest_newco", "ingest_gone", "other_dag")
    with create_session() as session:
        if session.get(DagBundleModel, "dags-folder") is None:
            session.add(DagBundleModel(name="dags-folder"))
            session.flush()
        for dag_id in dag_ids:
            stale = dag_id == "ingest_gone"
            session.add(DagModel(dag_id=dag_id, bundle_name="dags-folder", is_stale=stale))
    try:
        response = client.get(PAGE, headers={"Authorization": f"Bearer {api.mint_token()}"})
    finally:  # the DB is shared with the other overview test modules
        with create_session() as session:
            session.execute(delete(DagModel).where(DagModel.dag_id.in_(dag_ids)))
    page = response.text
    row = page[page.index('data-provider="newco"') :].split("</tr>")[0]
    assert row.count('data-status="missing"') == 30
    assert 'href="../dags/ingest_newco"' in row
    assert 'data-provider="gone"' not in page and "other_dag" not in page


def test_links_on_the_page_resolve(client, api):
    client.cookies.set("_token", login(client, api))
    page = client.get(PAGE).text
    proof = client.get(PROOF)
    assert proof.status_code == 200
    assert "Preuve acme_abidjan" in proof.text
    assert "default-src 'none'" in proof.headers["content-security-policy"]
    summary = client.get(f"/cc-intake/quality/globex_dakar/{DEMO_END}/summary.json")
    assert summary.json()["status"] == "red"
    # The DAG link, resolved against the page URL, is the UI's DAG page (served by the UI).
    assert 'href="../dags/ingest_acme_abidjan"' in page
    ui = client.get("/dags/ingest_acme_abidjan", headers={"Accept": "text/html"})
    assert ui.status_code == 200 and '<div id="root"' in ui.text


@pytest.mark.parametrize(
    "path",
    [
        "/cc-intake/quality/%2e%2e/%2e%2e/airflow_home/airflow.cfg",
        "/cc-intake/quality/acme_abidjan/..%2F..%2F..%2Fairflow_home%2Fpasswords.json",
        "/cc-intake/quality/acme_abidjan/2026-11-25/%2e%2e",
        "/cc-intake/quality/acme_abidjan/2026-11-25/nothing.json",
    ],
)
def test_nothing_outside_the_proof_files_is_served(client, api, path):
    client.cookies.set("_token", login(client, api))
    response = client.get(path)
    assert response.status_code == 404
    assert "password" not in response.text.lower()


def test_pager_moves_by_thirty_days(client, api):
    client.cookies.set("_token", login(client, api))
    page = client.get(PAGE).text
    earlier = DEMO_END - dt.timedelta(days=30)
    assert f'href="?end={earlier}&amp;days=30"' in page
    older = client.get(f"/cc-intake/?end={earlier}").text
    assert 'data-status="green"' not in older  # the demo data stops 30 days back


def test_plugin_is_registered_with_its_menu_entry(client, api):
    response = client.get(
        "/api/v2/plugins", headers={"Authorization": f"Bearer {api.mint_token('admin')}"}
    )
    assert response.status_code == 200
    plugin = next(p for p in response.json()["plugins"] if p["name"] == "cc_intake_overview")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/cc-intake"
    view = plugin["external_views"][0]
    assert (view["category"], view["url_route"], view["href"]) == (
        "browse",
        "cc-intake-overview",
        "cc-intake/",
    )


def test_item13_and_14_config_error_row_and_undelivered_banner_through_the_plugin(
    client, api, tmp_path
):
    """The real page: a DAG tagged config-error marks its row; waiting .eml files the banner."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    from include.cc_intake import alerts_outbox
    from include.cc_intake.constants import TAG_CONFIG_ERROR

    with create_session() as session:
        if session.get(DagBundleModel, "dags-folder") is None:
            session.add(DagBundleModel(name="dags-folder"))
            session.flush()
        session.add(DagModel(dag_id="ingest_brokenco", bundle_name="dags-folder", is_stale=False))
        session.flush()
        session.add(DagTag(name=TAG_CONFIG_ERROR, dag_id="ingest_brokenco"))
    kept = [
        alerts_outbox.write_undelivered(
            api.data_root,
            to=["ops@example.com"],
            subject=f"[intake][acme_abidjan][{DEMO_END}] délai de livraison dépassé",
            body_html="<p>late</p>",
            sender="intake@example.com",
            dag_id="ingest_acme_abidjan",
            day=DEMO_END,
            at=dt.datetime(2026, 11, 26, 7, n, tzinfo=dt.UTC),
        )
        for n in range(2)
    ]
    try:
        response = client.get(PAGE, headers={"Authorization": f"Bearer {api.mint_token()}"})
    finally:  # the DB and the data root are shared with the other tests of the module
        with create_session() as session:
            session.execute(delete(DagTag).where(DagTag.dag_id == "ingest_brokenco"))
            session.execute(delete(DagModel).where(DagModel.dag_id == "ingest_brokenco"))
        for path in kept:
            path.unlink()
    assert response.status_code == 200
    page = response.text
    row = page[page.index('data-provider="brokenco"') :].split("</tr>")[0]
    assert "data-config-error" in row and "configuration invalide" in row
    healthy = page[page.index('data-provider="acme_abidjan"') :].split("</tr>")[0]
    assert "configuration invalide" not in healthy
    assert "2 alertes non envoyées" in page


def _csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_item17_proof_page_is_served_with_a_csp_that_runs_no_script(client, api, tmp_path):
    from include.cc_intake.proof import write_proof
    from tests.unit.quality_data import _digital, _records

    day = "2026-01-02"  # outside the demo's thirty days
    write_proof(
        api.data_root / "quality" / "acme_abidjan" / day, "digital", _digital(tmp_path, _records())
    )
    client.cookies.set("_token", login(client, api))

    response = client.get(f"/cc-intake/quality/acme_abidjan/{day}/digital.html")

    assert response.status_code == 200
    policy = _csp(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy.get("script-src", ["'none'"]) == ["'none'"]
    assert [name for name, values in policy.items() if "'unsafe-inline'" in values] == ["style-src"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert "<script" not in response.text  # nothing for a script-src to allow
    # The page says the same when opened from the file share, outside the plugin.
    meta = response.text.split('http-equiv="Content-Security-Policy" content="')[1].split('"')[0]
    assert _csp(meta) == {k: v for k, v in policy.items() if k != "frame-ancestors"}
