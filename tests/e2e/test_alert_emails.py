"""Each failure e-mail carries its facts, through the path production takes (issue #14).

A provider-day runs through the real DAG (``airflow dags test``) against the sandbox's real
servers and fails one way; the e-mail is then read as the SMTP sink received it. The facts in it
(the files a copy could not take, what the wait saw per direction, the CRM's refusal, the gap
list of a reconciliation, the manifest that is missing) come from the exception the failing step
raised, not from its message nor from the test.

Runs are kept short: a provider copy with a wait of seconds (as test_fault_injection's item 6),
and for the failures that are retried in production (a copy, a CRM refusal) an Airflow cluster
policy that leaves each task one try, so the e-mail of the last try comes at once.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from typing import Any

import pytest
import yaml

from include.cc_intake import constants as C
from include.cc_intake.messages import SUBJECTS
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER
from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Airflow imports ``airflow_local_settings`` from ``$AIRFLOW_HOME/config`` and applies its
# ``task_policy`` to every task it parses: here, one try per task (production keeps 3 retries).
_ONE_TRY_POLICY = """
def task_policy(task):
    task.retries = 0
"""


def _one_try_per_task(days: SandboxDays) -> None:
    config = days.stack.home / "config"
    config.mkdir(exist_ok=True)
    (config / "airflow_local_settings.py").write_text(_ONE_TRY_POLICY, encoding="utf-8")


def _text(msg: EmailMessage) -> str:
    """The e-mail as an operator reads it, on one line (the sink keeps the HTML part)."""
    body = msg.get_body(preferencelist=("html", "plain"))
    assert body is not None
    plain = html.unescape(re.sub(r"<[^>]+>", " ", body.get_content()))
    return re.sub(r"\s+", " ", plain)


def _only_mail(days: SandboxDays, provider: str, kind: str) -> str:
    """The text of the run's only e-mail, checking it is the ``kind`` one of the day."""
    mails = days.mails()
    subject = f"[intake][{provider}][{days.day(provider).isoformat()}] {SUBJECTS[kind]}"
    assert [str(m["Subject"]) for m in mails] == [subject]
    return _text(mails[0])


def _section(text: str, title: str, end: str = "Que faire") -> str:
    assert title in text, text
    return text[text.index(title) : text.index(end, text.index(title))]


def _provider_copy(days: SandboxDays, pid: str, base: str, **recordings: Any) -> dict[str, Any]:
    """A sandbox provider's YAML under a new id (its server and report), without the CRM."""
    spec = yaml.safe_load((PROVIDERS_FOLDER / f"{base}.yaml").read_text("utf-8"))
    spec.update(id=pid, name=f"{spec['name']} [{pid}]")
    spec.pop("digital", None)
    spec["recordings"].update(recordings)
    (days.providers_dir / f"{pid}.yaml").write_text(yaml.safe_dump(spec), "utf-8")
    return dict(spec)


def test_a_copy_failure_mail_lists_the_files_not_copied(sandbox_days: SandboxDays) -> None:
    pid = "acme_abidjan"
    seed = sandbox_days.sandbox.seeds[pid]
    victims = sorted((f for f in seed.files if f.direction == "ENTRANTS"), key=lambda f: f.name)[:2]
    # The provider's disk cannot read two of the day's files: listed, settled, never copied.
    sandbox_days.sandbox.sftp[pid].unreadable.update(f.name for f in victims)
    _one_try_per_task(sandbox_days)

    proc = sandbox_days.run_day(pid)

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    text = _only_mail(sandbox_days, pid, "copy")
    files = _section(text, "Fichiers concernés", "Message d'erreur")
    for victim in victims:
        assert f"{victim.remote_path}: SFTPFailure: I/O error while reading the file" in files
    assert f"{C.TASK_COPY} (tentative 1)" in text


def test_the_wait_and_reconciliation_mails_show_what_was_seen_and_the_missing_calls(
    sandbox_days: SandboxDays,
) -> None:
    pid = "baobab_late"
    _provider_copy(
        sandbox_days,
        pid,
        "baobab_douala",
        wait_timeout="5s",
        poll_interval="1s",
        settle="1s",
        min_file_age=0,
    )
    seed = sandbox_days.sandbox.seeds["baobab_douala"]  # its server, connection and report
    inbound = sorted((f for f in seed.files if f.direction == "ENTRANTS"), key=lambda f: f.name)
    expected = dict(seed.report_counts)
    # Two of the inbound calls the (detailed) report lists never arrive.
    never = inbound[:2]
    for seeded in never:
        seed.local_path(seeded.remote_path).unlink()

    proc = sandbox_days.run(f"ingest_{pid}", conf={"target_date": seed.day.isoformat()})

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    mails = {str(m["Subject"]): _text(m) for m in sandbox_days.mails()}
    prefix = f"[intake][{pid}][{seed.day.isoformat()}] "
    assert sorted(mails) == sorted(prefix + SUBJECTS[k] for k in ("not_ready", "reconciliation"))

    seen = _section(mails[prefix + SUBJECTS["not_ready"]], "Ce qui a été vu, par sens d'appel")
    got = expected["ENTRANTS"] - 2
    assert f"ENTRANTS : prêts {got}, attendu {expected['ENTRANTS']}" in seen, seen
    assert f"SORTANTS : prêts {expected['SORTANTS']}, attendu {expected['SORTANTS']}" in seen

    reconciliation = mails[prefix + SUBJECTS["reconciliation"]]
    counts = _section(reconciliation, "Attendu et reçu")
    assert f"ENTRANTS : attendu {expected['ENTRANTS']}, reçu {got} (écart -2)" in counts
    missing = _section(reconciliation, "Enregistrements manquants")
    for seeded in never:
        assert f"ENTRANTS : {seeded.call_id}" in missing, missing
    assert f"/cc-intake/quality/{pid}/{seed.day.isoformat()}/recordings.html" in reconciliation


def test_a_crm_refusing_our_credentials_mails_the_401_and_the_credentials_advice(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    server = sandbox_days.sandbox.services[0].server
    digital = sandbox_days.sandbox.providers[pid].digital
    assert server is not None and digital is not None
    server.routes[digital.endpoint].reject_auth = True  # the CRM revoked our token
    _one_try_per_task(sandbox_days)

    proc = sandbox_days.run_day(pid)

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    text = _only_mail(sandbox_days, pid, "export")
    assert f"URL {digital.endpoint} page 1 statut HTTP 401" in text, text  # the facts table
    assert "Le CRM refuse nos identifiants (HTTP 401)" in text, text
    assert "vérifier le jeton ou le mot de passe de la connexion Airflow du CRM" in text


def test_a_missing_manifest_has_its_own_mail_without_a_proof_page(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_nocopy"
    _provider_copy(sandbox_days, pid, "acme_abidjan", min_file_age=0, settle="1s")
    seed = sandbox_days.sandbox.seeds["acme_abidjan"]
    stack = sandbox_days.stack

    # An operator marks the copy done without it having run: the validation finds no manifest.
    proc = stack.cli(
        "dags", "test", f"ingest_{pid}", "2031-01-01T00:00:00+00:00",
        "-c", f'{{"target_date": "{seed.day.isoformat()}"}}',
        "--mark-success-pattern", C.TASK_COPY,
        timeout=300, check=False, log_name="dags-test-no-copy",
    )  # fmt: skip

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout(pid, seed.day)
    mails = sandbox_days.mails()
    assert [str(m["Subject"]) for m in mails] == [
        f"[intake][{pid}][{seed.day.isoformat()}] {SUBJECTS['manifest']}"
    ]
    text = _text(mails[0])
    assert f"Manifeste attendu {layout.manifest}" in text, text
    assert "aucune page de preuve n'a été écrite" in text
    assert "Page de preuve" not in text and "recordings.html" not in text
    assert f"{C.TASK_VALIDATE} (tentative 1)" in text
    assert "Aucune nouvelle tentative automatique" in text  # failed at once: no retry helps
    assert not (layout.quality_dir / "recordings.html").exists()


def test_a_malformed_report_mails_once_naming_the_file_and_what_was_expected(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    seed = sandbox_days.sandbox.seeds[pid]
    assert seed.report_path is not None
    report = sandbox_days.server_root(pid) / seed.report_path.lstrip("/")
    # The provider's script published a report without its columns.
    report.write_text("bonjour;tout;va;bien\n1;2;3;4\n", encoding="utf-8")
    _one_try_per_task(sandbox_days)

    proc = sandbox_days.run_day(pid)

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    text = _only_mail(sandbox_days, pid, "report")  # one e-mail: the copy skips after the wait
    assert f"{C.TASK_WAIT} (tentative 1)" in text, text
    assert report.name in text, text
    assert "est absent ou illisible" in text
    assert not sandbox_days.layout(pid).manifest.exists()  # nothing copied on a broken wait
