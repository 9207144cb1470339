"""Fixtures for the overview page tests: Airflow's real api-server app, in process.

A temporary AIRFLOW_HOME with a migrated SQLite DB, the project's ``plugins/`` folder and the
Simple auth manager; tokens come from the auth manager itself (``POST /auth/token`` with the
password it generated, or ``generate_jwt``), never from a fake.

Import the fixture in a test module (``from tests.integration.conftest_overview import
airflow_api``). It is module-scoped because Airflow's configuration and ORM are process-global:
each module switches them to the test AIRFLOW_HOME and back (the migrated home is made once
per process) and gets its own data root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[2]
USERS = {"operator": "viewer", "admin": "admin"}
DEMO_END = dt.date(2026, 11, 25)


@functools.cache
def _migrated_home(base: Path) -> dict[str, str]:
    """The environment of a fresh Airflow home whose DB is migrated (once per process)."""
    home = base / "airflow_home"
    (home / "dags").mkdir(parents=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env


@dataclass
class AirflowApi:
    """The api-server app and what a test needs around it."""

    app: FastAPI
    home: Path
    data_root: Path

    def passwords(self) -> dict[str, str]:
        """The passwords the Simple auth manager generated at start-up."""
        return json.loads((self.home / "passwords.json").read_text(encoding="utf-8"))

    def mint_token(self, username: str = "operator", *, expires_in: int | None = None) -> str:
        """A JWT signed by the running auth manager, as its login would issue."""
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        user = SimpleAuthManagerUser(username=username, role=USERS[username])
        manager = get_auth_manager()
        if expires_in is None:
            return manager.generate_jwt(user)
        return manager.generate_jwt(user, expiration_time_in_seconds=expires_in)


def _reset_airflow_globals() -> None:
    from airflow import plugins_manager, settings
    from airflow.api_fastapi.app import purge_cached_app

    settings.configure_vars()
    settings.reconfigure_orm()
    for cached in ("_get_plugins", "_get_ui_plugins", "get_fastapi_plugins"):
        getattr(plugins_manager, cached).cache_clear()
    purge_cached_app()


@contextlib.contextmanager
def api_app(base: Path, data: Path, **environ: str) -> Iterator[AirflowApi]:
    """Airflow's api-server app (core API, UI, auth, our plugins) on a migrated SQLite DB under
    ``base``, reading the data root ``data``; ``environ`` adds settings (e.g. an auth manager).
    """
    env = _migrated_home(base)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**env, "CC_INTAKE_DATA_ROOT": str(data), **environ}.items():
            patch.setenv(key, value)
        if str(REPO) not in sys.path:
            patch.syspath_prepend(str(REPO))
        _reset_airflow_globals()
        from airflow.api_fastapi.app import create_app

        app = create_app(apps="core")
        try:
            yield AirflowApi(app, Path(env["AIRFLOW_HOME"]), data)
        finally:
            patch.undo()
            _reset_airflow_globals()


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowApi]:
    """The api-server app on a data root of its own (read at request time: one per module)."""
    data = tmp_path_factory.mktemp("data")
    with api_app(tmp_path_factory.getbasetemp(), data) as api:
        yield api


def write_summary(data_root: Path, provider: str, day: dt.date, status: str, **counts) -> None:
    """A ``summary.json`` (contract §7) and a proof page for one provider-day."""
    folder = data_root / "quality" / provider / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    got_in, got_out = counts.get("got", (120, 80))
    summary = {
        "provider": provider,
        "day": day.isoformat(),
        "status": status,
        "recordings": {
            "ENTRANTS": {"expected": counts.get("expected_in", 120), "got": got_in},
            "SORTANTS": {"expected": 80, "got": got_out},
        },
        "digital": counts.get("digital", {"expected": 340, "got": 340}),
        "rejected": counts.get("rejected", 0),
        "updated_at": f"{day + dt.timedelta(days=1)}T03:12:00Z",
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "recordings.html").write_text(
        f"<!DOCTYPE html><title>Preuve {provider} {day}</title><h1>{provider} {day}</h1>",
        encoding="utf-8",
    )


def write_demo_data(data_root: Path, end: dt.date = DEMO_END) -> None:
    """Thirty days for three providers: mostly green, some amber and red, a few gaps."""
    for offset in range(30):
        day = end - dt.timedelta(days=offset)
        write_summary(data_root, "acme_abidjan", day, "green")
        if offset == 3:
            write_summary(data_root, "globex_dakar", day, "amber", got=(119, 80))
        elif offset in (0, 11):
            write_summary(
                data_root, "globex_dakar", day, "red", got=(64, 80), rejected=2,
                digital={"expected": 512, "got": 498},
            )  # fmt: skip
        elif offset not in (7, 8):  # two days never processed
            write_summary(data_root, "globex_dakar", day, "green", digital=None)
        if offset < 12:
            write_summary(data_root, "initech_tunis", day, "green" if offset % 5 else "amber")
