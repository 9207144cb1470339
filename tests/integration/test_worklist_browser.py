"""The worklist page in headless Chromium, served by Airflow's real api-server app (#13).

The browser gets its session as the UI's does (the ``_token`` cookie from a real login), opens
the page and plays a WAV item: the audio element, fed by the plugin's Range responses, reaches
``readyState`` ≥ 2 (HAVE_CURRENT_DATA) and its clock moves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest_overview import AirflowApi
from tests.integration.conftest_worklist import (
    DAY,
    worklist_api,  # noqa: F401 — the fixture
)
from tests.integration.test_overview_browser import (
    CHROMIUM,
    DevTools,
    Served,
    devtools_page,
    serving,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.airflow_db,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium not installed (Debian package `chromium`; .ci/run installs it)",
    ),
]

PAGE = f"/cc-intake-worklists/worklists/acme_abidjan/{DAY}.html"


@pytest.fixture(scope="module")
def served(worklist_api: AirflowApi) -> Iterator[Served]:  # noqa: F811
    with serving(worklist_api) as served:
        yield served


@pytest.mark.parametrize("name", ["C00001.wav", "C00002.wav"], ids=["pcm", "alaw"])
def test_the_page_plays_a_wav_item(served: Served, tmp_path: Path, name: str) -> None:
    import websockets

    with devtools_page(
        tmp_path / "profile", "--autoplay-policy=no-user-gesture-required"
    ) as page_ws:

        async def scenario() -> dict:
            async with websockets.connect(page_ws, max_size=None) as ws:
                tools = DevTools(ws)
                await tools.call("Page.navigate", url=served.login_url(PAGE))
                await tools.wait_for("document.querySelectorAll('audio').length === 3")
                # The row whose file name (masked on the page, never in a URL) is ``name``.
                audio = (
                    "[...document.querySelectorAll('tr.recording')]"
                    f".find(r => r.textContent.includes('{name}')).querySelector('audio')"
                )
                await tools.evaluate(f"{audio}.play().catch(e => window.playError = String(e))")
                await tools.wait_for(f"{audio}.readyState >= 2 || window.playError", timeout=30)
                await tools.wait_for(f"{audio}.currentTime > 0 || window.playError", timeout=30)
                return await tools.evaluate(
                    f"({{state: {audio}.readyState, error: window.playError || null,"
                    f" media: {audio}.error && {audio}.error.code,"
                    f" duration: {audio}.duration, src: {audio}.currentSrc}})"
                )

        state = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    assert state["error"] is None and state["media"] is None, state
    assert state["state"] >= 2, state
    assert 2.5 < state["duration"] < 4.5, state
    assert re.search(rf"/cc-intake-worklists/media/acme_abidjan/{DAY}/\d+$", state["src"]), state
