"""The onboarding check (`make check`) against a real sandbox: SFTP servers, CRM, connections
from AIRFLOW_CONN_* variables only (no metadata DB), run in-process through ``main(argv)``."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import airflow  # noqa: F401  -- its stdout log handler binds now, not to a test's capsys
import asyncssh
import pytest

from include.cc_intake.airflow.check import EXIT_PROBLEMS, EXIT_READY, EXIT_USAGE, main
from include.cc_intake.days import processed_day
from include.cc_intake.onboarding import human_duration
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER, Sandbox, env_var
from include.cc_intake.sandbox.services import STYLES, default_services
from tests.integration.servers import free_port

pytestmark = pytest.mark.integration

ACME = "acme_abidjan"
BAOBAB = "baobab_douala"


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root, and only the sandbox's providers visible."""
    root = tmp_path / "data"
    root.mkdir()
    providers = tmp_path / "providers"
    providers.mkdir()
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(root))
    monkeypatch.setenv("CC_INTAKE_PROVIDERS_DIR", str(providers))
    monkeypatch.setenv("CC_INTAKE_SANDBOX", "1")
    return root


@pytest.fixture
def sandbox(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", services=default_services()) as box:
        for name, value in box.env().items():
            monkeypatch.setenv(name, value)
        yield box


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (to prove nothing changed)."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    }


@pytest.mark.parametrize("provider", [ACME, BAOBAB])
def test_ready_provider_shows_what_the_day_would_bring(
    sandbox: Sandbox, data_root: Path, capsys: pytest.CaptureFixture[str], provider: str
) -> None:
    seed = sandbox.seeds[provider]
    cfg = sandbox.providers[provider]
    server_before = tree(sandbox.server_root(provider))

    code, out, _ = check(capsys, provider)  # no --date: J-1 in the provider's zone

    assert code == EXIT_READY, out
    today_j1 = processed_day(tz=cfg.tz, logical_date=dt.datetime.now(dt.UTC))
    assert f"Jour / day  {today_j1} (J-1 in {cfg.timezone})" in out
    assert seed.day == today_j1  # the sandbox seeded that very day
    for direction, folder in seed.folders.items():
        size = sum(f.size for f in seed.files if f.direction == direction)
        valid = seed.delivered_counts[direction]
        assert f"{direction}  {folder}\n    [OK] {valid} fichier(s) valide(s)" in out
        assert f"({size} bytes)" in out
        rejected = seed.rejected_reasons[direction]
        assert f"[!]  {len(rejected)} rejeté(s) / rejected" in out
        for name in rejected:
            # The seed's reason for a hidden ".name" (unsafe_name) and naming.py's
            # (pattern_mismatch) differ; both reject it, so only the name is asserted here.
            shown = name.replace("\x1b", "\\x1b")
            assert re.search(rf"^ +{re.escape(shown)} — [a-z_]+ \(", out, re.MULTILINE), name
        assert f"{direction}: {valid} valid on the server / {valid} reported" in out
    assert "\x1b" not in out  # a hostile remote name cannot drive the operator's terminal
    said = ", ".join(f"{d} {n}" for d, n in sorted(seed.report_counts.items()))
    assert f"trouvé / found ({cfg.daily_report.kind}): {said}" in out
    records = re.search(r"answers: (\d+) record\(s\) on the first page", out)
    assert records is not None
    if provider == ACME:
        assert int(records.group(1)) > 0
        assert f"the CRM states {STYLES[ACME][2]} for the day" in out
        assert "(auth: Authorization header)" in out
    else:
        assert int(records.group(1)) == cfg.digital.pagination.page_size  # type: ignore[union-attr]
        assert "no stated total" in out
        assert "(auth: X-API-Key header)" in out
    total = sum(f.size for f in seed.files)
    assert f"{len(seed.files)} file(s)" in out
    took = human_duration(total / 1_000_000)
    assert f"link speed unknown: at 8 Mbit/s it would take {took}" in out
    assert "PRÊT / READY — exit 0" in out
    # Logs stay off stdout (Airflow's default handler prints INFO lines there).
    assert "Opening SSH connection" not in out
    # Dry run: nothing landed, nothing touched on the provider's server.
    assert list(data_root.rglob("*")) == []
    assert tree(sandbox.server_root(provider)) == server_before


@pytest.mark.parametrize("pinned", ["wrong_host_key", "no_key_known"])
def test_unknown_host_key_prints_fingerprint_and_extra(
    sandbox: Sandbox,
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pinned: str,
) -> None:
    conn = sandbox.sftp_connection(ACME)
    extra = dict(conn["extra"])  # type: ignore[call-overload]
    if pinned == "wrong_host_key":
        other = asyncssh.generate_private_key("ssh-ed25519")
        extra["host_key"] = other.export_public_key().decode().strip()
    else:
        del extra["host_key"]
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        extra["known_hosts"] = str(empty)
    conn["extra"] = extra
    monkeypatch.setenv(env_var("sftp_acme"), json.dumps(conn))
    day = sandbox.days[ACME].isoformat()

    code, out, _ = check(capsys, ACME, "--date", day)

    assert code == EXIT_PROBLEMS, out
    assert sandbox.keys is not None
    fingerprint = sandbox.keys.host_key.get_fingerprint("sha256")
    assert f"server key fingerprint: {fingerprint} (ssh-ed25519)" in out
    assert json.dumps({"host_key": sandbox.keys.host_public_line}) in out
    assert "out of band" in out
    assert "unknown host key" in out
    assert ("does NOT match" in out) == (pinned == "wrong_host_key")
    assert "valid file(s)" not in out  # nothing was listed with an untrusted key
    assert list(data_root.rglob("*")) == []


def test_disabled_host_key_check_is_for_sandboxes_only(
    sandbox: Sandbox,
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = sandbox.sftp_connection(ACME)
    extra = dict(conn["extra"])  # type: ignore[call-overload]
    del extra["host_key"]
    extra["no_host_key_check"] = True
    conn["extra"] = extra
    monkeypatch.setenv(env_var("sftp_acme"), json.dumps(conn))
    # The same provider declared as a real one (include/providers/), on the same server.
    real = (PROVIDERS_FOLDER / f"{ACME}.yaml").read_text().replace(f"id: {ACME}", "id: acme_real")
    (tmp_path / "providers" / "acme_real.yaml").write_text(real)
    day = sandbox.days[ACME].isoformat()
    assert sandbox.keys is not None
    wanted = json.dumps({"host_key": sandbox.keys.host_public_line})

    code, out, err = check(capsys, ACME, "--date", day)
    assert code == EXIT_READY, out
    assert "host key NOT checked (no_host_key_check)" in out
    assert "host key check disabled (no_host_key_check): sandboxes only" in out
    assert wanted in out
    assert "No Host Key Verification" in err  # the hook's warning, kept off the report

    code, out, _ = check(capsys, "acme_real", "--date", day)
    assert code == EXIT_PROBLEMS, out
    assert "1. SFTP sftp_acme: host key check disabled" in out
    assert wanted in out
    assert list(data_root.rglob("*")) == []


def test_missing_folder_is_named(
    sandbox: Sandbox, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = sandbox.seeds[ACME]
    outbound = seed.folders["SORTANTS"]
    shutil.rmtree(seed.local_path(outbound))

    code, out, _ = check(capsys, ACME, "--date", seed.day.isoformat())

    assert code == EXIT_PROBLEMS, out
    assert f"[KO] dossier absent / folder missing: {outbound}" in out
    reported = seed.report_counts["SORTANTS"]
    assert f"SORTANTS: folder {outbound} missing (the report says {reported})" in out
    assert f"{seed.delivered_counts['ENTRANTS']} fichier(s) valide(s)" in out  # the rest still
    assert list(data_root.rglob("*")) == []


def test_missing_folder_is_fine_when_the_report_says_zero(
    sandbox: Sandbox, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = sandbox.seeds[ACME]
    shutil.rmtree(seed.local_path(seed.folders["SORTANTS"]))
    assert seed.report_path is not None
    inbound = seed.delivered_counts["ENTRANTS"]
    seed.local_path(seed.report_path).write_text(
        f"date,direction,calls\n{seed.day},inbound,{inbound}\n{seed.day},outbound,0\n"
    )

    code, out, _ = check(capsys, ACME, "--date", seed.day.isoformat())

    assert code == EXIT_READY, out
    assert "SORTANTS: 0 valid on the server / 0 reported (folder absent)" in out


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_no_report_or_an_unreadable_one(
    sandbox: Sandbox, data_root: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    seed = sandbox.seeds[ACME]
    assert seed.report_path is not None
    report = seed.local_path(seed.report_path)
    if damage == "deleted":
        report.unlink()
    else:
        report.write_text("jour;appels\n2026-11-25;douze\n")

    code, out, _ = check(capsys, ACME, "--date", seed.day.isoformat())

    assert code == EXIT_PROBLEMS, out
    if damage == "deleted":
        assert f"report {seed.report_path} not found" in out
    else:
        assert f"report {seed.report_path} unusable: " in out
        assert "direction" in out.split("unusable: ", 1)[1]  # names the column it expected
    assert f"{seed.delivered_counts['ENTRANTS']} fichier(s) valide(s)" in out
    assert list(data_root.rglob("*")) == []


def test_crm_refusal_is_a_problem_and_no_body_is_shown(
    sandbox: Sandbox,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = json.loads(sandbox.connections()["crm_acme"])
    conn["extra"] = {"Authorization": "Bearer wrong-token-5f1e2d"}
    monkeypatch.setenv(env_var("crm_acme"), json.dumps(conn))

    code, out, err = check(capsys, ACME, "--date", sandbox.days[ACME].isoformat())

    assert code == EXIT_PROBLEMS, out
    assert "CRM crm_acme:" in out
    assert "HTTP 401" in out
    assert "/api/export/interactions" in out
    assert "Jeton d'accès" not in out + err  # the CRM's body never reaches the screen
    assert "wrong-token-5f1e2d" not in out + err


def test_unreachable_server(
    sandbox: Sandbox,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conn = sandbox.sftp_connection(ACME)
    conn["port"] = free_port()  # nothing listens there
    monkeypatch.setenv(env_var("sftp_acme"), json.dumps(conn))

    code, out, _ = check(capsys, ACME, "--date", sandbox.days[ACME].isoformat())

    assert code == EXIT_PROBLEMS, out
    assert "[KO] injoignable / unreachable" in out
    assert "not checked (no SFTP session)" in out


def test_undefined_connection_says_which_variable_to_set(
    sandbox: Sandbox,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(env_var("sftp_acme"))

    code, out, _ = check(capsys, ACME, "--date", sandbox.days[ACME].isoformat())

    assert code == EXIT_PROBLEMS, out
    assert "connection 'sftp_acme' is not defined: set AIRFLOW_CONN_SFTP_ACME" in out


def test_usage_and_config_errors_exit_2(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(capsys, "nobody")
    assert code == EXIT_USAGE
    assert "unknown provider 'nobody'" in err
    assert f"known providers: {ACME}, {BAOBAB}" in err
    assert out == ""

    code, _, err = check(capsys, ACME, "--date", "25/11/2026")
    assert code == EXIT_USAGE
    assert "--date '25/11/2026' is not a day: expected YYYY-MM-DD" in err

    broken = tmp_path / "providers" / "broken_one.yaml"
    broken.write_text("id: broken_one\nname: Broken\ntimezone: Mars/Olympus\n")
    code, _, err = check(capsys, "broken_one")
    assert code == EXIT_USAGE
    assert str(broken) in err
    assert "timezone: unknown time zone 'Mars/Olympus'" in err

    code, _, _ = check(capsys)  # no provider id at all
    assert code == EXIT_USAGE
    assert list(data_root.rglob("*")) == []


def test_make_check_on_a_sandbox_provider_needs_nothing_else(tmp_path: Path) -> None:
    """`make check PROVIDER=<sandbox id>` starts the sandbox itself: a newcomer's first command."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "CC_INTAKE"))}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.cc_intake.sandbox.check",
            "acme_abidjan",
            "--work",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "PRÊT / READY" in out.stdout
    assert "ENTRANTS: 12 valid on the server / 12 reported" in out.stdout
    assert not any((tmp_path / "data").rglob("*"))
