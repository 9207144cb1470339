"""Where an operator reaches things: Airflow's base URL, the plugin's mount, the proof pages.

One home for these URLs: the task's extra link, the failure e-mails and the overview plugin
import them from here.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

DEFAULT_BASE_URL = "http://localhost:8080"  # Airflow's own fallback when [api] base_url is unset
URL_PREFIX = "/cc-intake"
"""Where the api-server mounts the overview plugin's app (plugins/overview.py)."""
PROOF_ROUTE = "quality"
"""The plugin's route to the proof files: the data root's ``quality/`` folder, as laid out."""
WORKLIST_URL_PREFIX = "/cc-intake-worklists"
"""Where the api-server mounts the worklist plugin's app (plugins/worklist.py, #13)."""
WORKLIST_ROUTE = "worklists"
"""The worklist plugin's route to the pages: the data root's ``worklists/`` folder."""
DIGEST_ROUTE = "digests"
"""The plugin's route to the morning digests: the data root's ``digests/<day>.html``."""


def base_url() -> str:
    """Airflow's ``[api] base_url`` without the trailing slash (contract §7 *Alerts*)."""
    from airflow.providers.common.compat.sdk import conf

    return (conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")


def proof_url(provider: str, day: dt.date | str, name: str, *, base: str | None = None) -> str:
    """A proof file of the day as the overview plugin serves it (behind the Airflow login).

    :param name: the file's name in the day's proof folder, e.g. ``recordings.html``.
    """
    day_text = day.isoformat() if isinstance(day, dt.date) else day
    root = (base or base_url()).rstrip("/")
    return f"{root}{URL_PREFIX}/{PROOF_ROUTE}/{provider}/{day_text}/{name}"


def worklist_url(provider: str, day: dt.date | str, *, base: str | None = None) -> str:
    """The evaluators' worklist page of the day, as the worklist plugin serves it (#13)."""
    day_text = day.isoformat() if isinstance(day, dt.date) else day
    root = (base or base_url()).rstrip("/")
    return f"{root}{WORKLIST_URL_PREFIX}/{WORKLIST_ROUTE}/{provider}/{day_text}.html"


def run_link(dag_id: str, run_id: str, *, base: str | None = None) -> str:
    """The Airflow 3 UI page of one run: ``<base_url>/dags/<dag_id>/runs/<run_id>``."""
    root = (base or base_url()).rstrip("/")
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_link(dag_id: str, run_id: str, task_id: str, *, base: str | None = None) -> str:
    """The UI page of one task of a run (its logs), as Airflow's own ``ti.log_url`` builds it."""
    return f"{run_link(dag_id, run_id, base=base)}/tasks/{quote(task_id, safe='')}"


def overview_url(*, base: str | None = None) -> str:
    """The overview page (the plugin's root)."""
    return f"{(base or base_url()).rstrip('/')}{URL_PREFIX}/"


def proof_base_url(*, base: str | None = None) -> str:
    """The proof route with a trailing slash: append ``<provider>/<day>/<file>``."""
    return f"{(base or base_url()).rstrip('/')}{URL_PREFIX}/{PROOF_ROUTE}/"


def digest_url(day: dt.date | str, *, base: str | None = None) -> str:
    """A morning digest page as the overview plugin serves it (behind the Airflow login)."""
    day_text = day.isoformat() if isinstance(day, dt.date) else day
    return f"{(base or base_url()).rstrip('/')}{URL_PREFIX}/{DIGEST_ROUTE}/{day_text}.html"
