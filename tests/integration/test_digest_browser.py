"""The morning digest page in headless Chromium at 1024 px: every row there, nothing overflows.

The page is the one the DAG writes (``digests/<day>.html``, also the e-mail's HTML part), opened
from disk as an operator opens it from the file share. The screenshot is kept as a test
artifact: in the test's tmp folder and in ``.artifacts/`` (ignored by git) for CI to collect.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path

import pytest

from include.cc_intake.digest import (
    DigestLinks,
    DigestProvider,
    build_digest,
    render_digest,
    write_digest,
)
from tests import digest_data as D
from tests.integration.test_overview_browser import CHROMIUM, DevTools, devtools_page

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium not installed (Debian package `chromium`; .ci/run installs it)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts"
WIDTH = 1024
LONG_NAME = "Centre d'appels interrégional " + "Abidjan-Yamoussoukro-Bouaké" * 3


def _page(root: Path) -> Path:
    D.write_mixed_day(root)
    providers = [*D.digest_providers(), DigestProvider("long_name_co", LONG_NAME, "Africa/Abidjan")]
    result = build_digest(root, providers, at=D.AT, zone="Africa/Abidjan")
    links = DigestLinks(
        ui_base="http://airflow.example.org:8080/",
        proof_base="http://airflow.example.org:8080/cc-intake/quality/",
        overview="http://airflow.example.org:8080/cc-intake/",
    )
    return write_digest(root, result.day, render_digest(result, links, digest_at="09:00 UTC").html)


def test_the_digest_page_at_1024_px(tmp_path: Path) -> None:
    import websockets

    page = _page(tmp_path / "data")
    shot = tmp_path / "digest-1024.png"
    with devtools_page(tmp_path / "profile") as page_ws:

        async def scenario() -> dict:
            async with websockets.connect(page_ws, max_size=None) as ws:
                tools = DevTools(ws)
                await tools.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=WIDTH,
                    height=900,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await tools.call("Page.navigate", url=page.as_uri())
                await tools.wait_for("document.readyState === 'complete' && !!document.body")
                found = await tools.evaluate(
                    """({
                      width: window.innerWidth,
                      scroll: document.documentElement.scrollWidth,
                      body: document.body.scrollWidth,
                      rows: [...document.querySelectorAll('tr[data-provider]')].map(
                        r => [r.dataset.provider, r.dataset.status]),
                      widest: Math.max(...[...document.querySelectorAll('body *')].map(
                        e => e.getBoundingClientRect().right)),
                      resources: performance.getEntriesByType('resource').length,
                    })"""
                )
                shot_data = await tools.call(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True
                )
                shot.write_bytes(base64.b64decode(shot_data["data"]))
                return dict(found)

        found = asyncio.run(asyncio.wait_for(scenario(), timeout=120))

    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert found["width"] == WIDTH
    assert dict(found["rows"]) == {**D.EXPECTED_STATUS, "long_name_co": "missing"}
    # No horizontal overflow: nothing is wider than the window, nothing sticks out.
    assert found["scroll"] <= WIDTH and found["body"] <= WIDTH, found
    assert found["widest"] <= WIDTH, found
    assert found["resources"] == 0  # self-contained: nothing loaded besides the page
