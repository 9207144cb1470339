"""Policy tests over the whole DagBag, without a database and without mocks.

The DagBag is filled in a fresh interpreter whose metadata DB URL points nowhere and whose
sockets raise, so any parse-time lookup (DB, Variable, connection, network) becomes an import
error here instead of a slow scheduler in production.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from include.cc_intake import constants as C
from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR
from tests.helpers import provider_dict

ROOT = Path(__file__).resolve().parents[2]
# The policy tests run once per DAG, so that a failure names it in the test id.
SANDBOX_DAG_IDS = sorted(f"ingest_{p.stem}" for p in SANDBOX_PROVIDERS_DIR.glob("*.yaml"))

PROBE = textwrap.dedent(
    """
    import json, socket, sys, time
    def refuse(event, args):
        if event in ("socket.connect", "socket.getaddrinfo"):
            raise RuntimeError(f"network access at parse time: {event} {args!r}")
    sys.addaudithook(refuse)
    from airflow.dag_processing.dagbag import DagBag
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - t0
    dags = {}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for t in dag.tasks:
            cbs = t.on_failure_callback
            cbs = cbs if isinstance(cbs, list) else ([cbs] if cbs else [])
            tasks[t.task_id] = {
                "downstream": sorted(t.downstream_task_ids),
                "owner": t.owner,
                "retries": t.retries,
                "failure_callbacks": len(cbs),
                "max_active_tis_per_dag": t.max_active_tis_per_dag,
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "pool": t.pool,
                "queue": t.queue,
                "is_teardown": t.is_teardown,
                "extra_links": sorted(link.name for link in t.operator_extra_links),
            }
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "tasks": tasks,
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "has_deadline": bool(getattr(dag, "deadline", None)),
            "description": dag.description,
            "doc_md": dag.doc_md or "",
            "timetable": type(dag.timetable).__name__,
            "cron": getattr(dag.timetable, "expression", None),
            "timezone": str(getattr(dag.timetable, "timezone", "")),
        }
    print("RESULT" + json.dumps({
        "dags": dags,
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "heavy": sorted(m for m in ("pandas", "great_expectations") if m in sys.modules),
        "elapsed": elapsed,
    }))
    """
)


def fill_dagbag(tmp_path: Path, root: Path = ROOT, **env: str) -> dict:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/absent/dir/airflow.db",
        "AIRFLOW_HOME": str(tmp_path / "home"),
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(root / "dags")],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=root,  # `python -c` puts the working directory first on sys.path
        timeout=120,
        check=False,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, f"DagBag probe failed:\n{out.stdout}\n{out.stderr}"
    result = json.loads(line.removeprefix("RESULT"))
    # One per project, not per YAML: the digest DAG has its own tests (test_digest_dag.py).
    result["digest"] = result["dags"].pop(C.DIGEST_DAG_ID, None)
    return result


@pytest.fixture(scope="module")
def sandbox_bag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("bag")
    empty = tmp / "providers"
    empty.mkdir()
    return fill_dagbag(tmp, CC_INTAKE_SANDBOX="1", CC_INTAKE_PROVIDERS_DIR=str(empty))


def test_no_import_errors_and_one_dag_per_yaml(sandbox_bag: dict) -> None:
    assert sandbox_bag["errors"] == {}
    assert len(SANDBOX_DAG_IDS) >= 2
    assert set(ingest_dags(sandbox_bag)) == set(SANDBOX_DAG_IDS)


def test_nothing_heavy_is_imported_at_parse(sandbox_bag: dict) -> None:
    assert sandbox_bag["heavy"] == []


def ingest_dags(bag: dict) -> dict:
    """The provider DAGs of a DagBag (the housekeeping DAG left out)."""
    return {k: v for k, v in bag["dags"].items() if k.startswith(C.DAG_PREFIX)}


def one_dag(bag: dict, dag_id: str) -> dict:
    assert dag_id in bag["dags"], f"{dag_id} is missing from the DagBag"
    return bag["dags"][dag_id]


@pytest.mark.parametrize("dag_id", SANDBOX_DAG_IDS)
def test_every_dag_follows_the_policy(sandbox_bag: dict, dag_id: str) -> None:
    dag = one_dag(sandbox_bag, dag_id)
    assert C.TAG_INTAKE in dag["tags"], dag_id
    assert C.TAG_SANDBOX in dag["tags"], dag_id
    assert dag["timetable"] == "CronTriggerTimetable"
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == C.MAX_ACTIVE_RUNS
    assert dag["has_deadline"], f"{dag_id} has no delivery deadline"
    assert "Re-run a day" in dag["doc_md"]
    for task_id, task in dag["tasks"].items():
        assert task["owner"], (dag_id, task_id)
        assert task["retries"] >= 1, (dag_id, task_id)
        assert task["failure_callbacks"] >= 1, (dag_id, task_id)


@pytest.mark.parametrize("dag_id", SANDBOX_DAG_IDS)
def test_task_graph(sandbox_bag: dict, dag_id: str) -> None:
    dag = one_dag(sandbox_bag, dag_id)
    tasks = dag["tasks"]
    assert tasks[C.TASK_WAIT]["downstream"] == sorted([C.TASK_COPY, C.TASK_ON_TIME])
    assert tasks[C.TASK_COPY]["downstream"] == [C.TASK_REPORT]
    assert tasks[C.TASK_REPORT]["downstream"] == [C.TASK_VALIDATE]
    sampled = "sampling" in sandbox_yaml(dag_id)
    after_validation = [C.TASK_WORKLIST] if sampled else []
    assert tasks[C.TASK_VALIDATE]["downstream"] == after_validation
    assert tasks[C.TASK_ON_TIME]["downstream"] == []
    assert tasks[C.TASK_COPY]["max_active_tis_per_dag"] == 1
    expected_tasks = {C.TASK_WAIT, C.TASK_COPY, C.TASK_REPORT, C.TASK_VALIDATE, C.TASK_ON_TIME}
    if C.TAG_DIGITAL in dag["tags"]:
        assert tasks[C.TASK_EXPORT]["downstream"] == [C.TASK_VALIDATE_DIGITAL]
        assert tasks[C.TASK_VALIDATE_DIGITAL]["downstream"] == after_validation
        expected_tasks |= {C.TASK_EXPORT, C.TASK_VALIDATE_DIGITAL}
    if sampled:
        expected_tasks.add(C.TASK_WORKLIST)
        assert tasks[C.TASK_WORKLIST]["downstream"] == []
    assert set(tasks) == expected_tasks


def sandbox_yaml(dag_id: str) -> dict:
    path = SANDBOX_PROVIDERS_DIR / f"{dag_id.removeprefix(C.DAG_PREFIX)}.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("dag_id", SANDBOX_DAG_IDS)
def test_worklist_runs_on_what_landed_and_leaves_the_verdict_to_the_validations(
    sandbox_bag: dict, dag_id: str
) -> None:
    """#13: build_worklist waits for both validations, whatever they concluded, and is a
    teardown, so that a red day's run still fails (a run's state is its non-teardown leaves')."""
    assert "sampling" in sandbox_yaml(dag_id), "the sandbox providers all have a worklist"
    task = one_dag(sandbox_bag, dag_id)["tasks"][C.TASK_WORKLIST]
    assert task["is_teardown"] is True
    assert task["trigger_rule"] == "all_done_setup_success"  # all_done when there is no setup
    assert task["extra_links"] == ["Liste d'écoute"]
    assert task["retries"] == 3 and task["failure_callbacks"] == 1


@pytest.mark.parametrize("dag_id", SANDBOX_DAG_IDS)
def test_item6_copy_runs_after_a_wait_that_gave_up_and_the_run_still_fails(
    sandbox_bag: dict, dag_id: str
) -> None:
    """contract §8.1: at wait_timeout the copy, report and validation still run.

    Only the copy needs ``all_done`` (the later steps follow it as usual); the leaf after the
    wait keeps such a run failed, since a run's state is its leaves' state.
    """
    dag = one_dag(sandbox_bag, dag_id)
    rules = {task_id: task["trigger_rule"] for task_id, task in dag["tasks"].items()}
    assert rules.pop(C.TASK_COPY) == "all_done"
    rules.pop(C.TASK_WORKLIST, None)  # a teardown after the validations (#13)
    assert set(rules.values()) == {"all_success"}, rules
    assert dag["tasks"][C.TASK_ON_TIME]["downstream"] == []


def test_deadlines_can_be_turned_off(tmp_path: Path) -> None:
    empty = tmp_path / "providers"
    empty.mkdir()
    bag = fill_dagbag(
        tmp_path,
        CC_INTAKE_SANDBOX="1",
        CC_INTAKE_PROVIDERS_DIR=str(empty),
        CC_INTAKE_DEADLINES="off",
    )
    assert bag["dags"] and not any(d["has_deadline"] for d in ingest_dags(bag).values())


def test_item11_link_steps_take_the_pool_only_when_named_and_the_yaml_queue(
    tmp_path: Path,
) -> None:
    """A missing pool would block the copies forever: no CC_INTAKE_LINK_POOL, no pool."""
    folder = tmp_path / "providers"
    folder.mkdir()
    spec = provider_dict()
    spec["recordings"]["queue"] = "storage_host"
    (folder / "acme_abidjan.yaml").write_text(yaml.safe_dump(spec))
    link_steps = {C.TASK_COPY, C.TASK_REPORT}

    plain = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_LINK_POOL="")
    tasks = plain["dags"]["ingest_acme_abidjan"]["tasks"]
    assert {t["pool"] for t in tasks.values()} == {"default_pool"}
    assert {n for n, t in tasks.items() if t["queue"] == "storage_host"} == link_steps

    pooled = fill_dagbag(
        tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_LINK_POOL="cc_intake_link"
    )
    tasks = pooled["dags"]["ingest_acme_abidjan"]["tasks"]
    assert {n for n, t in tasks.items() if t["pool"] == "cc_intake_link"} == link_steps
    assert {t["pool"] for n, t in tasks.items() if n not in link_steps} == {"default_pool"}


def test_production_never_shows_the_sandbox(tmp_path: Path) -> None:
    folder = tmp_path / "providers"
    folder.mkdir()
    (folder / "acme_abidjan.yaml").write_text(yaml.safe_dump(provider_dict()))
    bag = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_SANDBOX="0")
    assert list(ingest_dags(bag)) == ["ingest_acme_abidjan"]
    assert C.TAG_SANDBOX not in bag["dags"]["ingest_acme_abidjan"]["tags"]


def test_an_image_without_the_sandbox_says_so_when_asked_for_it(tmp_path: Path) -> None:
    """The production image leaves include/cc_intake/sandbox/ out (.dockerignore). There the
    DAGs still parse, and CC_INTAKE_SANDBOX=1 yields a config-error DAG naming the cause: not an
    import error, not a silent empty list."""
    image = tmp_path / "image"
    shutil.copytree(ROOT / "dags", image / "dags")
    ignore = shutil.ignore_patterns("sandbox", "__pycache__")
    shutil.copytree(ROOT / "include", image / "include", ignore=ignore)
    assert not (image / "include" / "cc_intake" / "sandbox").exists()
    folder = tmp_path / "providers"
    folder.mkdir()
    (folder / "acme_abidjan.yaml").write_text(yaml.safe_dump(provider_dict()))

    bag = fill_dagbag(tmp_path, image, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_SANDBOX="0")
    assert bag["errors"] == {}
    assert list(ingest_dags(bag)) == ["ingest_acme_abidjan"]

    bag = fill_dagbag(tmp_path, image, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_SANDBOX="1")
    assert bag["errors"] == {}
    assert set(ingest_dags(bag)) == {"ingest_acme_abidjan", "ingest_sandbox"}
    placeholder = bag["dags"]["ingest_sandbox"]
    assert C.TAG_CONFIG_ERROR in placeholder["tags"]
    assert list(placeholder["tasks"]) == [C.TASK_CONFIG_ERROR]
    assert "unset CC_INTAKE_SANDBOX" in placeholder["doc_md"]


def test_broken_yaml_fails_only_its_own_dag(tmp_path: Path) -> None:
    folder = tmp_path / "providers"
    folder.mkdir()
    (folder / "acme_abidjan.yaml").write_text(yaml.safe_dump(provider_dict()))
    broken = provider_dict(id="baobab_douala")
    broken["recordings"]["filename_pattern"] = r"^(?P<date>\d{8}).wav$"
    (folder / "baobab_douala.yaml").write_text(yaml.safe_dump(broken))
    bag = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder))
    assert bag["errors"] == {}
    assert set(ingest_dags(bag)) == {"ingest_acme_abidjan", "ingest_baobab_douala"}
    bad = bag["dags"]["ingest_baobab_douala"]
    assert C.TAG_CONFIG_ERROR in bad["tags"]
    assert list(bad["tasks"]) == [C.TASK_CONFIG_ERROR]
    assert "baobab_douala.yaml" in bad["description"]
    assert "recordings.filename_pattern" in bad["doc_md"]
    assert "call_id" in bad["doc_md"]
    assert C.TAG_CONFIG_ERROR not in bag["dags"]["ingest_acme_abidjan"]["tags"]


def test_item13_config_error_placeholder_runs_daily_and_alerts(tmp_path: Path) -> None:
    """A broken YAML must not silently stop its provider: the placeholder keeps a daily schedule
    (the file's own when readable, else 06:00 UTC) and the failure notifier, without retries."""
    folder = tmp_path / "providers"
    folder.mkdir()
    broken = provider_dict(id="baobab_douala", schedule="15 3 * * *", timezone="Africa/Douala")
    broken["deadline"] = "02:00"  # before the schedule: invalid
    (folder / "baobab_douala.yaml").write_text(yaml.safe_dump(broken))
    (folder / "garbled.yaml").write_text("id: [unclosed\n")
    bag = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder))
    assert bag["errors"] == {}
    assert set(ingest_dags(bag)) == {"ingest_baobab_douala", "ingest_garbled"}
    readable, garbled = bag["dags"]["ingest_baobab_douala"], bag["dags"]["ingest_garbled"]
    assert (readable["cron"], readable["timezone"]) == ("15 3 * * *", "Africa/Douala")
    assert (garbled["cron"], garbled["timezone"]) == ("0 6 * * *", "UTC")
    assert "ops@example.com" in readable["doc_md"]
    assert "CC_INTAKE_OPS_EMAILS" in garbled["doc_md"]
    for dag_id, dag in ingest_dags(bag).items():
        assert C.TAG_INTAKE in dag["tags"] and C.TAG_CONFIG_ERROR in dag["tags"], dag_id
        assert dag["timetable"] == "CronTriggerTimetable", dag_id
        assert dag["catchup"] is False, dag_id
        assert not dag["has_deadline"], dag_id  # nothing to deliver: the failure e-mail is it
        (task,) = dag["tasks"].values()
        assert task["owner"], dag_id
        assert task["retries"] == 0, dag_id  # only fixing the file helps
        assert task["failure_callbacks"] >= 1, dag_id


def test_every_committed_yaml_is_valid() -> None:
    from include.cc_intake.airflow.factory import PROVIDERS_DIR
    from include.cc_intake.config import load_providers

    for folder in (PROVIDERS_DIR, SANDBOX_PROVIDERS_DIR):
        _, broken = load_providers(folder)
        assert broken == [], [b.error for b in broken]


def test_housekeeping_dag_has_one_purge_task_per_provider(sandbox_bag: dict) -> None:
    from include.cc_intake.airflow.housekeeping import DAG_ID, TASK_PREFIX

    dag = one_dag(sandbox_bag, DAG_ID)
    assert dag["catchup"] is False
    assert dag["timetable"] == "CronTriggerTimetable"
    assert C.TAG_INTAKE in dag["tags"]
    expected = {f"{TASK_PREFIX}{d.removeprefix(C.DAG_PREFIX)}" for d in SANDBOX_DAG_IDS}
    assert set(dag["tasks"]) == expected
    for task_id, task in dag["tasks"].items():
        assert task["owner"] and task["retries"] >= 1, task_id
        assert task["failure_callbacks"] >= 1, task_id


def test_confirm_to_provider_follows_both_validations(tmp_path: Path) -> None:
    folder = tmp_path / "providers"
    folder.mkdir()
    data = provider_dict()
    data["recordings"]["on_complete"] = "marker"
    (folder / "acme_abidjan.yaml").write_text(yaml.safe_dump(data))
    bag = fill_dagbag(tmp_path, CC_INTAKE_PROVIDERS_DIR=str(folder), CC_INTAKE_SANDBOX="0")
    tasks = one_dag(bag, "ingest_acme_abidjan")["tasks"]
    assert tasks[C.TASK_VALIDATE]["downstream"] == [C.TASK_CONFIRM]
    assert tasks[C.TASK_CONFIRM]["downstream"] == []
    # all_success: a red day leaves it upstream_failed, and the run failed.
    assert tasks[C.TASK_CONFIRM]["trigger_rule"] == "all_success"
    assert tasks[C.TASK_CONFIRM]["failure_callbacks"] >= 1
    if C.TASK_VALIDATE_DIGITAL in tasks:
        assert tasks[C.TASK_VALIDATE_DIGITAL]["downstream"] == [C.TASK_CONFIRM]
