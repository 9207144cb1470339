"""`make check` for an FTPS provider: the sandbox's cedre_lome, its certificate pinned or not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.cc_intake.airflow.check import EXIT_PROBLEMS, EXIT_READY
from include.cc_intake.sandbox.env import Sandbox, env_var
from tests.integration.test_check import check, data_root, sandbox, tree  # noqa: F401

pytestmark = pytest.mark.integration

CEDRE = "cedre_lome"


def test_ready_ftps_provider_lists_the_day_and_reads_the_report(
    sandbox: Sandbox,  # noqa: F811
    data_root: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = sandbox.seeds[CEDRE]
    before = tree(sandbox.server_root(CEDRE))
    code, out, _ = check(capsys, CEDRE)
    assert code == EXIT_READY, out
    assert sandbox.certificate is not None
    assert f"FTPS  ftps_cedre → intake@127.0.0.1:{sandbox.ftps['ftps_cedre'].port}" in out
    assert f"certificate SHA-256 {sandbox.certificate.sha256}, verified by pinned" in out
    for direction, folder in seed.folders.items():
        valid = seed.delivered_counts[direction]
        assert f"{direction}  {folder}\n    [OK] {valid} fichier(s) valide(s)" in out
    said = ", ".join(f"{d} {n}" for d, n in sorted(seed.report_counts.items()))
    assert f"trouvé / found (summary): {said}" in out
    assert "PRÊT / READY — exit 0" in out
    assert list(data_root.rglob("*")) == []
    assert tree(sandbox.server_root(CEDRE)) == before


def test_wrong_pin_prints_the_certificate_sha256_to_pin(
    sandbox: Sandbox,  # noqa: F811
    data_root: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = sandbox.ftps_connection("ftps_cedre")
    connection["extra"] = {"cert_sha256": "ab" * 32}
    monkeypatch.setenv(env_var("ftps_cedre"), json.dumps(connection))
    code, out, _ = check(capsys, CEDRE)
    assert code == EXIT_PROBLEMS, out
    assert sandbox.certificate is not None
    sha = sandbox.certificate.sha256
    assert "[KO] certificat inconnu / unknown certificate" in out
    assert f"the connection's cert_sha256 is {'ab' * 32}: it does NOT match" in out
    assert f"server key fingerprint: {sha} (CN=cc-intake sandbox)" in out
    assert json.dumps({"cert_sha256": sha}) in out
    assert "FTPS ftps_cedre: unknown certificate" in out
    assert "Rien n'a été listé / nothing was listed." in out
