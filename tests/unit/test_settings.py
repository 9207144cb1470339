"""airflow_settings.yaml (Astro CLI schema) -> the connections, pools and variables to load."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.cc_intake.airflow.link_budget import DEFAULT_POOL_NAME
from include.cc_intake.airflow.settings import (
    ConnectionSpec,
    PoolSpec,
    VariableSpec,
    load_settings,
    parse_settings,
    resolve_extra_paths,
)
from include.cc_intake.errors import ConfigError
from include.cc_intake.sandbox import up
from include.cc_intake.sandbox.keys import CLIENT_KEY_NAME

ROOT = Path(__file__).resolve().parents[2]


def doc(*connections: dict[str, object], **more: object) -> dict[str, object]:
    return {"airflow": {"connections": list(connections), **more}}


def test_project_settings_describe_the_make_up_sandbox() -> None:
    settings = load_settings(ROOT / "airflow_settings.yaml", root=ROOT)
    conns = {c.conn_id: c for c in settings.connections}
    assert sorted(conns) == ["crm_acme", "crm_baobab", "sftp_acme", "sftp_baobab", "smtp_default"]
    # The ports are `make up`'s fixed defaults, the CRM secrets the ones it gives the server.
    for conn_id in ("sftp_acme", "sftp_baobab", "smtp_default"):
        assert conns[conn_id].port == up.PORTS[conn_id][1]
        assert conns[conn_id].host == up.HOST
    assert conns["crm_acme"].port == conns["crm_baobab"].port == up.PORTS["crm"][1]
    assert conns["crm_acme"].extra == {"Authorization": f"Bearer {up.CRM_SECRETS['crm_acme']}"}
    assert conns["crm_baobab"].extra == {"X-API-Key": up.CRM_SECRETS["crm_baobab"]}
    # Key and known_hosts point where `make up` (work folder .up) writes them, made absolute.
    sandbox = ROOT / ".up" / "sandbox"
    for conn_id in ("sftp_acme", "sftp_baobab"):
        extra = conns[conn_id].extra
        assert conns[conn_id].login == "intake"
        assert extra["key_file"] == str(sandbox / "keys" / CLIENT_KEY_NAME)
        assert extra["known_hosts"] == str(sandbox / up.KNOWN_HOSTS_NAME)
        assert extra["no_host_key_check"] is False
    smtp = conns["smtp_default"]
    assert smtp.conn_type == "smtp"
    assert smtp.extra["disable_ssl"] is True and smtp.extra["disable_tls"] is True
    # The shared link's pool (contract §8.1); its name is the one link_budget defaults to.
    assert settings.pools == (
        PoolSpec(
            DEFAULT_POOL_NAME,
            4,
            "Copies and report fetches over the shared provider link (cc-intake)",
        ),
    )
    assert settings.variables == ()


def test_astro_fields_map_to_the_connection_model(tmp_path: Path) -> None:
    settings = parse_settings(
        doc(
            {
                "conn_id": "sftp_x",
                "conn_type": "sftp",
                "conn_host": "sftp.example.net",
                "conn_schema": "",
                "conn_login": "intake",
                "conn_password": "s3cret",
                "conn_port": "2222",
                "conn_extra": {"key_file": "keys/id", "known_hosts": "/etc/kh", "timeout": 10},
            }
        ),
        root=tmp_path,
    )
    assert settings.connections == (
        ConnectionSpec(
            conn_id="sftp_x",
            conn_type="sftp",
            host="sftp.example.net",
            schema=None,
            login="intake",
            password="s3cret",
            port=2222,
            extra={
                "key_file": str(tmp_path / "keys" / "id"),
                "known_hosts": "/etc/kh",
                "timeout": 10,
            },
        ),
    )


def test_only_path_extras_are_resolved(tmp_path: Path) -> None:
    extra = {
        "key_file": "a/b",
        "known_hosts": "~/.ssh/known_hosts",
        "Authorization": "Bearer x/y",
        "endpoint": "relative/path",
    }
    out = resolve_extra_paths(extra, tmp_path)
    assert out == {
        "key_file": str(tmp_path / "a" / "b"),
        "known_hosts": "~/.ssh/known_hosts",  # the hook expands ~ itself
        "Authorization": "Bearer x/y",
        "endpoint": "relative/path",
    }
    assert extra["key_file"] == "a/b"  # the input is not modified


def test_conn_extra_may_be_a_json_string() -> None:
    settings = parse_settings(
        doc({"conn_id": "h", "conn_type": "http", "conn_extra": '{"X-API-Key": "k"}'})
    )
    assert settings.connections[0].extra == {"X-API-Key": "k"}
    assert settings.connections[0].port is None and settings.connections[0].host is None


def test_the_astro_templates_empty_entries_mean_nothing() -> None:
    template = {
        "airflow": {
            "connections": [
                {
                    "conn_id": None,
                    "conn_type": None,
                    "conn_host": None,
                    "conn_port": None,
                    "conn_extra": {"example_extra_field": "example-value"},
                }
            ],
            "pools": [{"pool_name": None, "pool_slot": None, "pool_description": None}],
            "variables": [{"variable_name": None, "variable_value": None}],
        }
    }
    settings = parse_settings(template)
    assert (settings.connections, settings.pools, settings.variables) == ((), (), ())
    assert parse_settings(None).connections == ()
    assert parse_settings({"airflow": None}).connections == ()


def test_pools_and_variables() -> None:
    settings = parse_settings(
        doc(
            pools=[{"pool_name": "sftp", "pool_slot": 4, "pool_description": "SFTP slots"}],
            variables=[
                {"variable_name": "mode", "variable_value": "sandbox"},
                {"variable_name": "limits", "variable_value": {"a": 1}},
            ],
        )
    )
    assert settings.pools == (PoolSpec("sftp", 4, "SFTP slots"),)
    assert settings.variables == (VariableSpec("mode", "sandbox"), VariableSpec("limits", {"a": 1}))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc({"conn_id": "x"}), r"airflow\.connections\[0\] \(x\): `conn_type` is required"),
        (doc({"conn_type": "http"}), r"airflow\.connections\[0\]: `conn_id` is required"),
        (
            doc({"conn_id": "x", "conn_type": "http", "conn_port": "eighty"}),
            r"\(x\): conn_port 'eighty' is not a port number",
        ),
        (
            doc({"conn_id": "x", "conn_type": "http", "conn_port": 70000}),
            r"\(x\): conn_port 70000 is not between 1 and 65535",
        ),
        (
            doc({"conn_id": "x", "conn_type": "http", "conn_extra": "{not json"}),
            r"\(x\): conn_extra is not valid JSON",
        ),
        (
            doc({"conn_id": "x", "conn_type": "http"}, {"conn_id": "x", "conn_type": "http"}),
            r"connection 'x' is defined twice",
        ),
        (doc(pools=[{"pool_name": "p", "pool_slot": "many"}]), r"pools\[0\]: pool_slot must be"),
        (doc(variables=[{"variable_name": "v"}]), r"variables\[0\]: `variable_value` is required"),
        (["not", "a", "mapping"], r"top-level `airflow:` key"),
        ({"airflow": {"connections": {"conn_id": "x"}}}, r"airflow\.connections must be a list"),
    ],
)
def test_errors_name_the_file_entry_and_field(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^my_settings\.yaml: .*" + message):
        parse_settings(document, source="my_settings.yaml")


def test_describe_never_shows_secrets() -> None:
    spec = ConnectionSpec(
        conn_id="crm",
        conn_type="http",
        host="crm.example",
        port=443,
        login="api",
        password="p4ss",
        extra={"Authorization": "Bearer t0ken"},
    )
    text = spec.describe()
    assert "p4ss" not in text and "t0ken" not in text
    assert text == "http crm.example:443, login api, password set, extras Authorization"


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the settings file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("airflow: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_settings(bad)
