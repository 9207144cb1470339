"""The overview page in headless Chromium, served by Airflow's real api-server app.

The app (UI, auth, our plugin) runs in-process under uvicorn on a free port. The browser gets
its session the way the UI's does — the ``_token`` cookie holding a JWT from
``POST /auth/token`` — through a one-route test wrapper that sets the cookie and redirects.
The demo data ends yesterday (UTC), so the page's default window, as the UI menu opens it,
shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin

import httpx
import pytest

from tests.integration.conftest_overview import (
    REPO,
    AirflowApi,
    airflow_api,  # noqa: F401 — the fixture
    write_demo_data,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.airflow_db,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium not installed (Debian package `chromium`; .ci/run installs it)",
    ),
]

LOGIN_PATH = "/__test_login"
PAGE = "/cc-intake/"
UI_VIEW = "/plugin/cc-intake-overview"
SCREENSHOT = REPO / "docs" / "overview.png"  # CC_INTAKE_UPDATE_SCREENSHOT=1 refreshes it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_test_login(app, session: dict[str, str]):
    """The app, plus ``LOGIN_PATH?next=…`` which sets the session cookie and redirects."""
    from starlette.responses import RedirectResponse

    async def wrapper(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == LOGIN_PATH:
            target = parse_qs(scope["query_string"].decode())["next"][0]
            response = RedirectResponse(target, status_code=303)
            response.set_cookie("_token", session["token"], path="/", httponly=True, samesite="lax")
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return wrapper


@dataclass
class Served:
    base: str
    token: str

    def login_url(self, path: str) -> str:
        return f"{self.base}{LOGIN_PATH}?next={quote(path, safe='')}"


@contextlib.contextmanager
def serving(api: AirflowApi) -> Iterator[Served]:
    """``api``'s app under uvicorn on a free port, and a real login's token for ``operator``."""
    import uvicorn

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    session: dict[str, str] = {}
    app = with_test_login(api.app, session)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        password = api.passwords()["operator"]
        response = httpx.post(
            f"{base}/auth/token", json={"username": "operator", "password": password}
        )
        assert response.status_code == 201, response.text
        session["token"] = response.json()["access_token"]
        yield Served(base, session["token"])
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(airflow_api: AirflowApi) -> Iterator[Served]:  # noqa: F811
    write_demo_data(airflow_api.data_root, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
    with serving(airflow_api) as served:
        yield served


def chromium_args(profile: Path) -> list[str]:
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def chromium(*args: str, profile: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    command = [*chromium_args(profile), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


class Links(HTMLParser):
    """The page's cells (their attributes) and links (class, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attr = {k: v or "" for k, v in attrs}
        if tag == "td" and "data-status" in attr:
            self.cells.append(attr)
        if tag == "a" and "href" in attr:
            self.links.append((attr.get("class", ""), attr["href"]))


def test_page_renders_with_coloured_cells_and_links(served: Served, tmp_path: Path):
    result = chromium("--dump-dom", served.login_url(PAGE), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = Links()
    parsed.feed(result.stdout)
    statuses = [cell["data-status"] for cell in parsed.cells]
    assert len(statuses) >= 3 * 30, result.stdout[:2000]
    for status in ("green", "amber", "red", "missing"):
        assert status in statuses, status
    # Every link on the page resolves, with the browser's session, to a real page.
    page_url = f"{served.base}{PAGE}"
    targets = {urljoin(page_url, href) for _, href in parsed.links}
    proof = {t for t in targets if "/cc-intake/quality/" in t}
    dags = {t for t in targets if re.search(r"/dags/ingest_[a-z_]+$", t)}
    runs = {t for t in targets if "/runs" in t}
    assert len(proof) >= 70 and len(dags) == 3 and runs
    with httpx.Client(cookies={"_token": served.token}) as client:
        for target in sorted(proof) + sorted(dags) + sorted(runs)[:5]:
            response = client.get(target, headers={"Accept": "text/html"})
            assert response.status_code == 200, target
        assert "Preuve" in client.get(sorted(proof)[0]).text


def test_page_without_session_is_not_shown(served: Served, tmp_path: Path):
    result = chromium("--dump-dom", f"{served.base}{PAGE}", profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data-status" not in result.stdout


def test_screenshot_of_the_page_in_the_airflow_ui(served: Served, tmp_path: Path):
    shot = tmp_path / "overview.png"
    result = chromium(
        f"--screenshot={shot}",
        "--window-size=1400,900",
        "--virtual-time-budget=20000",  # let the UI's scripts load the frame
        served.login_url(UI_VIEW),
        profile=tmp_path / "profile",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # docs/ keeps one: refreshed on demand, so that a test run leaves the tree clean.
    if os.environ.get("CC_INTAKE_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


@contextlib.contextmanager
def devtools_page(profile: Path, *flags: str) -> Iterator[str]:
    """A headless Chromium with ``flags`` and its DevTools port open: its blank page's WebSocket."""
    args = [*chromium_args(profile), *flags, "--remote-debugging-port=0", "about:blank"]
    browser = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        for line in browser.stderr:  # type: ignore[union-attr]
            if match := re.search(r"DevTools listening on ws://([^/]+)/", line):
                endpoint = match.group(1)
                break
        assert endpoint, "Chromium did not open its DevTools port"
        with urllib.request.urlopen(f"http://{endpoint}/json") as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        yield page["webSocketDebuggerUrl"]
    finally:
        browser.terminate()
        browser.wait(timeout=10)


class DevTools:
    """Just enough of the Chrome DevTools Protocol to evaluate scripts in a page."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")


def test_links_in_the_ui_frame_open_airflow_pages_in_the_ui(served: Served, tmp_path: Path):
    """In the UI the page is a sandboxed iframe: a DAG link must open the DAG in the UI
    itself, not a second UI nested in the frame; a proof link opens in the frame."""
    import websockets

    with devtools_page(tmp_path / "profile") as page_ws:

        async def scenario() -> None:
            async with websockets.connect(page_ws, max_size=None) as ws:
                tools = DevTools(ws)
                await tools.call("Page.navigate", url=served.login_url(UI_VIEW))
                frame = "document.querySelector('iframe')"
                doc = f"{frame}.contentDocument"
                await tools.wait_for(f"!!({frame} && {doc} && {doc}.querySelector('td.cell.red'))")
                assert await tools.evaluate(f"{frame}.getAttribute('src')") == "cc-intake/"
                # A proof link opens inside the frame; the UI's address follows it.
                await tools.evaluate(f"{doc}.querySelector('td.cell.red a.proof').click()")
                await tools.wait_for(f"!!({doc} && {doc}.title.startsWith('Preuve globex_dakar'))")
                assert (await tools.evaluate("location.pathname")).startswith(
                    f"{UI_VIEW}/cc-intake/quality/globex_dakar/"
                )
                await tools.evaluate("history.back()")
                await tools.wait_for(
                    f"!!({frame} && {doc} && {doc}.querySelector('td.provider a'))"
                )
                # A DAG link hands over to the UI: its own DAG page, no frame left.
                await tools.evaluate(f"{doc}.querySelector('td.provider a').click()")
                path = await tools.wait_for(
                    "location.pathname.startsWith('/dags/') && location.pathname"
                )
                assert path == "/dags/ingest_acme_abidjan"
                await tools.wait_for("document.title.includes('ingest_acme_abidjan')")
                assert await tools.evaluate("document.querySelectorAll('iframe').length") == 0

        asyncio.run(asyncio.wait_for(scenario(), timeout=120))


def test_item17_no_inline_script_runs_in_a_served_proof_page(
    served: Served,
    airflow_api: AirflowApi,  # noqa: F811
    tmp_path: Path,
):
    """Were a script ever to slip into a proof page, the served page's CSP stops it."""
    folder = airflow_api.data_root / "quality" / "acme_abidjan" / "2020-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recordings.html").write_text(
        "<!DOCTYPE html><html><head><title>Preuve</title></head>"
        "<body onload=\"document.body.dataset.onload='ran'\"><p id='probe'>intact</p>"
        "<script>document.getElementById('probe').textContent='script ran'</script>"
        "</body></html>",
        encoding="utf-8",
    )
    path = "/cc-intake/quality/acme_abidjan/2020-01-01/recordings.html"

    result = chromium("--dump-dom", served.login_url(path), profile=tmp_path / "profile")

    assert result.returncode == 0, result.stderr[-2000:]
    assert '<p id="probe">intact</p>' in result.stdout, result.stdout[:2000]
    assert "script ran" not in result.stdout.split("</script>")[-1]
    assert 'data-onload="ran"' not in result.stdout
