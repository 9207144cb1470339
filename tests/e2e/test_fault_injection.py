"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import html
import json
import re
import time
from email.message import EmailMessage
from typing import Any

import pytest

from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_good_day_runs_green_and_sends_no_mail(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")
    assert layout.manifest.is_file()
    assert sandbox_days.mails() == []


# --- items 9, 10, 18 (CRM export: no silent shrink, no silent truncation, no slow failure)


def _crm_route(days: SandboxDays, provider: str) -> Any:
    """The sandbox CRM's route serving ``provider``: its knobs change what the next run gets."""
    server = days.sandbox.services[0].server
    digital = days.sandbox.providers[provider].digital
    assert server is not None and digital is not None
    return server.routes[digital.endpoint]


def _text(msg: EmailMessage) -> str:
    """The e-mail as an operator reads it (the sink keeps the HTML part)."""
    body = msg.get_body(preferencelist=("html", "plain"))
    assert body is not None
    return html.unescape(re.sub(r"<[^>]+>", " ", body.get_content()))


def _summary(days: SandboxDays, provider: str) -> dict[str, Any]:
    path = days.layout(provider).quality_dir / "summary.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_item9_a_purged_crm_day_fails_the_rerun_keeps_the_export_and_mails_both_counts(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    day = sandbox_days.day(pid).isoformat()
    landed = sandbox_days.layout(pid).digital_dir / "interactions.jsonl"
    proc = sandbox_days.run_day(pid)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    before = landed.read_bytes()
    assert len(before.splitlines()) == 240
    assert _summary(sandbox_days, pid)["digital"]["got"] == 240

    _crm_route(sandbox_days, pid).emptied_days.add(sandbox_days.day(pid))  # the CRM purged it
    started = time.monotonic()
    proc = sandbox_days.run_day(pid)
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    assert time.monotonic() - started < 240  # failed at once: no task retries minutes apart
    assert landed.read_bytes() == before
    assert sorted(p.name for p in landed.parent.iterdir()) == ["interactions.jsonl"]
    assert _summary(sandbox_days, pid)["digital"]["got"] == 240  # the proof still stands
    mails = sandbox_days.mails()
    assert [str(m["Subject"]) for m in mails] == [
        f"[intake][{pid}][{day}] export CRM en baisse, export précédent conservé"
    ]
    text = _text(mails[0])
    assert "le CRM renvoie 0 interactions, l'export précédent en contenait 240" in text
    assert "export_digital (tentative 1)" in text
    assert '"replace_digital": true' in text

    proc = sandbox_days.run_day(pid, conf={"replace_digital": True})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert landed.read_bytes() == b""  # replaced, as the operator asked
    assert _summary(sandbox_days, pid)["digital"] == {
        "expected": 0,
        "got": 0,
        "conflicting_ids": 0,
    }
    assert len(sandbox_days.mails()) == 1


def test_item10_a_crm_capping_per_page_without_a_total_lands_every_interaction(
    sandbox_days: SandboxDays,
) -> None:
    pid = "baobab_douala"  # numbered pages of 50, no stated total
    route = _crm_route(sandbox_days, pid)
    route.max_per_page = 20  # the CRM serves 20 a page whatever we ask, and says nothing
    proc = sandbox_days.run_day(pid)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    landed = sandbox_days.layout(pid).digital_dir / "interactions.jsonl"
    ids = [json.loads(line)["interaction_id"] for line in landed.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == route.count == 130
    assert _summary(sandbox_days, pid)["digital"]["got"] == 130
    assert {r.query.get("per_page") for r in _crm_requests(sandbox_days, route.path)} == {"50"}
    assert sandbox_days.mails() == []


def _crm_requests(days: SandboxDays, path: str) -> list[Any]:
    server = days.sandbox.services[0].server
    return [r for r in server.requests_seen if r.path == path]


def test_item18_a_malformed_crm_page_fails_the_run_at_once_without_task_retries(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    route = _crm_route(sandbox_days, pid)
    route.malformed_page = 2  # whole (2xx, full length) but broken JSON, every time
    started = time.monotonic()
    proc = sandbox_days.run_day(pid)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    # Two quick re-asks inside the task (5 s, 15 s), then the e-mail: not 3 task retries
    # with 2, 4 and 8 minutes of back-off.
    assert elapsed < 240, elapsed
    page2 = [r for r in _crm_requests(sandbox_days, route.path) if r.query.get("cursor")]
    assert len({r.query["cursor"] for r in page2}) == 1 and len(page2) == 1 + 3  # 429 + 3
    mails = sandbox_days.mails()
    assert [str(m["Subject"]) for m in mails] == [
        f"[intake][{pid}][{sandbox_days.day(pid).isoformat()}] échec de l'export CRM"
    ]
    text = _text(mails[0])
    assert "export_digital (tentative 1)" in text
    assert "n'est pas relancée automatiquement" in text
    assert f"GET {route.path} (page 2): malformed page" in text
    assert not (sandbox_days.layout(pid).digital_dir / "interactions.jsonl").exists()
