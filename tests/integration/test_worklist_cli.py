"""`make worklist`'s module from the command line: builds, tops up, shows, and says why not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.cc_intake.worklist import read_worklist, worklist_paths
from tests.helpers import provider_dict
from tests.integration.conftest_worklist import DAY, land_day

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CC_INTAKE"))}
    env.update(
        PYTHONPATH=str(ROOT),
        AIRFLOW_HOME=str(tmp_path / "home"),
        CC_INTAKE_DATA_ROOT=str(tmp_path / "data"),
        CC_INTAKE_PROVIDERS_DIR=str(tmp_path / "providers"),
    )
    command = [sys.executable, "-m", "include.cc_intake.airflow.worklist", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def test_builds_shows_and_refuses_clearly(tmp_path: Path) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    data = tmp_path / "data"
    first = land_day(data, "acme_abidjan")  # what the task wrote
    sampled = provider_dict(sampling={"recordings": 10, "digital": 5, "strata": ["direction"]})
    (providers / "acme_abidjan.yaml").write_text(yaml.safe_dump(sampled), encoding="utf-8")
    bare = provider_dict(id="globex_dakar")
    (providers / "globex_dakar.yaml").write_text(yaml.safe_dump(bare), encoding="utf-8")

    shown = cli(tmp_path, "acme_abidjan", str(DAY), "--show")
    assert shown.returncode == 0, shown.stderr
    assert "4 recordings, 1 conversations (0 added now)" in shown.stdout
    assert "0712345678" not in shown.stdout and "******78" in shown.stdout

    built = cli(tmp_path, "acme_abidjan", str(DAY))
    assert built.returncode == 0, built.stderr
    csv_path, html_path = worklist_paths(data, "acme_abidjan", DAY)
    again = read_worklist(csv_path, provider="acme_abidjan", day=DAY)
    assert again[: len(first.items)] == list(first.items)  # append-only from the CLI too
    assert f"[worklist] page {html_path}" in built.stdout

    no_sampling = cli(tmp_path, "globex_dakar", str(DAY))
    assert no_sampling.returncode == 2 and "no `sampling` section" in no_sampling.stderr
    unknown = cli(tmp_path, "nobody", str(DAY))
    assert unknown.returncode == 2 and "unknown provider 'nobody'" in unknown.stderr
    bad_day = cli(tmp_path, "acme_abidjan", "25/11/2026")
    assert bad_day.returncode == 2 and "expected YYYY-MM-DD" in bad_day.stderr
    none_yet = cli(tmp_path, "acme_abidjan", "2026-11-20", "--show")
    assert none_yet.returncode == 1 and "no worklist yet" in none_yet.stderr
